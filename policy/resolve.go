package policy

import (
	"cmp"
	"fmt"
	"slices"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// RefProblem is a reference of a route that does not resolve within a
// Traffic set. The route is refused as a whole (never half-applied); a
// Kubernetes source writes ResolvedRefs=False with Reason.
type RefProblem struct {
	// Kind is KindHTTPRoute or KindGRPCRoute; Namespace and Name name
	// the route.
	Kind      string
	Namespace string
	Name      string
	// Field is the path of the reference, such as
	// spec.rules[0].filters[1].extensionRef.
	Field string
	// Reason is the Gateway API route condition reason:
	// BackendNotFound or InvalidKind.
	Reason gatewayv1.RouteConditionReason
	// Message says what is missing, for people.
	Message string
}

// Object names the route: "HTTPRoute NAMESPACE/NAME".
func (p RefProblem) Object() string { return p.Kind + " " + p.Namespace + "/" + p.Name }

// Error renders the problem as "OBJECT: FIELD: REASON: MESSAGE".
func (p RefProblem) Error() string {
	return fmt.Sprintf("%s: %s: %s: %s", p.Object(), p.Field, p.Reason, p.Message)
}

// Resolve checks the references between the objects of t: every
// ExtensionRef filter of a route (on a rule or a backendRef) must name a
// FaultInjection of the route's namespace in t. It returns one problem
// per unresolved reference, in route order (HTTPRoutes, then
// GRPCRoutes, each in t's order). It is pure; Without drops the routes
// it names.
func (t *Traffic) Resolve() []RefProblem {
	faults := make(map[string]bool, len(t.Faults))
	for i := range t.Faults {
		faults[t.Faults[i].Key()] = true
	}
	var out []RefProblem
	check := func(kind, ns, name, field string, e *gatewayv1.LocalObjectReference) {
		if e == nil {
			return
		}
		p := RefProblem{Kind: kind, Namespace: ns, Name: name, Field: field}
		switch {
		case string(e.Group) != ExtensionGroup || string(e.Kind) != KindFaultInjection:
			p.Reason = gatewayv1.RouteReasonInvalidKind
			p.Message = fmt.Sprintf("group %q kind %q is not an extension fedmesh knows (group %s, kind %s)", e.Group, e.Kind, ExtensionGroup, KindFaultInjection)
		case !faults[ns+"/"+string(e.Name)]:
			p.Reason = gatewayv1.RouteReasonBackendNotFound
			p.Message = fmt.Sprintf("FaultInjection %s/%s does not exist", ns, e.Name)
		default:
			return
		}
		out = append(out, p)
	}
	for i := range t.HTTPRoutes {
		r := &t.HTTPRoutes[i]
		for ri := range r.Spec.Rules {
			rule := &r.Spec.Rules[ri]
			for fi := range rule.Filters {
				check(KindHTTPRoute, r.Namespace, r.Name, fmt.Sprintf("spec.rules[%d].filters[%d].extensionRef", ri, fi), rule.Filters[fi].ExtensionRef)
			}
			for bi := range rule.BackendRefs {
				for fi, f := range rule.BackendRefs[bi].Filters {
					check(KindHTTPRoute, r.Namespace, r.Name, fmt.Sprintf("spec.rules[%d].backendRefs[%d].filters[%d].extensionRef", ri, bi, fi), f.ExtensionRef)
				}
			}
		}
	}
	for i := range t.GRPCRoutes {
		r := &t.GRPCRoutes[i]
		for ri := range r.Spec.Rules {
			rule := &r.Spec.Rules[ri]
			for fi := range rule.Filters {
				check(KindGRPCRoute, r.Namespace, r.Name, fmt.Sprintf("spec.rules[%d].filters[%d].extensionRef", ri, fi), rule.Filters[fi].ExtensionRef)
			}
			for bi := range rule.BackendRefs {
				for fi, f := range rule.BackendRefs[bi].Filters {
					check(KindGRPCRoute, r.Namespace, r.Name, fmt.Sprintf("spec.rules[%d].backendRefs[%d].filters[%d].extensionRef", ri, bi, fi), f.ExtensionRef)
				}
			}
		}
	}
	return out
}

// Without returns t less the routes that problems name; the policies
// and the other routes are shared with t, not copied.
func (t *Traffic) Without(problems []RefProblem) Traffic {
	if len(problems) == 0 {
		return *t
	}
	drop := make(map[string]bool, len(problems))
	for _, p := range problems {
		drop[p.Object()] = true
	}
	out := Traffic{Resilience: t.Resilience, Faults: t.Faults, Telemetry: t.Telemetry, RateLimits: t.RateLimits}
	for _, r := range t.HTTPRoutes {
		if !drop[KindHTTPRoute+" "+r.Namespace+"/"+r.Name] {
			out.HTTPRoutes = append(out.HTTPRoutes, r)
		}
	}
	for _, r := range t.GRPCRoutes {
		if !drop[KindGRPCRoute+" "+r.Namespace+"/"+r.Name] {
			out.GRPCRoutes = append(out.GRPCRoutes, r)
		}
	}
	return out
}

// SortTraffic orders each list of t by namespace, then name.
func SortTraffic(t *Traffic) {
	slices.SortStableFunc(t.HTTPRoutes, func(a, b gatewayv1.HTTPRoute) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortStableFunc(t.GRPCRoutes, func(a, b gatewayv1.GRPCRoute) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortStableFunc(t.Resilience, func(a, b ResiliencePolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortStableFunc(t.Faults, func(a, b FaultInjection) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortStableFunc(t.Telemetry, func(a, b TelemetryPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortStableFunc(t.RateLimits, func(a, b RateLimitPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}
