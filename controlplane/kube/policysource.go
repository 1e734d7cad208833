package kube

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
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
	rejected *prometheus.CounterVec
	inForceN prometheus.Gauge

	mu sync.Mutex // guards the following
	// inForce are the policies in force, sorted; ready is set after the
	// first complete read; changed is closed (and replaced) when either
	// changes.
	inForce []policy.AuthorizationPolicy
	ready   bool
	changed chan struct{}
	// statuses are every object's conditions; statusChanged is closed
	// (and replaced) when they or the objects change.
	statuses      []PolicyStatus
	statusChanged chan struct{}
	// problems are the refused objects.
	problems []source.Problem
	// lastGood is each object's last accepted version, by UID.
	lastGood map[types.UID]acceptedPolicy
	// counted is the generation of each object whose refusal was last
	// counted, so that a refusal is counted once per object version.
	counted map[types.UID]int64
}

func newPolicyState(reg prometheus.Registerer) (*policyState, error) {
	p := &policyState{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_kube_source_policies_rejected_total",
			Help: "AuthorizationPolicy object versions the source refused, by reason (counted once per generation).",
		}, []string{"reason"}),
		inForceN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_kube_source_authorization_policies",
			Help: "AuthorizationPolicies the source currently holds in force.",
		}),
		changed:       make(chan struct{}),
		statusChanged: make(chan struct{}),
		lastGood:      map[types.UID]acceptedPolicy{},
		counted:       map[types.UID]int64{},
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
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.inForce), p.ready, p.changed
}

// PolicyStatus returns the conditions every AuthorizationPolicy should
// carry, with the object as last read, and a channel closed when they
// change. It implements PolicyStatusReporter.
func (s *Source) PolicyStatus() ([]PolicyStatus, <-chan struct{}) {
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.statuses), p.statusChanged
}

// policyProblems returns the refused AuthorizationPolicies.
func (s *Source) policyProblems() []source.Problem {
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.problems)
}

// setNoPolicies records that no AuthorizationPolicy can exist (the CRD is not
// served): the empty set is in force.
func (s *Source) setNoPolicies() {
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready && len(p.inForce) == 0 {
		return
	}
	p.inForce, p.ready = nil, true
	p.inForceN.Set(0)
	close(p.changed)
	p.changed = make(chan struct{})
}

// applyPolicies makes ev the source's view, in one step: the set in
// force is replaced whole or not at all.
func (s *Source) applyPolicies(ev policyEval) {
	p := s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ready || !reflect.DeepEqual(p.inForce, ev.inForce) {
		p.inForce, p.ready = ev.inForce, true
		p.inForceN.Set(float64(len(ev.inForce)))
		s.log.Info("authorization policies", "policies", len(ev.inForce), "refused", len(ev.problems))
		close(p.changed)
		p.changed = make(chan struct{})
	}
	if !sameStatuses(p.statuses, ev.statuses) {
		p.statuses = ev.statuses
		close(p.statusChanged)
		p.statusChanged = make(chan struct{})
	}
	p.problems = ev.problems
	p.lastGood = ev.lastGood
	seen := make(map[types.UID]bool, len(ev.refused))
	for _, r := range ev.refused {
		seen[r.uid] = true
		if g, ok := p.counted[r.uid]; ok && g == r.generation {
			continue
		}
		p.counted[r.uid] = r.generation
		p.rejected.WithLabelValues(string(r.reason)).Inc()
		s.log.Warn("authorization policy refused", "problem", r.problem.Error(), "reason", string(r.reason), "generation", r.generation)
	}
	for uid := range p.counted {
		if !seen[uid] {
			delete(p.counted, uid)
		}
	}
}

// sameStatuses reports whether two status lists are of the same object
// versions with the same conditions.
func sameStatuses(a, b []PolicyStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Object.GetUID() != b[i].Object.GetUID() || a[i].Object.GetResourceVersion() != b[i].Object.GetResourceVersion() ||
			!reflect.DeepEqual(a[i].Conditions, b[i].Conditions) {
			return false
		}
	}
	return true
}

// runPolicies follows the AuthorizationPolicies until ctx is done. It
// waits until the API server serves their CRD (until then none can
// exist, so the empty set is in force), then reads them with an informer
// and evaluates them after every burst of changes to a policy or a
// Service (targetRefs resolve to Services). servicesSynced and
// serviceExists read the source's Service informer; svcEvents is
// signalled when a Service changes.
func (s *Source) runPolicies(ctx context.Context, servicesSynced cache.InformerSynced, serviceExists func(ns, name string) bool, svcEvents <-chan struct{}) error {
	if !s.waitForPolicyCRD(ctx) {
		return nil
	}
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.cfg.Clients.Dynamic, s.cfg.Resync, s.cfg.Namespace, nil)
	inf := f.ForResource(PolicyResource)
	// Policies are read whole; only their managed fields are dropped.
	// A status update sent from a cached object without them keeps the
	// server's.
	if err := inf.Informer().SetTransform(func(obj any) (any, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			u.SetManagedFields(nil)
		}
		return obj, nil
	}); err != nil {
		return fmt.Errorf("kube source: policies: %w", err)
	}
	wake := make(chan struct{}, 1)
	if _, err := inf.Informer().AddEventHandler(wakeOn(wake)); err != nil {
		return fmt.Errorf("kube source: policies: %w", err)
	}
	stop := make(chan struct{})
	defer func() {
		close(stop)
		f.Shutdown()
	}()
	f.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced, servicesSynced) {
		return nil
	}
	s.log.Info("authorization policy cache synced")
	signal(wake)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-svcEvents:
		}
		t := time.NewTimer(s.cfg.Debounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		list, err := inf.Lister().List(labels.Everything())
		if err != nil {
			s.log.Warn("listing AuthorizationPolicies from the informer cache failed", "err", err)
			continue
		}
		objs := make([]*unstructured.Unstructured, 0, len(list))
		for _, o := range list {
			if u, ok := o.(*unstructured.Unstructured); ok {
				objs = append(objs, u)
			}
		}
		s.pol.mu.Lock()
		lastGood := s.pol.lastGood
		s.pol.mu.Unlock()
		s.applyPolicies(evaluatePolicies(objs, lastGood, serviceExists))
	}
}

// waitForPolicyCRD returns true once the API server serves
// AuthorizationPolicies, false when ctx is done first. While the CRD is
// not installed no policy can exist: the empty set is in force. Any other
// error (such as a missing permission) leaves the policies not ready, so
// that the control plane enforces nothing it cannot read.
func (s *Source) waitForPolicyCRD(ctx context.Context) bool {
	ri := s.cfg.Clients.Dynamic.Resource(PolicyResource).Namespace(s.cfg.Namespace)
	lastErr := ""
	for {
		_, err := ri.List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if err.Error() != lastErr {
			lastErr = err.Error()
			if apierrors.IsNotFound(err) {
				s.log.Warn("the API server does not serve AuthorizationPolicies (is deploy/base/crds installed?): no policy is in force; asking again",
					"every", s.cfg.PolicyProbe)
			} else {
				s.log.Warn("cannot list AuthorizationPolicies: inbound traffic waits until they are read; retrying", "err", err)
			}
		}
		if apierrors.IsNotFound(err) {
			s.setNoPolicies()
		}
		wait := s.cfg.PolicyProbe
		if !apierrors.IsNotFound(err) {
			wait = min(wait, time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}
