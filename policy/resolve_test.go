package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestResolve(t *testing.T) {
	route := func(ns, fault string) gatewayv1.HTTPRoute {
		r := *mustParse[gatewayv1.HTTPRoute](t, goodHTTPRoute)
		r.Namespace = ns
		r.Spec.Rules[0].Filters[3].ExtensionRef.Name = gatewayv1.ObjectName(fault)
		return r
	}
	grpc := func(fault string) gatewayv1.GRPCRoute {
		r := *mustParse[gatewayv1.GRPCRoute](t, goodGRPCRoute)
		r.Spec.Rules[0].Filters[0].ExtensionRef.Name = gatewayv1.ObjectName(fault)
		return r
	}
	fault := func(ns, name string) FaultInjection {
		f := *mustParse[FaultInjection](t, goodFault)
		f.Namespace, f.Name = ns, name
		return f
	}
	invalidKind := func() gatewayv1.HTTPRoute {
		r := route("demo", "f")
		r.Name = "lua"
		r.Spec.Rules[0].Filters[3].ExtensionRef.Kind = "Lua"
		return r
	}
	onBackend := func() gatewayv1.HTTPRoute {
		r := route("demo", "f")
		r.Name = "backend"
		r.Spec.Rules[0].BackendRefs[1].Filters = append(r.Spec.Rules[0].BackendRefs[1].Filters, r.Spec.Rules[0].Filters[3])
		r.Spec.Rules[0].BackendRefs[1].Filters[1].ExtensionRef = &gatewayv1.LocalObjectReference{Group: ExtensionGroup, Kind: KindFaultInjection, Name: "gone"}
		return r
	}
	tests := []struct {
		name string
		in   Traffic
		want []RefProblem
	}{
		{"resolved", Traffic{HTTPRoutes: []gatewayv1.HTTPRoute{route("demo", "f")}, GRPCRoutes: []gatewayv1.GRPCRoute{grpc("f")}, Faults: []FaultInjection{fault("demo", "f")}}, nil},
		{"missing", Traffic{HTTPRoutes: []gatewayv1.HTTPRoute{route("demo", "f")}, GRPCRoutes: []gatewayv1.GRPCRoute{grpc("g")}, Faults: []FaultInjection{fault("demo", "g")}},
			[]RefProblem{{Kind: KindHTTPRoute, Namespace: "demo", Name: "r", Field: "spec.rules[0].filters[3].extensionRef", Reason: gatewayv1.RouteReasonBackendNotFound, Message: "FaultInjection demo/f does not exist"}}},
		{"in another namespace", Traffic{HTTPRoutes: []gatewayv1.HTTPRoute{route("shop", "f")}, Faults: []FaultInjection{fault("demo", "f")}},
			[]RefProblem{{Kind: KindHTTPRoute, Namespace: "shop", Name: "r", Field: "spec.rules[0].filters[3].extensionRef", Reason: gatewayv1.RouteReasonBackendNotFound, Message: "FaultInjection shop/f does not exist"}}},
		{"gRPC", Traffic{GRPCRoutes: []gatewayv1.GRPCRoute{grpc("f")}},
			[]RefProblem{{Kind: KindGRPCRoute, Namespace: "demo", Name: "g", Field: "spec.rules[0].filters[0].extensionRef", Reason: gatewayv1.RouteReasonBackendNotFound, Message: "FaultInjection demo/f does not exist"}}},
		{"invalid kind", Traffic{HTTPRoutes: []gatewayv1.HTTPRoute{invalidKind()}, Faults: []FaultInjection{fault("demo", "f")}},
			[]RefProblem{{Kind: KindHTTPRoute, Namespace: "demo", Name: "lua", Field: "spec.rules[0].filters[3].extensionRef", Reason: gatewayv1.RouteReasonInvalidKind,
				Message: `group "fedmesh.io" kind "Lua" is not an extension fedmesh knows (group fedmesh.io, kind FaultInjection)`}}},
		{"on a backendRef", Traffic{HTTPRoutes: []gatewayv1.HTTPRoute{onBackend()}, Faults: []FaultInjection{fault("demo", "f")}},
			[]RefProblem{{Kind: KindHTTPRoute, Namespace: "demo", Name: "backend", Field: "spec.rules[0].backendRefs[1].filters[1].extensionRef", Reason: gatewayv1.RouteReasonBackendNotFound, Message: "FaultInjection demo/gone does not exist"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.Resolve()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("Resolve (-want +got):\n%s", diff)
			}
			kept := tt.in.Without(got)
			if n := len(tt.in.HTTPRoutes) + len(tt.in.GRPCRoutes) - len(kept.HTTPRoutes) - len(kept.GRPCRoutes); n != len(got) {
				t.Errorf("Without dropped %d routes, want %d (one per problem here)", n, len(got))
			}
			if p := kept.Resolve(); len(p) != 0 {
				t.Errorf("what Without keeps still has problems: %v", p)
			}
			if len(kept.Faults) != len(tt.in.Faults) {
				t.Errorf("Without dropped FaultInjections")
			}
		})
	}
}

func TestRefProblemError(t *testing.T) {
	p := RefProblem{Kind: KindHTTPRoute, Namespace: "demo", Name: "r", Field: "spec.rules[0].filters[0].extensionRef", Reason: gatewayv1.RouteReasonBackendNotFound, Message: "FaultInjection demo/f does not exist"}
	want := "HTTPRoute demo/r: spec.rules[0].filters[0].extensionRef: BackendNotFound: FaultInjection demo/f does not exist"
	if got := p.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestSortTraffic(t *testing.T) {
	var tr Traffic
	for _, key := range []string{"b/a", "a/z", "a/b"} {
		ns, name, _ := strings.Cut(key, "/")
		h := gatewayv1.HTTPRoute{}
		h.Namespace, h.Name = ns, name
		g := gatewayv1.GRPCRoute{}
		g.Namespace, g.Name = ns, name
		r := ResiliencePolicy{}
		r.Namespace, r.Name = ns, name
		f := FaultInjection{}
		f.Namespace, f.Name = ns, name
		tr.HTTPRoutes, tr.GRPCRoutes = append(tr.HTTPRoutes, h), append(tr.GRPCRoutes, g)
		tr.Resilience, tr.Faults = append(tr.Resilience, r), append(tr.Faults, f)
	}
	SortTraffic(&tr)
	want := []string{"a/b", "a/z", "b/a"}
	var got [4][]string
	for i := range 3 {
		got[0] = append(got[0], tr.HTTPRoutes[i].Namespace+"/"+tr.HTTPRoutes[i].Name)
		got[1] = append(got[1], tr.GRPCRoutes[i].Namespace+"/"+tr.GRPCRoutes[i].Name)
		got[2] = append(got[2], tr.Resilience[i].Key())
		got[3] = append(got[3], tr.Faults[i].Key())
	}
	for i, g := range got {
		if diff := cmp.Diff(want, g); diff != "" {
			t.Errorf("list %d (-want +got):\n%s", i, diff)
		}
	}
}
