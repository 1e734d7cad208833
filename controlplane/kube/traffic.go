package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
)

// The resources of the traffic objects: Gateway API routes
// (deploy/base/crds/gateway.networking.k8s.io_*.yaml, from
// sigs.k8s.io/gateway-api) and fedmesh's policies
// (deploy/base/crds/fedmesh.io_resiliencepolicies.yaml,
// fedmesh.io_faultinjections.yaml, fedmesh.io_telemetrypolicies.yaml and
// fedmesh.io_ratelimitpolicies.yaml).
var (
	HTTPRouteResource        = schema.GroupVersionResource{Group: policy.GatewayGroup, Version: "v1", Resource: "httproutes"}
	GRPCRouteResource        = schema.GroupVersionResource{Group: policy.GatewayGroup, Version: "v1", Resource: "grpcroutes"}
	ResiliencePolicyResource = schema.GroupVersionResource{Group: policy.Group, Version: policy.Version, Resource: "resiliencepolicies"}
	FaultInjectionResource   = schema.GroupVersionResource{Group: policy.Group, Version: policy.Version, Resource: "faultinjections"}
	TelemetryPolicyResource  = schema.GroupVersionResource{Group: policy.Group, Version: policy.Version, Resource: "telemetrypolicies"}
	RateLimitPolicyResource  = schema.GroupVersionResource{Group: policy.Group, Version: policy.Version, Resource: "ratelimitpolicies"}
)

// trafficResources are the traffic resources, in the order they are
// evaluated (a route's ExtensionRef needs the FaultInjections in force).
var trafficResources = []crdResource{
	{policy.KindFaultInjection, FaultInjectionResource},
	{policy.KindResiliencePolicy, ResiliencePolicyResource},
	{policy.KindHTTPRoute, HTTPRouteResource},
	{policy.KindGRPCRoute, GRPCRouteResource},
	{policy.KindTelemetryPolicy, TelemetryPolicyResource},
	{policy.KindRateLimitPolicy, RateLimitPolicyResource},
}

// ControllerName is the controllerName of the route status entries
// fedmesh writes (status.parents[].controllerName).
const ControllerName gatewayv1.GatewayController = "fedmesh.io/mesh-controller"

// TrafficObjectFromUnstructured converts a traffic object as the API
// server serves it (HTTPRoute, GRPCRoute, ResiliencePolicy or
// FaultInjection) into its typed value (*gatewayv1.HTTPRoute,
// *gatewayv1.GRPCRoute, *policy.ResiliencePolicy or
// *policy.FaultInjection) through policy.ParseObject: the same strict
// decoding and validation the file source applies. The status (the
// control plane's own output) is left out, and of the metadata only the
// name and namespace are kept, so that a status write or a label change
// does not change what is in force. The reason classifies an error as
// source.ReasonInvalid (a *catalog.ValidationError naming the fields) or
// source.ReasonParse.
func TrafficObjectFromUnstructured(u *unstructured.Unstructured) (any, source.Reason, error) {
	doc := make(map[string]any, len(u.Object))
	for k, v := range u.Object {
		switch k {
		case "status", "metadata":
		default:
			doc[k] = v
		}
	}
	doc["metadata"] = map[string]any{"name": u.GetName(), "namespace": u.GetNamespace()}
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, source.ReasonParse, fmt.Errorf("%w: %w", policy.ErrParseTraffic, err)
	}
	obj, err := policy.ParseObject(data)
	if err != nil {
		if errors.Is(err, catalog.ErrInvalid) {
			return nil, source.ReasonInvalid, err
		}
		return nil, source.ReasonParse, err
	}
	return obj, "", nil
}

