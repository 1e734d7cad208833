package install

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fedmesh/fedmesh/deploy"
)

func testOptions() Options {
	return Options{Cluster: "east-1", Region: "us-east", Zone: "a", TrustDomain: "fedmesh.local", GatewayAddress: "198.18.0.10:15443"}
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s in the rendered manifests", kind, name)
	return nil
}

func TestRenderSetsIdentityAndLabels(t *testing.T) {
	objs, err := Render(deploy.Base, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) < 15 {
		t.Fatalf("rendered %d objects, want the whole installation", len(objs))
	}
	if objs[0].GetKind() != "CustomResourceDefinition" {
		t.Errorf("first object is %s %s, want the CRDs first", objs[0].GetKind(), objs[0].GetName())
	}
	for _, o := range objs {
		if got := o.GetLabels()[ManagedByLabel]; got != ManagedBy {
			t.Errorf("%s: label %s=%q, want %q", ref(o), ManagedByLabel, got, ManagedBy)
		}
		if got := o.GetLabels()[PartOfLabel]; got != "fedmesh" {
			t.Errorf("%s: label %s=%q", ref(o), PartOfLabel, got)
		}
	}
	// Every fedmesh policy's CRD is installed, and waited for (check
	// and install read the same list).
	for _, crd := range []string{"authorizationpolicies.fedmesh.io", "resiliencepolicies.fedmesh.io", "faultinjections.fedmesh.io",
		"telemetrypolicies.fedmesh.io", "ratelimitpolicies.fedmesh.io"} {
		find(t, objs, "CustomResourceDefinition", crd)
		if !slices.Contains(crdNames(objs), crd) {
			t.Errorf("crdNames leaves out %s", crd)
		}
	}
	cm := find(t, objs, "ConfigMap", ClusterConfigMap)
	want := map[string]string{"cluster": "east-1", "region": "us-east", "zone": "a", "trustDomain": "fedmesh.local", "gatewayAddress": "198.18.0.10:15443"}
	got, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	for k, v := range want {
		if got[k] != v {
			t.Errorf("ConfigMap data[%s] = %q, want %q", k, got[k], v)
		}
	}
	// The default namespace and images stay as the base has them.
	sts := find(t, objs, "StatefulSet", "fedmesh-controlplane")
	if sts.GetNamespace() != DefaultNamespace {
		t.Errorf("control plane namespace %q, want %q", sts.GetNamespace(), DefaultNamespace)
	}
	// Selectors are not touched: they are immutable in a Deployment.
	sel, _, _ := unstructured.NestedStringMap(find(t, objs, "Deployment", "fedmesh-gateway").Object, "spec", "selector", "matchLabels")
	if _, ok := sel[ManagedByLabel]; ok || len(sel) != 1 {
		t.Errorf("gateway selector %v changed", sel)
	}
}

func TestRenderNamespaceAndImages(t *testing.T) {
	o := testOptions()
	o.Namespace = "mesh"
	o.Image = "ghcr.io/fedmesh/fedmesh:v0.1.0"
	o.InitImage = "ghcr.io/fedmesh/fedmesh-init:v0.1.0"
	objs, err := Render(deploy.Base, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		js, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if obj.GetKind() != "CustomResourceDefinition" && strings.Contains(string(js), DefaultNamespace) {
			t.Errorf("%s still names %s", ref(obj), DefaultNamespace)
		}
		if strings.Contains(string(js), `fedmesh:dev`) || strings.Contains(string(js), `fedmesh-init:dev`) {
			t.Errorf("%s still names a dev image", ref(obj))
		}
	}
	if ns := find(t, objs, "Namespace", "mesh"); ns == nil {
		t.Fatal("no Namespace mesh")
	}
	wh := find(t, objs, "MutatingWebhookConfiguration", "fedmesh-sidecar-injector")
	hooks, _, _ := unstructured.NestedSlice(wh.Object, "webhooks")
	svcNS, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "service", "namespace")
	if svcNS != "mesh" {
		t.Errorf("webhook service namespace %q, want mesh", svcNS)
	}
	args, _, _ := unstructured.NestedSlice(find(t, objs, "Deployment", "fedmesh-webhook").Object, "spec", "template", "spec", "containers")
	c := args[0].(map[string]any)
	if c["image"] != o.Image {
		t.Errorf("webhook image %v, want %s", c["image"], o.Image)
	}
	var hasInit bool
	for _, a := range c["args"].([]any) {
		if a == "--init-image="+o.InitImage {
			hasInit = true
		}
	}
	if !hasInit {
		t.Errorf("webhook args %v lack --init-image=%s", c["args"], o.InitImage)
	}
}

func TestRenderRefusesBadOptions(t *testing.T) {
	for name, mut := range map[string]func(*Options){
		"cluster upper case": func(o *Options) { o.Cluster = "East" },
		"no cluster":         func(o *Options) { o.Cluster = "" },
		"no region":          func(o *Options) { o.Region = "" },
		"no trust domain":    func(o *Options) { o.TrustDomain = "" },
		"bad namespace":      func(o *Options) { o.Namespace = "a_b" },
	} {
		t.Run(name, func(t *testing.T) {
			o := testOptions()
			mut(&o)
			if _, err := Render(deploy.Base, o); err == nil {
				t.Fatal("Render accepted bad options")
			}
		})
	}
}

func TestRenderBadFiles(t *testing.T) {
	for name, fs := range map[string]fstest.MapFS{
		"no kustomization": {},
		"no resources":     {"base/kustomization.yaml": {Data: []byte("resources: []\n")}},
		"missing file":     {"base/kustomization.yaml": {Data: []byte("resources: [a.yaml]\n")}},
		"bad yaml":         {"base/kustomization.yaml": {Data: []byte("resources: [a.yaml]\n")}, "base/a.yaml": {Data: []byte("kind: [\n")}},
		"no name":          {"base/kustomization.yaml": {Data: []byte("resources: [a.yaml]\n")}, "base/a.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\n")}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Render(fs, testOptions()); err == nil {
				t.Fatal("Render accepted a broken tree")
			}
		})
	}
}

func FuzzRenderOptions(f *testing.F) {
	f.Add("east-1", "us-east", "a", "fedmesh.local", "mesh")
	f.Fuzz(func(t *testing.T, cluster, region, zone, td, ns string) {
		o := Options{Cluster: cluster, Region: region, Zone: zone, TrustDomain: td, Namespace: ns}
		objs, err := Render(deploy.Base, o)
		if err != nil {
			return
		}
		got, _, _ := unstructured.NestedString(find(t, objs, "ConfigMap", ClusterConfigMap).Object, "data", "cluster")
		if got != cluster {
			t.Fatalf("cluster %q rendered as %q", cluster, got)
		}
	})
}
