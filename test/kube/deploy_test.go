package kube

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// controlPlaneSA is the control plane's ServiceAccount as the API server
// names it, and its groups.
const controlPlaneSA = "system:serviceaccount:fedmesh-system:fedmesh-controlplane"

var controlPlaneGroups = []string{"system:serviceaccounts", "system:serviceaccounts:fedmesh-system", "system:authenticated"}

// TestDeployDryRun sends every object in deploy/ to the API server with a
// server-side apply in dry-run mode, so that the server validates each
// against its schema (CRDs included) without storing it.
func TestDeployDryRun(t *testing.T) {
	_, c := clusters(t)
	ms, err := readManifests(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 10 {
		t.Fatalf("read %d objects from deploy/, expected the whole installation", len(ms))
	}
	a, err := newApplier(c)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, m := range ms {
		t.Run(m.String(), func(t *testing.T) {
			kinds[m.obj.GetKind()] = true
			dryRunApply(t, a, m.obj)
		})
	}
	for _, k := range []string{"CustomResourceDefinition", "ClusterRole", "Role", "StatefulSet", "Deployment", "Service", "MutatingWebhookConfiguration", "NetworkPolicy"} {
		if !kinds[k] {
			t.Errorf("deploy/ has no %s", k)
		}
	}
}

// dryRunApply sends obj with a server-side apply in dry-run mode.
func dryRunApply(t *testing.T, a *applier, obj *unstructured.Unstructured) {
	t.Helper()
	gvk := obj.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatalf("the API server does not serve %s: %v", gvk, err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			t.Fatalf("namespaced %s %s has no namespace", obj.GetKind(), obj.GetName())
		}
		ri = a.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	force := true
	_, err = ri.Patch(context.Background(), obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
		DryRun: []string{metav1.DryRunAll}, FieldManager: "fedmesh-deploy-test", Force: &force,
		FieldValidation: "Strict",
	})
	if err != nil {
		t.Errorf("server-side dry run of %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
}

// TestDeployOverlays builds each kustomize overlay with kubectl kustomize
// (when kubectl is installed) and dry-runs what it makes.
func TestDeployOverlays(t *testing.T) {
	_, c := clusters(t)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed: overlays not built (the base is checked by TestDeployDryRun)")
	}
	a, err := newApplier(c)
	if err != nil {
		t.Fatal(err)
	}
	overlays, err := filepath.Glob(filepath.Join(deployDir, "overlays", "*"))
	if err != nil || len(overlays) == 0 {
		t.Fatalf("no overlays: %v", err)
	}
	for _, o := range overlays {
		t.Run(filepath.Base(o), func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", o).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v", o, err)
			}
			f := filepath.Join(t.TempDir(), "built.yaml")
			if err := os.WriteFile(f, out, 0o600); err != nil {
				t.Fatal(err)
			}
			ms, err := readManifestFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				dryRunApply(t, a, m.obj)
			}
		})
	}
}

// access is one request the control plane may or may not make.
type access struct {
	Verb, Group, Resource, Namespace, Name string
}

func (a access) String() string {
	r := a.Resource
	if a.Group != "" {
		r += "." + a.Group
	}
	s := a.Verb + " " + r
	if a.Namespace != "" {
		s += " in " + a.Namespace
	}
	if a.Name != "" {
		s += " named " + a.Name
	}
	return s
}