// TrafficStatus is what the source found of one traffic object: the
// object as the informer's cache holds it (the caller may not change
// it), its resource, and the status it should carry. Conditions'
// ObservedGeneration is the object's generation.
type TrafficStatus struct {
	Resource schema.GroupVersionResource
	Object   *unstructured.Unstructured
	// Parents, for a route, are fedmesh's entries of status.parents: one
	// per parentRef fedmesh is responsible for (every parent outside the
	// gateway.networking.k8s.io group, whose Gateways and ListenerSets
	// belong to gateway controllers), each with Accepted and
	// ResolvedRefs.
	Parents []gatewayv1.RouteParentStatus
	// Conditions, for a ResiliencePolicy, FaultInjection or
	// TelemetryPolicy or RateLimitPolicy, are status.conditions: Accepted,
	// and for all but a FaultInjection ResolvedRefs.
	Conditions []metav1.Condition
}

// trafficRefs tells which objects a traffic object may refer to exist in
// the cluster. Both are read from informer caches.
type trafficRefs struct {
	service       func(namespace, name string) bool
	serviceImport func(namespace, name string) bool
}

// acceptedTraffic is the last version of one object that was accepted:
// a *gatewayv1.HTTPRoute, *gatewayv1.GRPCRoute, *policy.ResiliencePolicy
// or *policy.FaultInjection.
type acceptedTraffic struct {
	generation int64
	obj        any
}

// trafficObjects are the objects of the traffic kinds in the informers'
// caches.
type trafficObjects map[string][]*unstructured.Unstructured // by kind

// trafficEval is what evaluateTraffic makes of the cached objects: the
// objects in force, each list sorted, and every object's status, by
// kind, then namespace/name.
type trafficEval = crdEval[policy.Traffic, TrafficStatus, acceptedTraffic]

// evaluateTraffic decides, from the traffic objects in the caches, which
// are in force and what status each carries. An object is refused whole
// when policy.ParseObject refuses it, or when a route rule's
// ExtensionRef filter names anything but a FaultInjection in force in
// the route's namespace. A refused object that was accepted before (same
// UID) keeps its last accepted version in force; one that never was is
// not in force. A backend or targetRef that names no existing Service or
// ServiceImport does not refuse the object: it says so in ResolvedRefs,
// and the reference works once the service exists. It is pure: lastGood
// is not changed.
func evaluateTraffic(objs trafficObjects, lastGood map[types.UID]acceptedTraffic, refs trafficRefs) trafficEval {
	ev := trafficEval{lastGood: map[types.UID]acceptedTraffic{}}
	// faults are the FaultInjections in force, by namespace/name.
	faults := map[string]bool{}
	for _, tr := range trafficResources {
		list := append([]*unstructured.Unstructured(nil), objs[tr.kind]...)
		sort.Slice(list, func(i, j int) bool {
			if list[i].GetNamespace() != list[j].GetNamespace() {
				return list[i].GetNamespace() < list[j].GetNamespace()
			}
			return list[i].GetName() < list[j].GetName()
		})
		for _, u := range list {
			ref := source.ObjectRef{Kind: tr.kind, Namespace: u.GetNamespace(), Name: u.GetName()}
			gen := u.GetGeneration()
			obj, reason, err := TrafficObjectFromUnstructured(u)
			if err == nil {
				reason, err = crossCheck(obj, faults)
			}
			var prob *source.Problem
			inForce := obj
			if err == nil {
				ev.lastGood[u.GetUID()] = acceptedTraffic{generation: gen, obj: obj}
			} else {
				prob = &source.Problem{Object: ref.String(), Reason: reason, Err: err}
				ev.problems = append(ev.problems, *prob)
				ev.refused = append(ev.refused, crdRefusal{uid: u.GetUID(), generation: gen, kind: tr.kind, reason: reason, problem: *prob})
				inForce = nil
				if g, ok := lastGood[u.GetUID()]; ok {
					ev.lastGood[u.GetUID()] = g
					inForce = g.obj
				}
			}
			if inForce != nil {
				_ = ev.inForce.Add(inForce) // always one of the traffic types
				if f, ok := inForce.(*policy.FaultInjection); ok {
					faults[f.Key()] = true
				}
			}
			accepted := acceptedCondition(tr.kind, prob, lastGood[u.GetUID()], inForce != nil)
			accepted.ObservedGeneration = gen
			st := TrafficStatus{Resource: tr.resource, Object: u}
			view := obj
			if view == nil {
				view = lenientTraffic(tr.kind, u) // nil when even that fails
			}
			switch tr.kind {
			case policy.KindFaultInjection:
				st.Conditions = []metav1.Condition{accepted}
			case policy.KindResiliencePolicy:
				resolved := metav1.Condition{Type: PolicyConditionResolvedRefs, Status: metav1.ConditionUnknown, Reason: PolicyReasonPending,
					Message: "spec.targetRefs could not be read"}
				if p, ok := view.(*policy.ResiliencePolicy); ok {
					resolved = resolveServiceRefs(p.Namespace, p.Spec.TargetRefs, refs)
				}
				resolved.ObservedGeneration = gen
				st.Conditions = []metav1.Condition{accepted, resolved}
			case policy.KindTelemetryPolicy:
				resolved := metav1.Condition{Type: PolicyConditionResolvedRefs, Status: metav1.ConditionUnknown, Reason: PolicyReasonPending,
					Message: "spec.targetRefs could not be read"}
				if p, ok := view.(*policy.TelemetryPolicy); ok {
					resolved = resolveServiceRefs(p.Namespace, p.Spec.TargetRefs, refs)
				}
				resolved.ObservedGeneration = gen
				st.Conditions = []metav1.Condition{accepted, resolved}
			case policy.KindRateLimitPolicy:
				resolved := metav1.Condition{Type: PolicyConditionResolvedRefs, Status: metav1.ConditionUnknown, Reason: PolicyReasonPending,
					Message: "spec.targetRefs could not be read"}
				if p, ok := view.(*policy.RateLimitPolicy); ok {
					resolved = resolveServiceRefs(p.Namespace, p.Spec.TargetRefs, refs)
				}
				resolved.ObservedGeneration = gen
				st.Conditions = []metav1.Condition{accepted, resolved}
			default:
				rr, ok := routeRefsOf(view)
				if !ok {
					break // the parentRefs cannot be read: no entry to write
				}
				resolved := resolveRouteRefs(u.GetNamespace(), rr, faults, refs)
				resolved.ObservedGeneration = gen
				st.Parents = parentStatuses(rr.parents, accepted, resolved)
			}
			ev.statuses = append(ev.statuses, st)
		}
	}
	return ev
}

