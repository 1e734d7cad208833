package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
)

// ExtensionGroup is the group of an ExtensionRef filter naming a
// FaultInjection.
const ExtensionGroup = Group

// NamesService reports whether a parentRef or targetRef of group, kind
// and name, in namespace refNS (the ref's own, or the referring object's
// when unset), names service ns/name: a Service ("" group) or a
// ServiceImport (multicluster.x-k8s.io) both name the service across
// the clusterset.
func NamesService(group, kind, name, refNS, ns, svc string) bool {
	switch {
	case group == "" && kind == KindService:
	case group == MCSGroup && kind == KindServiceImport:
	default:
		return false
	}
	return name == svc && refNS == ns
}

// parentNamesService reports whether route parent ref pr of a route in
// routeNS names service ns/name.
func parentNamesService(pr gatewayv1.ParentReference, routeNS, ns, name string) bool {
	// Unset, a parent is a Gateway (the Gateway API's defaults), which
	// names no service.
	group, kind, refNS := GatewayGroup, "Gateway", routeNS
	if pr.Group != nil {
		group = string(*pr.Group)
	}
	if pr.Kind != nil {
		kind = string(*pr.Kind)
	}
	if pr.Namespace != nil {
		refNS = string(*pr.Namespace)
	}
	return NamesService(group, kind, string(pr.Name), refNS, ns, name)
}

// RouteParents reports whether any of parents names service ns/name.
func RouteParents(parents []gatewayv1.ParentReference, routeNS, ns, name string) bool {
	for _, pr := range parents {
		if parentNamesService(pr, routeNS, ns, name) {
			return true
		}
	}
	return false
}

// Targets reports whether any of refs (local to namespace refNS) names
// service ns/name.
func Targets(refs []TargetRef, refNS, ns, name string) bool {
	for _, r := range refs {
		if NamesService(r.Group, r.Kind, r.Name, refNS, ns, name) {
			return true
		}
	}
	return false
}

// ProducerOf returns the producer routes and policies of service ns/name
// in t: routes in namespace ns whose parentRefs name the service (GAMMA
// producer routes), ResiliencePolicies in ns targeting it, and the
// FaultInjections those routes use. Lists keep t's order. TelemetryPolicies
// are never producer policies: the result has none.
func ProducerOf(t *Traffic, ns, name string) Traffic {
	var out Traffic
	faults := map[string]bool{}
	for i := range t.HTTPRoutes {
		r := &t.HTTPRoutes[i]
		if r.Namespace == ns && RouteParents(r.Spec.ParentRefs, r.Namespace, ns, name) {
			out.HTTPRoutes = append(out.HTTPRoutes, *r)
			for _, rule := range r.Spec.Rules {
				for _, f := range rule.Filters {
					if f.ExtensionRef != nil && string(f.ExtensionRef.Group) == ExtensionGroup && string(f.ExtensionRef.Kind) == KindFaultInjection {
						faults[string(f.ExtensionRef.Name)] = true
					}
				}
			}
		}
	}
	for i := range t.GRPCRoutes {
		r := &t.GRPCRoutes[i]
		if r.Namespace == ns && RouteParents(r.Spec.ParentRefs, r.Namespace, ns, name) {
			out.GRPCRoutes = append(out.GRPCRoutes, *r)
			for _, rule := range r.Spec.Rules {
				for _, f := range rule.Filters {
					if f.ExtensionRef != nil && string(f.ExtensionRef.Group) == ExtensionGroup && string(f.ExtensionRef.Kind) == KindFaultInjection {
						faults[string(f.ExtensionRef.Name)] = true
					}
				}
			}
		}
	}
	for i := range t.Resilience {
		p := &t.Resilience[i]
		if p.Namespace == ns && Targets(p.Spec.TargetRefs, p.Namespace, ns, name) {
			out.Resilience = append(out.Resilience, *p)
		}
	}
	for i := range t.Faults {
		f := &t.Faults[i]
		if f.Namespace == ns && faults[f.Name] {
			out.Faults = append(out.Faults, *f)
		}
	}
	return out
}

