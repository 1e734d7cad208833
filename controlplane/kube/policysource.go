package kube

import (
	"context"
	"reflect"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
)

// DefaultPolicyProbe is how often the source asks again whether the API
// server serves the AuthorizationPolicy CRD, while it does not.
const DefaultPolicyProbe = 30 * time.Second

var (
	_ source.PolicySource  = (*Source)(nil)
	_ PolicyStatusReporter = (*Source)(nil)
)

// PolicyStatusReporter tells the conditions every AuthorizationPolicy
// should carry and wakes the caller when they (or the objects) change.
// *Source implements it. PolicyStatus is safe to call from any goroutine.
type PolicyStatusReporter interface {
	PolicyStatus() ([]PolicyStatus, <-chan struct{})
}

// policyState is the Source's view of the AuthorizationPolicies.
type policyState struct {
	*crdSet[[]policy.AuthorizationPolicy, PolicyStatus, acceptedPolicy]
	rejected *prometheus.CounterVec
	inForceN prometheus.Gauge
}

func newPolicyState(reg prometheus.Registerer) (*policyState, error) {
	p := &policyState{
		crdSet: newCRDSet[[]policy.AuthorizationPolicy, PolicyStatus, acceptedPolicy](),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_kube_source_policies_rejected_total",
			Help: "AuthorizationPolicy object versions the source refused, by reason (counted once per generation).",
		}, []string{"reason"}),
		inForceN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_kube_source_authorization_policies",
			Help: "AuthorizationPolicies the source currently holds in force.",
		}),
	}
	for _, r := range []source.Reason{source.ReasonParse, source.ReasonInvalid} {
		p.rejected.WithLabelValues(string(r))
	}
	return p, register(reg, p.rejected, p.inForceN)
}

// AuthorizationPolicies returns the AuthorizationPolicies in force, sorted
// by namespace/name; ready once the source has read them all once (or
// found that the API server does not serve the CRD, so none can exist);
// and a channel closed at the next change of either. An object that is
// refused keeps its last accepted version in force. It implements
// source.PolicySource.
func (s *Source) AuthorizationPolicies() ([]policy.AuthorizationPolicy, bool, <-chan struct{}) {
	return s.pol.get(slices.Clone)
}

// PolicyStatus returns the conditions every AuthorizationPolicy should
// carry, with the object as last read, and a channel closed when they
// change. It implements PolicyStatusReporter.
func (s *Source) PolicyStatus() ([]PolicyStatus, <-chan struct{}) {
	return s.pol.status()
}

// policyProblems returns the refused AuthorizationPolicies.
func (s *Source) policyProblems() []source.Problem {
	return s.pol.refusedObjects()
}

// setNoPolicies records that no AuthorizationPolicy can exist (the CRD is not
// served): the empty set is in force.
func (s *Source) setNoPolicies() {
	s.pol.setEmpty(func(ps []policy.AuthorizationPolicy) bool { return len(ps) == 0 }, func() { s.pol.inForceN.Set(0) })
}

// applyPolicies makes ev the source's view, in one step: the set in
// force is replaced whole or not at all.
func (s *Source) applyPolicies(ev policyEval) {
	s.pol.apply(ev, crdApply[[]policy.AuthorizationPolicy, PolicyStatus]{
		sameSet: func(a, b []policy.AuthorizationPolicy) bool { return reflect.DeepEqual(a, b) },
		sameStatuses: func(a, b []PolicyStatus) bool {
			return sameObjects(a, b, func(x, y PolicyStatus) bool {
				return sameVersion(x.Object, y.Object) && reflect.DeepEqual(x.Conditions, y.Conditions)
			})
		},
		onInForce: func(set []policy.AuthorizationPolicy, refused int) {
			s.pol.inForceN.Set(float64(len(set)))
			s.log.Info("authorization policies", "policies", len(set), "refused", refused)
		},
		onRefused: func(r crdRefusal) {
			s.pol.rejected.WithLabelValues(string(r.reason)).Inc()
			s.log.Warn("authorization policy refused", "problem", r.problem.Error(), "reason", string(r.reason), "generation", r.generation)
		},
	})
}

// runPolicies follows the AuthorizationPolicies until ctx is done. It
// waits until the API server serves their CRD (until then none can
// exist, so the empty set is in force), then reads them with an informer
// and evaluates them after every burst of changes to a policy or a
// Service (targetRefs resolve to Services). servicesSynced and
// serviceExists read the source's Service informer; svcEvents is
// signalled when a Service changes.
func (s *Source) runPolicies(ctx context.Context, servicesSynced cache.InformerSynced, serviceExists func(ns, name string) bool, svcEvents <-chan struct{}) error {
	return s.followCRDs(ctx, crdFollow{
		what:      "AuthorizationPolicies",
		resources: []crdResource{{policy.Kind, PolicyResource}},
		synced:    []cache.InformerSynced{servicesSynced},
		events:    svcEvents,
		setEmpty:  s.setNoPolicies,
		evaluate: func(objs map[string][]*unstructured.Unstructured) {
			s.applyPolicies(evaluatePolicies(objs[policy.Kind], s.pol.accepted(), serviceExists))
		},
	})
}
