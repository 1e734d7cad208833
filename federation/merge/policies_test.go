package merge

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/policy"
)

// routeDoc is a producer HTTPRoute of demo/echo sending weight percent
// to echo-v2.
func routeDoc(name, parent string, weight int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: %s}]
  rules:
  - backendRefs:
    - {name: echo, port: 8080, weight: %d}
    - {name: echo-v2, port: 8080, weight: %d}
`, name, parent, 100-weight, weight)
}

// encode parses docs and encodes them as the catalog's Policies, all of
// them, as EncodePolicies does (no ProducerOf filter).
func encode(t testing.TB, docs ...string) *catalog.Policies {
	t.Helper()
	var tr policy.Traffic
	for _, d := range docs {
		obj, err := policy.ParseObject([]byte(d))
		if err != nil {
			t.Fatalf("parse %q: %v", d, err)
		}
		if err := tr.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	p, err := policy.EncodePolicies(tr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func withPolicies(e catalog.Export, p *catalog.Policies) catalog.Export {
	e.Policies = p
	return e
}

func TestMergePolicies(t *testing.T) {
	a := encode(t, routeDoc("canary", "echo", 10))
	b := encode(t, routeDoc("canary", "echo", 50))
	ports := []catalog.Port{httpPort(8080)}
	eastEP, east2EP, westEP := ep("127.0.1.1", "http", true), ep("127.0.2.1", "http", true), ep("127.0.3.1", "http", true)
	conflict := func(cluster, reason, msg string) catalog.Condition {
		return catalog.Condition{Type: catalog.ConditionConflict, Status: "True", Reason: reason, Message: msg, Cluster: cluster}
	}
	msgLoser := func(loser, ld, winner, wd string) string {
		return fmt.Sprintf("producer policies from %s (digest %s) differ from those in force, from %s (digest %s), the oldest export that carries any", loser, ld, winner, wd)
	}
	msgWinner := func(winner string, losers ...string) string {
		return fmt.Sprintf("producer policies of the oldest export that carries any, from %s, are in force; conflicting producer policies: %s", winner, strings.Join(losers, ", "))
	}

	tests := []struct {
		name         string
		exports      map[string][]catalog.Export
		wantPolicies *catalog.Policies
		wantFrom     string
		wantClusters []string
		wantConds    []catalog.Condition
	}{
		{
			name: "no export carries policies",
			exports: map[string][]catalog.Export{
				"east-1": {export("east-1", 0, catalog.ClusterSetIP, ports, eastEP)},
				"west-1": {export("west-1", time.Minute, catalog.ClusterSetIP, ports, westEP)},
			},
			wantClusters: []string{"east-1", "west-1"},
		},
		{
			name: "a younger export's policies are in force when the oldest carries none; no conflict",
			exports: map[string][]catalog.Export{
				"east-1": {export("east-1", 0, catalog.ClusterSetIP, ports, eastEP)},
				"west-1": {withPolicies(export("west-1", time.Minute, catalog.ClusterSetIP, ports, westEP), a)},
			},
			wantPolicies: a, wantFrom: "west-1",
			wantClusters: []string{"east-1", "west-1"},
		},
		{
			name: "equal digests agree: the oldest's are in force",
			exports: map[string][]catalog.Export{
				"east-1": {withPolicies(export("east-1", time.Minute, catalog.ClusterSetIP, ports, eastEP), a)},
				"west-1": {withPolicies(export("west-1", 0, catalog.ClusterSetIP, ports, westEP), encode(t, routeDoc("canary", "echo", 10)))},
			},
			wantPolicies: a, wantFrom: "west-1",
			wantClusters: []string{"east-1", "west-1"},
		},
		{
			name: "different digests: the oldest carrying any wins, a condition on both sides",
			exports: map[string][]catalog.Export{
				"east-1": {withPolicies(export("east-1", 0, catalog.ClusterSetIP, ports, eastEP), a)},
				"west-1": {withPolicies(export("west-1", time.Minute, catalog.ClusterSetIP, ports, westEP), b)},
			},
			wantPolicies: a, wantFrom: "east-1",
			wantClusters: []string{"east-1", "west-1"},
			wantConds: []catalog.Condition{
				conflict("east-1", catalog.ReasonPolicyConflict, msgWinner("east-1", "west-1")),
				conflict("west-1", catalog.ReasonPolicyConflict, msgLoser("west-1", b.Digest, "east-1", a.Digest)),
			},
		},
		{
			name: "equal times: the lower cluster name wins",
			exports: map[string][]catalog.Export{
				"west-1": {withPolicies(export("west-1", 0, catalog.ClusterSetIP, ports, westEP), a)},
				"east-2": {withPolicies(export("east-2", 0, catalog.ClusterSetIP, ports, east2EP), b)},
			},
			wantPolicies: b, wantFrom: "east-2",
			wantClusters: []string{"east-2", "west-1"},
			wantConds: []catalog.Condition{
				conflict("east-2", catalog.ReasonPolicyConflict, msgWinner("east-2", "west-1")),
				conflict("west-1", catalog.ReasonPolicyConflict, msgLoser("west-1", a.Digest, "east-2", b.Digest)),
			},
		},
		{
			name: "the policy winner need not be the export winner; the oldest export, carrying none, has no condition",
			exports: map[string][]catalog.Export{
				"east-1": {export("east-1", 0, catalog.ClusterSetIP, ports, eastEP)},
				"east-2": {withPolicies(export("east-2", time.Minute, catalog.ClusterSetIP, ports, east2EP), b)},
				"west-1": {withPolicies(export("west-1", time.Hour, catalog.ClusterSetIP, ports, westEP), a)},
			},
			wantPolicies: b, wantFrom: "east-2",
			wantClusters: []string{"east-1", "east-2", "west-1"},
			wantConds: []catalog.Condition{
				conflict("east-2", catalog.ReasonPolicyConflict, msgWinner("east-2", "west-1")),
				conflict("west-1", catalog.ReasonPolicyConflict, msgLoser("west-1", a.Digest, "east-2", b.Digest)),
			},
		},
		{
			name: "a type-conflicting export is not merged, nor are its policies",
			exports: map[string][]catalog.Export{
				"east-1": {export("east-1", 0, catalog.ClusterSetIP, ports, eastEP)},
				"west-1": {withPolicies(export("west-1", time.Minute, catalog.Headless, ports, westEP), a)},
			},
			wantClusters: []string{"east-1"},
			wantConds: []catalog.Condition{
				conflict("east-1", catalog.ReasonTypeConflict, "oldest export, from east-1, wins; conflicting exports: west-1 (TypeConflict)"),
				conflict("west-1", catalog.ReasonTypeConflict, "export from west-1 conflicts with the oldest export, from east-1: type Headless, not ClusterSetIP"),
			},
		},
		{
			name: "port and policy conflict of one export: one condition each side, the worse reason, both messages",
			exports: map[string][]catalog.Export{
				"east-1": {withPolicies(export("east-1", 0, catalog.ClusterSetIP, ports, eastEP), a)},
				"west-1": {withPolicies(export("west-1", time.Minute, catalog.ClusterSetIP, []catalog.Port{httpPort(9090)}, westEP), b)},
			},
			wantPolicies: a, wantFrom: "east-1",
			wantClusters: []string{"east-1", "west-1"},
			wantConds: []catalog.Condition{
				conflict("east-1", catalog.ReasonPortConflict, "oldest export, from east-1, wins; conflicting exports: west-1 (PortConflict); "+msgWinner("east-1", "west-1")),
				conflict("west-1", catalog.ReasonPortConflict, "export from west-1 conflicts with the oldest export, from east-1: ports [http:9090/TCP], not [http:8080/TCP]; "+
					msgLoser("west-1", b.Digest, "east-1", a.Digest)),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Merge("east-1", nil, tt.exports)
			if len(v.Services) != 1 {
				t.Fatalf("%d services, want 1", len(v.Services))
			}
			got := v.Services[0]
			if diff := cmp.Diff(tt.wantPolicies, got.Policies); diff != "" {
				t.Errorf("policies (-want +got):\n%s", diff)
			}
			if got.PoliciesCluster != tt.wantFrom {
				t.Errorf("PoliciesCluster = %q, want %q", got.PoliciesCluster, tt.wantFrom)
			}
			if diff := cmp.Diff(tt.wantClusters, got.Clusters); diff != "" {
				t.Errorf("clusters (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantConds, got.Conditions); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			for _, c := range got.Conditions {
				if want := strings.Contains(c.Message, "producer policies"); IsPolicyConflict(c) != want {
					t.Errorf("IsPolicyConflict(%+v) = %v, want %v", c, !want, want)
				}
			}
			if got.Policies != nil {
				for _, es := range tt.exports {
					for _, e := range es {
						if e.Policies != nil && len(e.Policies.Objects) > 0 && &e.Policies.Objects[0][0] == &got.Policies.Objects[0][0] {
							t.Error("the view shares the policies' bytes with an export")
						}
					}
				}
			}
		})
	}
}

func TestCheckPolicies(t *testing.T) {
	echo := func(p *catalog.Policies) *catalog.Export {
		e := export("west-1", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)})
		e.Policies = p
		return &e
	}
	good := encode(t, routeDoc("canary", "echo", 10))
	tampered := *good
	tampered.Digest = strings.Repeat("0", 32)
	unknown := &catalog.Policies{Objects: []json.RawMessage{json.RawMessage(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x","namespace":"demo"}}`)}}
	unknown.Digest = policiesDigest(unknown)
	malformed := &catalog.Policies{Objects: []json.RawMessage{json.RawMessage(`{"apiVersion":"gateway.networking.k8s.io/v1","kind":"HTTPRoute","spec":{"nope":1}}`)}}
	malformed.Digest = policiesDigest(malformed)
	lonelyFault := encode(t, `apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: {name: slow, namespace: demo}
spec: {abort: {httpStatus: 503, percentage: 10}}
`)
	otherNS := encode(t, strings.Replace(routeDoc("canary", "echo", 10), "namespace: demo", "namespace: shop", 1))

	tests := []struct {
		name string
		p    *catalog.Policies
		want string // "" for no error, else a part of the message
	}{
		{name: "none", p: nil},
		{name: "a producer route of the service", p: good},
		{name: "no objects", p: &catalog.Policies{Digest: policiesDigest(&catalog.Policies{})}, want: "no objects"},
		{name: "wrong digest", p: &tampered, want: `digest "00000000000000000000000000000000", but the objects' digest is "` + good.Digest + `"`},
		{name: "unknown kind", p: unknown, want: "policies object 0"},
		{name: "malformed object", p: malformed, want: "policies object 0"},
		{name: "a route of another service", p: encode(t, routeDoc("canary", "shop", 10)), want: "1 of 1 HTTPRoute objects are not producer policies of the service"},
		{name: "a route in another namespace", p: otherNS, want: "1 of 1 HTTPRoute objects are not producer policies"},
		{name: "a FaultInjection no route uses", p: lonelyFault, want: "1 of 1 FaultInjection objects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPolicies(echo(tt.p))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckPolicies: %v", err)
			case tt.want == "":
				return
			case err == nil:
				t.Fatalf("CheckPolicies passed, want an error with %q", tt.want)
			case !errors.Is(err, ErrBadPolicies):
				t.Errorf("error %v does not wrap ErrBadPolicies", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "service demo/echo") {
				t.Errorf("error %q lacks %q or the service", err, tt.want)
			}
		})
	}
}

// FuzzCheckPolicies feeds CheckPolicies what a peer could send: it never
// panics, and what it accepts decodes and names only the service.
func FuzzCheckPolicies(f *testing.F) {
	good := encode(f, routeDoc("canary", "echo", 10))
	b, _ := json.Marshal(good)
	f.Add(b)
	f.Add([]byte(`{"digest":"x","objects":[{}]}`))
	f.Add([]byte(`{"digest":"","objects":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p catalog.Policies
		if err := json.Unmarshal(data, &p); err != nil {
			return
		}
		e := export("west-1", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)})
		e.Policies = &p
		if err := CheckPolicies(&e); err != nil {
			return
		}
		tr, err := policy.DecodePolicies(&p)
		if err != nil {
			t.Fatalf("accepted policies do not decode: %v", err)
		}
		own := policy.ProducerOf(&tr, "demo", "echo")
		if len(own.HTTPRoutes)+len(own.GRPCRoutes)+len(own.Resilience)+len(own.Faults) != len(p.Objects) {
			t.Fatalf("accepted %d objects, %+v are the service's", len(p.Objects), own)
		}
	})
}
