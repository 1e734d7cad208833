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

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
)

// PolicyResource is the resource of fedmesh's AuthorizationPolicy CRD
// (deploy/base/crds/fedmesh.io_authorizationpolicies.yaml).
var PolicyResource = schema.GroupVersionResource{Group: policy.Group, Version: policy.Version, Resource: "authorizationpolicies"}

// The conditions written on every AuthorizationPolicy, in the Gateway
// API's style (GEP-713 policy status, and a route's ResolvedRefs).
const (
	// PolicyConditionAccepted is True when the object is valid and in
	// force, False (reason PolicyReasonInvalid) when it was refused.
	PolicyConditionAccepted = "Accepted"
	// PolicyConditionResolvedRefs is True when every targetRef names an
	// existing Service of the policy's namespace.
	PolicyConditionResolvedRefs = "ResolvedRefs"

	// PolicyReasonAccepted: the policy is valid and in force.
	PolicyReasonAccepted = "Accepted"
	// PolicyReasonInvalid: a field is wrong; the message names it.
	PolicyReasonInvalid = "Invalid"
	// PolicyReasonResolvedRefs: every targetRef resolves.
	PolicyReasonResolvedRefs = "ResolvedRefs"
	// PolicyReasonBackendNotFound: a targetRef names a Service that does
	// not exist (the policy stays in force and applies once it does).
	PolicyReasonBackendNotFound = "BackendNotFound"
	// PolicyReasonInvalidKind: a targetRef names something other than a
	// Service of the core group.
	PolicyReasonInvalidKind = "InvalidKind"
	// PolicyReasonPending: the targetRefs could not be read, so they were
	// not resolved (the object is refused; Accepted says why).
	PolicyReasonPending = "Pending"
)

// maxConditionMessage bounds a condition's message (the API allows 32768).
const maxConditionMessage = 4096

// PolicyFromObject converts an AuthorizationPolicy as the API server
// serves it into its policy value, through policy.Parse: the same strict
// decoding and validation the file source applies. The status (the
// control plane's own output) is left out, and of the metadata only the
// name and namespace are kept, so that a status write or a label change
// does not change the policy. The reason classifies an error as
// source.ReasonInvalid (a *catalog.ValidationError naming the fields) or
// source.ReasonParse.
func PolicyFromObject(u *unstructured.Unstructured) (*policy.AuthorizationPolicy, source.Reason, error) {
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
		return nil, source.ReasonParse, fmt.Errorf("%w: %w", policy.ErrParse, err)
	}
	p, err := policy.Parse(data)
	if err != nil {
		if errors.Is(err, catalog.ErrInvalid) {
			return nil, source.ReasonInvalid, err
		}
		return nil, source.ReasonParse, err
	}
	return p, "", nil
}

// PolicyStatus is what the source found of one AuthorizationPolicy: the
// object as the informer's cache holds it (the caller may not change it)
// and the conditions it should carry. The conditions' ObservedGeneration
// is the object's generation.
type PolicyStatus struct {
	Object     *unstructured.Unstructured
	Conditions []metav1.Condition
}

// acceptedPolicy is the last version of one object that was accepted.
type acceptedPolicy struct {
	generation int64
	policy     policy.AuthorizationPolicy
}

// policyEval is what evaluatePolicies makes of the cached objects: the
// policies to enforce, sorted by namespace/name, and every object's
// conditions.
type policyEval = crdEval[[]policy.AuthorizationPolicy, PolicyStatus, acceptedPolicy]