// acceptedCondition is the Accepted condition of an object of kind:
// True when it is valid, else False with the problem, and whether an
// earlier version stays in force. Routes take the Gateway API's route
// reasons (UnsupportedValue when refused), policies GEP-713's (Invalid).
func acceptedCondition(kind string, prob *source.Problem, last acceptedTraffic, lastInForce bool) metav1.Condition {
	route := kind == policy.KindHTTPRoute || kind == policy.KindGRPCRoute
	if prob == nil {
		reason := PolicyReasonAccepted
		msg := "the " + strings.ToLower(kindNoun(kind)) + " is in force"
		if route {
			reason = string(gatewayv1.RouteReasonAccepted)
		}
		return metav1.Condition{Type: PolicyConditionAccepted, Status: metav1.ConditionTrue, Reason: reason, Message: msg}
	}
	msg := prob.Error()
	if lastInForce {
		msg += fmt.Sprintf("; the last accepted version (generation %d) stays in force", last.generation)
	} else {
		msg += "; the " + strings.ToLower(kindNoun(kind)) + " is not in force"
	}
	reason := PolicyReasonInvalid
	if route {
		reason = string(gatewayv1.RouteReasonUnsupportedValue)
	}
	return metav1.Condition{Type: PolicyConditionAccepted, Status: metav1.ConditionFalse, Reason: reason, Message: truncate(msg, maxConditionMessage)}
}

func kindNoun(kind string) string {
	switch kind {
	case policy.KindHTTPRoute, policy.KindGRPCRoute:
		return "route"
	case policy.KindFaultInjection:
		return "fault"
	}
	return "policy"
}