// TestControlPlaneRBAC asks the API server, with SubjectAccessReviews,
// every verb on every resource the control plane might touch, and compares
// the allowed set with exactly what the control plane needs. The
// integration test TestFederation runs the control planes as this
// ServiceAccount, which shows the set is enough.
func TestControlPlaneRBAC(t *testing.T) {
	c, _ := clusters(t)
	cs, err := kubernetes.NewForConfig(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	type res struct{ group, resource string }
	resources := []res{
		{"", "services"}, {"", "pods"}, {"", "nodes"}, {"", "secrets"}, {"", "configmaps"}, {"", "namespaces"},
		{"", "serviceaccounts"}, {"", "serviceaccounts/token"}, {"", "pods/exec"},
		{"discovery.k8s.io", "endpointslices"},
		{"multicluster.x-k8s.io", "serviceexports"}, {"multicluster.x-k8s.io", "serviceexports/status"},
		{"multicluster.x-k8s.io", "serviceimports"}, {"multicluster.x-k8s.io", "serviceimports/status"},
		{"fedmesh.io", "authorizationpolicies"}, {"fedmesh.io", "authorizationpolicies/status"},
		{"fedmesh.io", "resiliencepolicies"}, {"fedmesh.io", "resiliencepolicies/status"},
		{"fedmesh.io", "faultinjections"}, {"fedmesh.io", "faultinjections/status"},
		{"fedmesh.io", "telemetrypolicies"}, {"fedmesh.io", "telemetrypolicies/status"},
		{"fedmesh.io", "ratelimitpolicies"}, {"fedmesh.io", "ratelimitpolicies/status"},
		{"gateway.networking.k8s.io", "httproutes"}, {"gateway.networking.k8s.io", "httproutes/status"},
		{"gateway.networking.k8s.io", "grpcroutes"}, {"gateway.networking.k8s.io", "grpcroutes/status"},
		{"gateway.networking.k8s.io", "gateways"},
		{"coordination.k8s.io", "leases"},
		{"authentication.k8s.io", "tokenreviews"}, {"authorization.k8s.io", "subjectaccessreviews"},
		{"apps", "deployments"}, {"rbac.authorization.k8s.io", "clusterroles"},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations"},
	}
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "escalate", "impersonate"}
	var asks []access
	for _, ns := range []string{"demo", "fedmesh-system"} {
		for _, r := range resources {
			for _, v := range verbs {
				asks = append(asks, access{Verb: v, Group: r.group, Resource: r.resource, Namespace: ns})
			}
		}
	}
	// The join Secrets by name (kube.JoinTokenSecret, kube.JoinSecret),
	// and another Secret: the cluster's CA must stay out of reach.
	for _, name := range []string{"fedmesh-join-token", "fedmesh-join", "fedmesh-cluster-ca"} {
		for _, v := range []string{"get", "update", "patch", "delete"} {
			asks = append(asks, access{Verb: v, Resource: "secrets", Namespace: "fedmesh-system", Name: name})
		}
	}
	// The leader election Lease by name, and another Lease.
	for _, name := range []string{"fedmesh-controlplane", "kube-scheduler"} {
		for _, v := range []string{"get", "update", "patch", "delete"} {
			asks = append(asks, access{Verb: v, Group: "coordination.k8s.io", Resource: "leases", Namespace: "fedmesh-system", Name: name})
		}
	}

	var allowed []string
	for _, a := range asks {
		sub, _, _ := strings.Cut(a.Resource, "/")
		_, subres, _ := strings.Cut(a.Resource, "/")
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:   controlPlaneSA,
			Groups: controlPlaneGroups,
			ResourceAttributes: &authzv1.ResourceAttributes{
				Verb: a.Verb, Group: a.Group, Resource: sub, Subresource: subres, Namespace: a.Namespace, Name: a.Name,
			},
		}}
		got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if got.Status.Allowed {
			allowed = append(allowed, a.String())
		}
	}
	var want []string
	for _, ns := range []string{"demo", "fedmesh-system"} {
		for _, a := range []access{
			{Verb: "get", Resource: "services"}, {Verb: "list", Resource: "services"}, {Verb: "watch", Resource: "services"},
			{Verb: "get", Resource: "pods"}, {Verb: "list", Resource: "pods"}, {Verb: "watch", Resource: "pods"},
			// Nodes are cluster-scoped; a namespace in the request does not
			// change that RBAC grants them.
			{Verb: "get", Resource: "nodes"}, {Verb: "list", Resource: "nodes"}, {Verb: "watch", Resource: "nodes"},
			{Verb: "get", Group: "discovery.k8s.io", Resource: "endpointslices"},
			{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices"},
			{Verb: "watch", Group: "discovery.k8s.io", Resource: "endpointslices"},
			{Verb: "create", Group: "discovery.k8s.io", Resource: "endpointslices"},
			{Verb: "update", Group: "discovery.k8s.io", Resource: "endpointslices"},
			{Verb: "delete", Group: "discovery.k8s.io", Resource: "endpointslices"},
			{Verb: "get", Group: "multicluster.x-k8s.io", Resource: "serviceexports"},
			{Verb: "list", Group: "multicluster.x-k8s.io", Resource: "serviceexports"},
			{Verb: "watch", Group: "multicluster.x-k8s.io", Resource: "serviceexports"},
			{Verb: "update", Group: "multicluster.x-k8s.io", Resource: "serviceexports/status"},
			{Verb: "get", Group: "multicluster.x-k8s.io", Resource: "serviceimports"},
			{Verb: "list", Group: "multicluster.x-k8s.io", Resource: "serviceimports"},
			{Verb: "watch", Group: "multicluster.x-k8s.io", Resource: "serviceimports"},
			{Verb: "create", Group: "multicluster.x-k8s.io", Resource: "serviceimports"},
			{Verb: "update", Group: "multicluster.x-k8s.io", Resource: "serviceimports"},
			{Verb: "delete", Group: "multicluster.x-k8s.io", Resource: "serviceimports"},
			{Verb: "update", Group: "multicluster.x-k8s.io", Resource: "serviceimports/status"},
			{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"},
			{Verb: "get", Group: "fedmesh.io", Resource: "authorizationpolicies"},
			{Verb: "list", Group: "fedmesh.io", Resource: "authorizationpolicies"},
			{Verb: "watch", Group: "fedmesh.io", Resource: "authorizationpolicies"},
			{Verb: "update", Group: "fedmesh.io", Resource: "authorizationpolicies/status"},
		} {
			a.Namespace = ns
			want = append(want, a.String())
		}
		// The traffic objects: read, and their status written.
		for _, r := range []res{
			{"fedmesh.io", "resiliencepolicies"}, {"fedmesh.io", "faultinjections"}, {"fedmesh.io", "telemetrypolicies"}, {"fedmesh.io", "ratelimitpolicies"},
			{"gateway.networking.k8s.io", "httproutes"}, {"gateway.networking.k8s.io", "grpcroutes"},
		} {
			for _, a := range []access{
				{Verb: "get", Group: r.group, Resource: r.resource},
				{Verb: "list", Group: r.group, Resource: r.resource},
				{Verb: "watch", Group: r.group, Resource: r.resource},
				{Verb: "update", Group: r.group, Resource: r.resource + "/status"},
			} {
				a.Namespace = ns
				want = append(want, a.String())
			}
		}
	}
	want = append(want,
		access{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: "fedmesh-system"}.String(),
		access{Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Namespace: "fedmesh-system", Name: "fedmesh-controlplane"}.String(),
		access{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "fedmesh-system", Name: "fedmesh-controlplane"}.String(),
		// 'fedmesh join' between clusters in Kubernetes: its token
		// published, and the token to join with read and answered.
		access{Verb: "create", Resource: "secrets", Namespace: "fedmesh-system"}.String(),
		access{Verb: "get", Resource: "secrets", Namespace: "fedmesh-system", Name: "fedmesh-join-token"}.String(),
		access{Verb: "update", Resource: "secrets", Namespace: "fedmesh-system", Name: "fedmesh-join-token"}.String(),
		access{Verb: "get", Resource: "secrets", Namespace: "fedmesh-system", Name: "fedmesh-join"}.String(),
		access{Verb: "patch", Resource: "secrets", Namespace: "fedmesh-system", Name: "fedmesh-join"}.String(),
	)
	sort.Strings(want)
	sort.Strings(allowed)
	if d := cmp.Diff(want, allowed); d != "" {
		t.Errorf("the control plane's allowed requests (-want +got):\n%s", d)
	}
	t.Logf("checked %d requests with SubjectAccessReview; %d allowed", len(asks), len(allowed))
}