// EncodePolicies renders t as the catalog's opaque Policies: one
// canonical JSON document per object (apiVersion, kind, metadata with
// name and namespace only, spec), ordered by kind, namespace and name.
// TelemetryPolicies and RateLimitPolicies are local to their cluster and
// left out. A t with
// no other object encodes to nil.
func EncodePolicies(t Traffic) (*catalog.Policies, error) {
	t.Telemetry, t.RateLimits = nil, nil
	if t.Empty() {
		return nil, nil
	}
	type doc struct {
		kind, key string
		v         any
	}
	var docs []doc
	meta := func(m metav1.ObjectMeta) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace}
	}
	for _, r := range t.HTTPRoutes {
		docs = append(docs, doc{KindHTTPRoute, r.Namespace + "/" + r.Name, gatewayv1.HTTPRoute{
			TypeMeta:   metav1.TypeMeta{APIVersion: GatewayAPIVersion, Kind: KindHTTPRoute},
			ObjectMeta: meta(r.ObjectMeta), Spec: r.Spec,
		}})
	}
	for _, r := range t.GRPCRoutes {
		docs = append(docs, doc{KindGRPCRoute, r.Namespace + "/" + r.Name, gatewayv1.GRPCRoute{
			TypeMeta:   metav1.TypeMeta{APIVersion: GatewayAPIVersion, Kind: KindGRPCRoute},
			ObjectMeta: meta(r.ObjectMeta), Spec: r.Spec,
		}})
	}
	for _, p := range t.Resilience {
		docs = append(docs, doc{KindResiliencePolicy, p.Key(), ResiliencePolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: APIVersion, Kind: KindResiliencePolicy},
			ObjectMeta: meta(p.ObjectMeta), Spec: p.Spec,
		}})
	}
	for _, f := range t.Faults {
		docs = append(docs, doc{KindFaultInjection, f.Key(), FaultInjection{
			TypeMeta:   metav1.TypeMeta{APIVersion: APIVersion, Kind: KindFaultInjection},
			ObjectMeta: meta(f.ObjectMeta), Spec: f.Spec,
		}})
	}
	slices.SortStableFunc(docs, func(a, b doc) int {
		if c := strings.Compare(a.kind, b.kind); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	out := &catalog.Policies{Objects: make([]json.RawMessage, len(docs))}
	h := sha256.New()
	for i, d := range docs {
		b, err := json.Marshal(d.v)
		if err != nil {
			return nil, fmt.Errorf("encoding %s %s: %w", d.kind, d.key, err)
		}
		out.Objects[i] = b
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	out.Digest = hex.EncodeToString(h.Sum(nil)[:16])
	return out, nil
}

// DecodePolicies reads Policies back into a Traffic set, strictly; an
// unknown kind or a malformed document is an error naming its position.
// Nil decodes to an empty set.
func DecodePolicies(p *catalog.Policies) (Traffic, error) {
	var t Traffic
	if p == nil {
		return t, nil
	}
	for i, raw := range p.Objects {
		obj, err := ParseObject(raw)
		if err != nil {
			return Traffic{}, fmt.Errorf("policies object %d: %w", i, err)
		}
		if _, ok := obj.(*TelemetryPolicy); ok {
			return Traffic{}, fmt.Errorf("policies object %d: %w: a %s is local to its cluster, never a producer policy", i, ErrParseTraffic, KindTelemetryPolicy)
		}
		if _, ok := obj.(*RateLimitPolicy); ok {
			return Traffic{}, fmt.Errorf("policies object %d: %w: a %s is local to its cluster, never a producer policy", i, ErrParseTraffic, KindRateLimitPolicy)
		}
		if err := t.Add(obj); err != nil {
			return Traffic{}, fmt.Errorf("policies object %d: %w", i, err)
		}
	}
	return t, nil
}

// Add appends a parsed traffic object (*gatewayv1.HTTPRoute,
// *gatewayv1.GRPCRoute, *ResiliencePolicy, *FaultInjection,
// *TelemetryPolicy or *RateLimitPolicy) to t.
func (t *Traffic) Add(obj any) error {
	switch o := obj.(type) {
	case *gatewayv1.HTTPRoute:
		t.HTTPRoutes = append(t.HTTPRoutes, *o)
	case *gatewayv1.GRPCRoute:
		t.GRPCRoutes = append(t.GRPCRoutes, *o)
	case *ResiliencePolicy:
		t.Resilience = append(t.Resilience, *o)
	case *FaultInjection:
		t.Faults = append(t.Faults, *o)
	case *TelemetryPolicy:
		t.Telemetry = append(t.Telemetry, *o)
	case *RateLimitPolicy:
		t.RateLimits = append(t.RateLimits, *o)
	default:
		return fmt.Errorf("%T is not a traffic object", obj)
	}
	return nil
}