// lenientTraffic decodes a refused object without validation, so that
// its status can still say what its references resolve to; nil when it
// cannot be decoded at all.
func lenientTraffic(kind string, u *unstructured.Unstructured) any {
	var obj any
	switch kind {
	case policy.KindHTTPRoute:
		obj = new(gatewayv1.HTTPRoute)
	case policy.KindGRPCRoute:
		obj = new(gatewayv1.GRPCRoute)
	case policy.KindResiliencePolicy:
		obj = new(policy.ResiliencePolicy)
	case policy.KindTelemetryPolicy:
		obj = new(policy.TelemetryPolicy)
	case policy.KindRateLimitPolicy:
		obj = new(policy.RateLimitPolicy)
	default:
		return nil
	}
	data, err := json.Marshal(u.Object)
	if err != nil {
		return nil
	}
	if err := json.Unmarshal(data, obj); err != nil {
		return nil
	}
	return obj
}

// routeRefs are the references of one route, each with its field path.
type routeRefs struct {
	parents    []gatewayv1.ParentReference
	backends   []fieldRef[gatewayv1.BackendObjectReference]
	extensions []fieldRef[gatewayv1.LocalObjectReference]
}

type fieldRef[T any] struct {
	field string
	ref   T
}

// routeRefsOf collects the references of an HTTPRoute or GRPCRoute:
// parents, backends (rule backendRefs and RequestMirror filters, at rule
// and backend level) and ExtensionRef filters.
func routeRefsOf(obj any) (routeRefs, bool) {
	var rr routeRefs
	addHTTPFilters := func(path string, fs []gatewayv1.HTTPRouteFilter) {
		for j, f := range fs {
			p := fmt.Sprintf("%s.filters[%d]", path, j)
			if f.RequestMirror != nil {
				rr.backends = append(rr.backends, fieldRef[gatewayv1.BackendObjectReference]{p + ".requestMirror.backendRef", f.RequestMirror.BackendRef})
			}
			if f.ExtensionRef != nil {
				rr.extensions = append(rr.extensions, fieldRef[gatewayv1.LocalObjectReference]{p + ".extensionRef", *f.ExtensionRef})
			}
		}
	}
	addGRPCFilters := func(path string, fs []gatewayv1.GRPCRouteFilter) {
		for j, f := range fs {
			p := fmt.Sprintf("%s.filters[%d]", path, j)
			if f.RequestMirror != nil {
				rr.backends = append(rr.backends, fieldRef[gatewayv1.BackendObjectReference]{p + ".requestMirror.backendRef", f.RequestMirror.BackendRef})
			}
			if f.ExtensionRef != nil {
				rr.extensions = append(rr.extensions, fieldRef[gatewayv1.LocalObjectReference]{p + ".extensionRef", *f.ExtensionRef})
			}
		}
	}
	switch r := obj.(type) {
	case *gatewayv1.HTTPRoute:
		rr.parents = r.Spec.ParentRefs
		for i, rule := range r.Spec.Rules {
			rp := fmt.Sprintf("spec.rules[%d]", i)
			addHTTPFilters(rp, rule.Filters)
			for k, b := range rule.BackendRefs {
				bp := fmt.Sprintf("%s.backendRefs[%d]", rp, k)
				rr.backends = append(rr.backends, fieldRef[gatewayv1.BackendObjectReference]{bp, b.BackendObjectReference})
				addHTTPFilters(bp, b.Filters)
			}
		}
	case *gatewayv1.GRPCRoute:
		rr.parents = r.Spec.ParentRefs
		for i, rule := range r.Spec.Rules {
			rp := fmt.Sprintf("spec.rules[%d]", i)
			addGRPCFilters(rp, rule.Filters)
			for k, b := range rule.BackendRefs {
				bp := fmt.Sprintf("%s.backendRefs[%d]", rp, k)
				rr.backends = append(rr.backends, fieldRef[gatewayv1.BackendObjectReference]{bp, b.BackendObjectReference})
				addGRPCFilters(bp, b.Filters)
			}
		}
	default:
		return rr, false
	}
	return rr, true
}

