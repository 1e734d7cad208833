package demo

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// kindDir holds the manifests of the kind demo (scripts/kind-demo.sh)
// for the objects the local demo writes into its sources.
var kindDir = filepath.Join("..", "..", "scripts", "kind-demo")

// objects parses a stream of YAML documents; comments and empty
// documents are left out.
func objects(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("%v:\n%s", err, doc)
		}
		if obj != nil {
			out = append(out, obj)
		}
	}
	return out
}

func kindObjects(t *testing.T, file string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(kindDir, file))
	if err != nil {
		t.Fatal(err)
	}
	return objects(t, data)
}

// object returns the object of objs with kind and name.
func object(t *testing.T, objs []map[string]any, kind, name string) map[string]any {
	t.Helper()
	i := slices.IndexFunc(objs, func(o map[string]any) bool {
		return o["kind"] == kind && o["metadata"].(map[string]any)["name"] == name
	})
	if i < 0 {
		t.Fatalf("no %s %s", kind, name)
	}
	return objs[i]
}

// TestKindDemoManifests keeps the kind demo's objects the local demo's:
// its AuthorizationPolicies are the ones every local cluster's source
// holds, its RateLimitPolicy is the quota phase's (for the quota it
// states), and its echo-v2 is the canary cluster's: the same Service
// (with a targetPort, which a Deployment's pods need) and ServiceExport,
// the replicas the local demo runs, reporting echo-v2 v2 from the canary
// cluster. The traffic phases' objects need no copy: kind-demo.sh applies
// the embedded files themselves.
func TestKindDemoManifests(t *testing.T) {
	cs, err := Layout(3)
	if err != nil {
		t.Fatal(err)
	}
	canary := cs[2]
	var src bytes.Buffer
	if err := sourceTmpl.Execute(&src, Source{Cluster: canary.Name, Index: canary.Index, Zone: canary.Zone,
		Replicas: []Replica{{N: 1, IP: canary.WorkloadIP(1)}}, Canary: []Replica{{N: 1, IP: canary.CanaryIP(1)}}, ClientIP: canary.ClientIP()}); err != nil {
		t.Fatal(err)
	}
	var policies bytes.Buffer
	if err := policyTmpl.Execute(&policies, Source{Cluster: canary.Name}); err != nil {
		t.Fatal(err)
	}

	if d := cmp.Diff(objects(t, policies.Bytes()), kindObjects(t, "authz.yaml")); d != "" {
		t.Errorf("scripts/kind-demo/authz.yaml is not the local demo's policies (-local +kind):\n%s", d)
	}

	quota := kindObjects(t, "quota.yaml")
	if len(quota) != 1 {
		t.Fatalf("quota.yaml: %d objects, want 1", len(quota))
	}
	quotas, _ := quota[0]["spec"].(map[string]any)["quotas"].([]any)
	if len(quotas) != 1 {
		t.Fatalf("quota.yaml: %d quotas, want 1", len(quotas))
	}
	q, ok := quotas[0].(map[string]any)["requests"].(float64)
	if !ok || q < 4 {
		t.Fatalf("quota.yaml: requests %v, want a number of at least 4 (the local demo's least)", quotas[0])
	}
	if d := cmp.Diff(objects(t, []byte(quotaPolicy(int(q)))), quota); d != "" {
		t.Errorf("scripts/kind-demo/quota.yaml is not the local demo's quota policy (-local +kind):\n%s", d)
	}

	local, kind := objects(t, src.Bytes()), kindObjects(t, "echo-v2.yaml")
	svc := object(t, local, "Service", CanaryService)
	for _, p := range svc["spec"].(map[string]any)["ports"].([]any) {
		p.(map[string]any)["targetPort"] = "http"
	}
	if d := cmp.Diff(svc, object(t, kind, "Service", CanaryService)); d != "" {
		t.Errorf("echo-v2.yaml: Service (-local +kind):\n%s", d)
	}
	export := object(t, local, "ServiceExport", CanaryService)
	delete(export["metadata"].(map[string]any), "creationTimestamp")
	if d := cmp.Diff(export, object(t, kind, "ServiceExport", CanaryService)); d != "" {
		t.Errorf("echo-v2.yaml: ServiceExport (-local +kind):\n%s", d)
	}
	dep := object(t, kind, "Deployment", CanaryService)
	spec := dep["spec"].(map[string]any)
	if r := spec["replicas"]; r != float64(canaryReplicas) {
		t.Errorf("echo-v2.yaml: %v replicas, want %d as the local demo runs", r, canaryReplicas)
	}
	if sel := spec["selector"].(map[string]any)["matchLabels"]; !cmp.Equal(sel, svc["spec"].(map[string]any)["selector"]) {
		t.Errorf("echo-v2.yaml: the Deployment selects %v, the Service %v", sel, svc["spec"].(map[string]any)["selector"])
	}
	pod := spec["template"].(map[string]any)["spec"].(map[string]any)
	var args []string
	for _, a := range pod["containers"].([]any)[0].(map[string]any)["args"].([]any) {
		args = append(args, a.(string))
	}
	for _, want := range []string{"echo", "--cluster=" + canary.Name, "--service=" + CanaryService, "--version=v2"} {
		if !slices.Contains(args, want) {
			t.Errorf("echo-v2.yaml: the echo container's args %q lack %q", args, want)
		}
	}
	if sa := pod["serviceAccountName"]; sa != CanaryService {
		t.Errorf("echo-v2.yaml: service account %v, want %s (the local demo's identity of echo-v2)", sa, CanaryService)
	}
}
