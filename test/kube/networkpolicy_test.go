package kube

import (
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestControlPlaneNetworkPolicy reads deploy/ and checks that a
// NetworkPolicy selects the control plane's pods and gives every port the
// StatefulSet opens exactly one ingress rule: the admin port only from
// named namespaces, xDS from this cluster's namespaces, gossip and etcd
// from peers anywhere. A port added to the StatefulSet without a rule,
// and so silently dropped, fails here. (TestDeployDryRun checks the object
// against a real API server.)
func TestControlPlaneNetworkPolicy(t *testing.T) {
	ms, err := readManifests(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	var sts, np *unstructured.Unstructured
	for _, m := range ms {
		switch {
		case m.obj.GetKind() == "StatefulSet" && m.obj.GetName() == "fedmesh-controlplane":
			sts = m.obj
		case m.obj.GetKind() == "NetworkPolicy" && m.obj.GetName() == "fedmesh-controlplane":
			np = m.obj
		}
	}
	if sts == nil || np == nil {
		t.Fatalf("deploy/ lacks the control plane StatefulSet (%v) or its NetworkPolicy (%v)", sts != nil, np != nil)
	}
	podLabels, _, _ := unstructured.NestedStringMap(sts.Object, "spec", "template", "metadata", "labels")
	sel, _, _ := unstructured.NestedStringMap(np.Object, "spec", "podSelector", "matchLabels")
	if len(sel) == 0 {
		t.Error("the NetworkPolicy selects every pod of fedmesh-system, want the control plane's")
	}
	for k, v := range sel {
		if podLabels[k] != v {
			t.Errorf("the NetworkPolicy selects %s=%s, which the control plane's pods do not carry (%v)", k, v, podLabels)
		}
	}
	if types, _, _ := unstructured.NestedStringSlice(np.Object, "spec", "policyTypes"); !slices.Contains(types, "Ingress") {
		t.Errorf("policyTypes %v: want Ingress", types)
	}

	// rules by "PROTO/port": the rule's peers ("any" when from is absent).
	rules := map[string][]map[string]any{}
	ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
	for _, r := range ingress {
		rule := r.(map[string]any)
		from, hasFrom := rule["from"].([]any)
		var peers []map[string]any
		for _, p := range from {
			peers = append(peers, p.(map[string]any))
		}
		if !hasFrom {
			peers = []map[string]any{{"any": true}}
		}
		ports, _ := rule["ports"].([]any)
		if len(ports) == 0 {
			t.Errorf("an ingress rule names no ports (it would open every port): %v", rule)
		}
		for _, p := range ports {
			pm := p.(map[string]any)
			proto, _ := pm["protocol"].(string)
			if proto == "" {
				proto = "TCP"
			}
			key := fmt.Sprintf("%s/%v", proto, pm["port"])
			if _, dup := rules[key]; dup {
				t.Errorf("port %s has two rules", key)
			}
			rules[key] = peers
		}
	}

	containers, _, _ := unstructured.NestedSlice(sts.Object, "spec", "template", "spec", "containers")
	ports := map[string]string{} // by name: PROTO/port
	for _, c := range containers {
		cps, _ := c.(map[string]any)["ports"].([]any)
		for _, p := range cps {
			pm := p.(map[string]any)
			proto, _ := pm["protocol"].(string)
			if proto == "" {
				proto = "TCP"
			}
			key := fmt.Sprintf("%s/%v", proto, pm["containerPort"])
			ports[pm["name"].(string)] = key
			if _, ok := rules[key]; !ok {
				t.Errorf("container port %s (%s) has no ingress rule: it is unreachable", pm["name"], key)
			}
		}
	}
	for key := range rules {
		if !slices.Contains(mapValues(ports), key) {
			t.Errorf("the NetworkPolicy opens %s, which the control plane does not listen on", key)
		}
	}

	admin := rules[ports["admin"]]
	if len(admin) == 0 {
		t.Fatal("no rule for the admin port")
	}
	for _, p := range admin {
		ns, ok := p["namespaceSelector"].(map[string]any)
		labels, _ := ns["matchLabels"].(map[string]any)
		if !ok || len(labels) == 0 || p["ipBlock"] != nil || p["any"] != nil {
			t.Errorf("the admin port admits %v: want only namespaces named by label", p)
		}
	}
	if xds := rules[ports["xds"]]; len(xds) != 1 || xds[0]["namespaceSelector"] == nil || xds[0]["ipBlock"] != nil || xds[0]["any"] != nil {
		t.Errorf("the xDS port admits %v: want the cluster's namespaces only", xds)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