// crossCheck checks what a single object cannot: every ExtensionRef
// filter of a route names a FaultInjection (the only extension fedmesh
// implements) that is in force in the route's namespace. A kind that is
// not FaultInjection is source.ReasonInvalid, a missing one
// source.ReasonUnmatched.
func crossCheck(obj any, faults map[string]bool) (source.Reason, error) {
	rr, ok := routeRefsOf(obj)
	if !ok {
		return "", nil
	}
	var ns, object string
	switch r := obj.(type) {
	case *gatewayv1.HTTPRoute:
		ns, object = r.Namespace, policy.KindHTTPRoute+" "+r.Namespace+"/"+r.Name
	case *gatewayv1.GRPCRoute:
		ns, object = r.Namespace, policy.KindGRPCRoute+" "+r.Namespace+"/"+r.Name
	}
	var fields []*catalog.FieldError
	reason := source.ReasonUnmatched
	for _, e := range rr.extensions {
		switch {
		case string(e.ref.Group) != policy.ExtensionGroup || string(e.ref.Kind) != policy.KindFaultInjection:
			reason = source.ReasonInvalid
			fields = append(fields, &catalog.FieldError{Field: e.field, Value: string(e.ref.Group) + "/" + string(e.ref.Kind),
				Reason: "fedmesh implements no extension filter but " + policy.ExtensionGroup + "/" + policy.KindFaultInjection})
		case !faults[ns+"/"+string(e.ref.Name)]:
			fields = append(fields, &catalog.FieldError{Field: e.field + ".name", Value: string(e.ref.Name),
				Reason: "no FaultInjection of that name is in force in namespace " + ns})
		}
	}
	if len(fields) == 0 {
		return "", nil
	}
	return reason, &catalog.ValidationError{Object: object, Fields: fields}
}

// backendGroupKind is a backendRef's group and kind, with the Gateway
// API's defaults ("" and Service).
func backendGroupKind(b gatewayv1.BackendObjectReference) (string, string) {
	group, kind := "", policy.KindService
	if b.Group != nil {
		group = string(*b.Group)
	}
	if b.Kind != nil {
		kind = string(*b.Kind)
	}
	return group, kind
}

// parentGroupKind is a parentRef's group and kind, with the Gateway
// API's defaults (gateway.networking.k8s.io and Gateway), which the API
// server fills in.
func parentGroupKind(p gatewayv1.ParentReference) (string, string) {
	group, kind := policy.GatewayGroup, "Gateway"
	if p.Group != nil {
		group = string(*p.Group)
	}
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	return group, kind
}

// serviceExists reports whether group/kind ns/name is an existing
// Service or ServiceImport, and whether it is one of those kinds.
func serviceExists(group, kind, ns, name string, refs trafficRefs) (exists, known bool) {
	switch {
	case group == "" && kind == policy.KindService:
		return refs.service(ns, name), true
	case group == policy.MCSGroup && kind == policy.KindServiceImport:
		return refs.serviceImport(ns, name), true
	}
	return false, false
}

// resolveRouteRefs is the ResolvedRefs condition of a route of
// namespace ns. Its reason is the first unresolved ref's (InvalidKind,
// BackendNotFound); the message lists every one.
func resolveRouteRefs(ns string, rr routeRefs, faults map[string]bool, refs trafficRefs) metav1.Condition {
	var reason gatewayv1.RouteConditionReason
	var msgs []string
	fail := func(r gatewayv1.RouteConditionReason, msg string) {
		if reason == "" {
			reason = r
		}
		msgs = append(msgs, msg)
	}
	for _, b := range rr.backends {
		group, kind := backendGroupKind(b.ref)
		bns := ns
		if b.ref.Namespace != nil {
			bns = string(*b.ref.Namespace)
		}
		exists, known := serviceExists(group, kind, bns, string(b.ref.Name), refs)
		switch {
		case !known:
			fail(gatewayv1.RouteReasonInvalidKind, fmt.Sprintf("%s: group %q kind %q is not a Service or a %s ServiceImport", b.field, group, kind, policy.MCSGroup))
		case !exists:
			fail(gatewayv1.RouteReasonBackendNotFound, fmt.Sprintf("%s: %s %s/%s does not exist", b.field, kind, bns, b.ref.Name))
		}
	}
	for _, e := range rr.extensions {
		switch {
		case string(e.ref.Group) != policy.ExtensionGroup || string(e.ref.Kind) != policy.KindFaultInjection:
			fail(gatewayv1.RouteReasonInvalidKind, fmt.Sprintf("%s: group %q kind %q is not a %s %s", e.field, e.ref.Group, e.ref.Kind, policy.ExtensionGroup, policy.KindFaultInjection))
		case !faults[ns+"/"+string(e.ref.Name)]:
			fail(gatewayv1.RouteReasonBackendNotFound, fmt.Sprintf("%s: FaultInjection %s/%s is not in force", e.field, ns, e.ref.Name))
		}
	}
	if reason != "" {
		return metav1.Condition{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionFalse, Reason: string(reason),
			Message: truncate(strings.Join(msgs, "; "), maxConditionMessage)}
	}
	return metav1.Condition{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionTrue, Reason: string(gatewayv1.RouteReasonResolvedRefs),
		Message: "every backend and filter reference resolves"}
}