// evaluatePolicies decides, from the AuthorizationPolicies in the cache,
// which policies are in force and which conditions each object carries.
// A valid object is in force as it is. A refused object that was valid
// before (same UID) keeps its last accepted version in force, so that a
// bad edit of a DENY policy does not open what it closed; one that never
// was valid is not in force. serviceExists tells whether a Service
// exists. It is pure: lastGood is not changed.
func evaluatePolicies(objs []*unstructured.Unstructured, lastGood map[types.UID]acceptedPolicy, serviceExists func(namespace, name string) bool) policyEval {
	objs = append([]*unstructured.Unstructured(nil), objs...)
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].GetNamespace() != objs[j].GetNamespace() {
			return objs[i].GetNamespace() < objs[j].GetNamespace()
		}
		return objs[i].GetName() < objs[j].GetName()
	})
	ev := policyEval{lastGood: make(map[types.UID]acceptedPolicy, len(objs))}
	for _, u := range objs {
		gen := u.GetGeneration()
		ref := source.ObjectRef{Kind: policy.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
		p, reason, err := PolicyFromObject(u)
		var accepted metav1.Condition
		var refs []policy.TargetRef
		refsRead := true
		if err == nil {
			ev.lastGood[u.GetUID()] = acceptedPolicy{generation: gen, policy: *p}
			ev.inForce = append(ev.inForce, *p)
			accepted = metav1.Condition{Type: PolicyConditionAccepted, Status: metav1.ConditionTrue, Reason: PolicyReasonAccepted,
				Message: "the policy is in force"}
			refs = p.Spec.TargetRefs
		} else {
			prob := source.Problem{Object: ref.String(), Reason: reason, Err: err}
			ev.problems = append(ev.problems, prob)
			ev.refused = append(ev.refused, crdRefusal{uid: u.GetUID(), generation: gen, kind: policy.Kind, reason: reason, problem: prob})
			msg := prob.Error()
			if g, ok := lastGood[u.GetUID()]; ok {
				ev.lastGood[u.GetUID()] = g
				ev.inForce = append(ev.inForce, g.policy)
				msg += fmt.Sprintf("; the last accepted version (generation %d) stays in force", g.generation)
			} else {
				msg += "; the policy is not in force"
			}
			accepted = metav1.Condition{Type: PolicyConditionAccepted, Status: metav1.ConditionFalse, Reason: PolicyReasonInvalid,
				Message: truncate(msg, maxConditionMessage)}
			refs, refsRead = lenientTargetRefs(u)
		}
		resolved := metav1.Condition{Type: PolicyConditionResolvedRefs, Status: metav1.ConditionUnknown, Reason: PolicyReasonPending,
			Message: "spec.targetRefs could not be read"}
		if refsRead {
			resolved = resolveTargetRefs(u.GetNamespace(), refs, serviceExists)
		}
		accepted.ObservedGeneration, resolved.ObservedGeneration = gen, gen
		ev.statuses = append(ev.statuses, PolicyStatus{Object: u, Conditions: []metav1.Condition{accepted, resolved}})
	}
	policy.Sort(ev.inForce)
	return ev
}

// lenientTargetRefs reads spec.targetRefs of an object that was refused,
// so that its ResolvedRefs condition still says what it can.
func lenientTargetRefs(u *unstructured.Unstructured) ([]policy.TargetRef, bool) {
	raw, found, err := unstructured.NestedFieldNoCopy(u.Object, "spec", "targetRefs")
	if err != nil {
		return nil, false
	}
	if !found {
		return nil, true
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, false
	}
	var refs []policy.TargetRef
	if err := json.Unmarshal(data, &refs); err != nil {
		return nil, false
	}
	return refs, true
}

// resolveTargetRefs is the ResolvedRefs condition of a policy of
// namespace ns with these targetRefs. Its reason is the first unresolved
// ref's; the message lists every one.
func resolveTargetRefs(ns string, refs []policy.TargetRef, serviceExists func(namespace, name string) bool) metav1.Condition {
	var reason string
	var msgs []string
	for i, r := range refs {
		f := fmt.Sprintf("spec.targetRefs[%d]", i)
		switch {
		case r.Group != "" || r.Kind != "Service":
			if reason == "" {
				reason = PolicyReasonInvalidKind
			}
			msgs = append(msgs, fmt.Sprintf("%s: group %q kind %q is not a Service of the core group", f, r.Group, r.Kind))
		case !serviceExists(ns, r.Name):
			if reason == "" {
				reason = PolicyReasonBackendNotFound
			}
			msgs = append(msgs, fmt.Sprintf("%s: Service %s/%s does not exist", f, ns, r.Name))
		}
	}
	if reason != "" {
		return metav1.Condition{Type: PolicyConditionResolvedRefs, Status: metav1.ConditionFalse, Reason: reason,
			Message: truncate(strings.Join(msgs, "; "), maxConditionMessage)}
	}
	msg := "every targetRef names an existing Service"
	if len(refs) == 0 {
		msg = "no targetRefs: the policy applies to every service of its namespace"
		if ns == policy.RootNamespace {
			msg = "no targetRefs: the policy applies to every service of the mesh"
		}
	}
	return metav1.Condition{Type: PolicyConditionResolvedRefs, Status: metav1.ConditionTrue, Reason: PolicyReasonResolvedRefs, Message: msg}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}