// parentStatuses are fedmesh's status.parents entries of a route: one
// per parentRef outside the gateway.networking.k8s.io group (Gateways
// and ListenerSets are their gateway controller's to report). A Service
// or ServiceImport parent carries the route's Accepted condition; any
// other kind is not accepted (UnsupportedValue). Each carries resolved.
func parentStatuses(parents []gatewayv1.ParentReference, accepted, resolved metav1.Condition) []gatewayv1.RouteParentStatus {
	var out []gatewayv1.RouteParentStatus
	for _, p := range parents {
		group, kind := parentGroupKind(p)
		if group == policy.GatewayGroup {
			continue
		}
		acc := accepted
		if !(group == "" && kind == policy.KindService) && !(group == policy.MCSGroup && kind == policy.KindServiceImport) {
			acc = metav1.Condition{Type: accepted.Type, Status: metav1.ConditionFalse, Reason: string(gatewayv1.RouteReasonUnsupportedValue),
				ObservedGeneration: accepted.ObservedGeneration,
				Message:            fmt.Sprintf("parentRef group %q kind %q: fedmesh attaches routes to a Service or a %s ServiceImport", group, kind, policy.MCSGroup)}
		}
		out = append(out, gatewayv1.RouteParentStatus{
			ParentRef:      *p.DeepCopy(),
			ControllerName: ControllerName,
			Conditions:     []metav1.Condition{acc, resolved},
		})
	}
	return out
}

// resolveServiceRefs is the ResolvedRefs condition of a policy of
// namespace ns with these targetRefs (Services or ServiceImports).
func resolveServiceRefs(ns string, targets []policy.TargetRef, refs trafficRefs) metav1.Condition {
	var reason string
	var msgs []string
	for i, r := range targets {
		f := fmt.Sprintf("spec.targetRefs[%d]", i)
		exists, known := serviceExists(r.Group, r.Kind, ns, r.Name, refs)
		switch {
		case !known:
			if reason == "" {
				reason = PolicyReasonInvalidKind
			}
			msgs = append(msgs, fmt.Sprintf("%s: group %q kind %q is not a Service or a %s ServiceImport", f, r.Group, r.Kind, policy.MCSGroup))
		case !exists:
			if reason == "" {
				reason = PolicyReasonBackendNotFound
			}
			msgs = append(msgs, fmt.Sprintf("%s: %s %s/%s does not exist", f, r.Kind, ns, r.Name))
		}
	}
	if reason != "" {
		return metav1.Condition{Type: PolicyConditionResolvedRefs, Status: metav1.ConditionFalse, Reason: reason,
			Message: truncate(strings.Join(msgs, "; "), maxConditionMessage)}
	}
	return metav1.Condition{Type: PolicyConditionResolvedRefs, Status: metav1.ConditionTrue, Reason: PolicyReasonResolvedRefs,
		Message: "every targetRef names an existing Service or ServiceImport"}
}
