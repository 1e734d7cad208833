package kube

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
)

var (
	_ source.TrafficSource  = (*Source)(nil)
	_ TrafficStatusReporter = (*Source)(nil)
)

// TrafficStatusReporter tells the status every traffic object (HTTPRoute,
// GRPCRoute, ResiliencePolicy, FaultInjection) should carry and wakes the
// caller when it (or the objects) change. *Source implements it.
// TrafficStatus is safe to call from any goroutine.
type TrafficStatusReporter interface {
	TrafficStatus() ([]TrafficStatus, <-chan struct{})
}

// trafficState is the Source's view of the traffic objects.
type trafficState struct {
	rejected *prometheus.CounterVec
	inForceN *prometheus.GaugeVec

	mu sync.Mutex // guards the following
	// inForce is the set in force; ready is set after the first complete
	// read; changed is closed (and replaced) when either changes.
	inForce policy.Traffic
	ready   bool
	changed chan struct{}
	// statuses are every object's status; statusChanged is closed (and
	// replaced) when they or the objects change.
	statuses      []TrafficStatus
	statusChanged chan struct{}
	// problems are the refused objects.
	problems []source.Problem
	// lastGood is each object's last accepted version, by UID.
	lastGood map[types.UID]acceptedTraffic
	// counted is the generation of each object whose refusal was last
	// counted, so that a refusal is counted once per object version.
	counted map[types.UID]int64
}

func newTrafficState(reg prometheus.Registerer) (*trafficState, error) {
	t := &trafficState{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_kube_source_traffic_rejected_total",
			Help: "HTTPRoute, GRPCRoute, ResiliencePolicy and FaultInjection object versions the source refused, by kind and reason (counted once per generation).",
		}, []string{"kind", "reason"}),
		inForceN: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_kube_source_traffic_objects",
			Help: "Traffic objects the source currently holds in force, by kind.",
		}, []string{"kind"}),
		changed:       make(chan struct{}),
		statusChanged: make(chan struct{}),
		lastGood:      map[types.UID]acceptedTraffic{},
		counted:       map[types.UID]int64{},
	}
	for _, tr := range trafficResources {
		for _, r := range []source.Reason{source.ReasonParse, source.ReasonInvalid, source.ReasonUnmatched} {
			t.rejected.WithLabelValues(tr.kind, string(r))
		}
		t.inForceN.WithLabelValues(tr.kind)
	}
	return t, register(reg, t.rejected, t.inForceN)
}

// Traffic returns the traffic objects in force, each list sorted by
// namespace/name; ready once the source has read them all once (or found
// that the API server does not serve their CRDs, so none can exist); and
// a channel closed at the next change of either. A refused object keeps
// its last accepted version in force. It implements source.TrafficSource.
func (s *Source) Traffic() (policy.Traffic, bool, <-chan struct{}) {
	t := s.traffic
	t.mu.Lock()
	defer t.mu.Unlock()
	return policy.Traffic{
		HTTPRoutes: slices.Clone(t.inForce.HTTPRoutes),
		GRPCRoutes: slices.Clone(t.inForce.GRPCRoutes),
		Resilience: slices.Clone(t.inForce.Resilience),
		Faults:     slices.Clone(t.inForce.Faults),
		Telemetry:  slices.Clone(t.inForce.Telemetry),
		RateLimits: slices.Clone(t.inForce.RateLimits),
	}, t.ready, t.changed
}

// TrafficStatus returns the status every traffic object should carry,
// with the object as last read, and a channel closed when they change.
// It implements TrafficStatusReporter.
func (s *Source) TrafficStatus() ([]TrafficStatus, <-chan struct{}) {
	t := s.traffic
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.statuses), t.statusChanged
}

// trafficProblems returns the refused traffic objects.
func (s *Source) trafficProblems() []source.Problem {
	t := s.traffic
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.problems)
}

// setNoTraffic records that no traffic object can exist (a CRD is not
// served): the empty set is in force.
func (s *Source) setNoTraffic() {
	t := s.traffic
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready && t.inForce.Empty() {
		return
	}
	t.inForce, t.ready = policy.Traffic{}, true
	for _, tr := range trafficResources {
		t.inForceN.WithLabelValues(tr.kind).Set(0)
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// applyTraffic makes ev the source's view, in one step: the set in force
// is replaced whole or not at all.
func (s *Source) applyTraffic(ev trafficEval) {
	t := s.traffic
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready || !reflect.DeepEqual(t.inForce, ev.inForce) {
		t.inForce, t.ready = ev.inForce, true
		t.inForceN.WithLabelValues(policy.KindHTTPRoute).Set(float64(len(ev.inForce.HTTPRoutes)))
		t.inForceN.WithLabelValues(policy.KindGRPCRoute).Set(float64(len(ev.inForce.GRPCRoutes)))
		t.inForceN.WithLabelValues(policy.KindResiliencePolicy).Set(float64(len(ev.inForce.Resilience)))
		t.inForceN.WithLabelValues(policy.KindFaultInjection).Set(float64(len(ev.inForce.Faults)))
		t.inForceN.WithLabelValues(policy.KindTelemetryPolicy).Set(float64(len(ev.inForce.Telemetry)))
		t.inForceN.WithLabelValues(policy.KindRateLimitPolicy).Set(float64(len(ev.inForce.RateLimits)))
		s.log.Info("traffic objects", "httpRoutes", len(ev.inForce.HTTPRoutes), "grpcRoutes", len(ev.inForce.GRPCRoutes),
			"resiliencePolicies", len(ev.inForce.Resilience), "faultInjections", len(ev.inForce.Faults), "telemetryPolicies", len(ev.inForce.Telemetry), "rateLimitPolicies", len(ev.inForce.RateLimits), "refused", len(ev.problems))
		close(t.changed)
		t.changed = make(chan struct{})
	}
	if !sameTrafficStatuses(t.statuses, ev.statuses) {
		t.statuses = ev.statuses
		close(t.statusChanged)
		t.statusChanged = make(chan struct{})
	}
	t.problems = ev.problems
	t.lastGood = ev.lastGood
	seen := make(map[types.UID]bool, len(ev.refused))
	for _, r := range ev.refused {
		seen[r.uid] = true
		if g, ok := t.counted[r.uid]; ok && g == r.generation {
			continue
		}
		t.counted[r.uid] = r.generation
		t.rejected.WithLabelValues(r.kind, string(r.reason)).Inc()
		s.log.Warn("traffic object refused", "problem", r.problem.Error(), "reason", string(r.reason), "generation", r.generation)
	}
	for uid := range t.counted {
		if !seen[uid] {
			delete(t.counted, uid)
		}
	}
}

// sameTrafficStatuses reports whether two status lists are of the same
// object versions with the same status.
func sameTrafficStatuses(a, b []TrafficStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Object.GetUID() != b[i].Object.GetUID() || a[i].Object.GetResourceVersion() != b[i].Object.GetResourceVersion() ||
			!reflect.DeepEqual(a[i].Conditions, b[i].Conditions) || !reflect.DeepEqual(a[i].Parents, b[i].Parents) {
			return false
		}
	}
	return true
}

// trafficDeps are what the traffic objects are resolved against: the
// source's Service and ServiceImport informers.
type trafficDeps struct {
	// synced report whether those informers have synced.
	synced []cache.InformerSynced
	// refs read them.
	refs trafficRefs
	// events is signalled when a Service or ServiceImport changes.
	events <-chan struct{}
}

// runTraffic follows the traffic objects until ctx is done. It waits
// until the API server serves their CRDs (until then none can
// exist, so the empty set is in force), then reads them with dynamic
// informers and evaluates them after every burst of changes to one of
// them, a Service or a ServiceImport.
func (s *Source) runTraffic(ctx context.Context, deps trafficDeps) error {
	if !s.waitForTrafficCRDs(ctx) {
		return nil
	}
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.cfg.Clients.Dynamic, s.cfg.Resync, s.cfg.Namespace, nil)
	wake := make(chan struct{}, 1)
	infs := make(map[string]cache.SharedIndexInformer, len(trafficResources))
	synced := append([]cache.InformerSynced(nil), deps.synced...)
	for _, tr := range trafficResources {
		inf := f.ForResource(tr.resource).Informer()
		// Objects are read whole; only their managed fields are dropped.
		// A status update sent from a cached object without them keeps
		// the server's.
		if err := inf.SetTransform(dropManagedFields); err != nil {
			return fmt.Errorf("kube source: %s: %w", tr.kind, err)
		}
		if _, err := inf.AddEventHandler(wakeOn(wake)); err != nil {
			return fmt.Errorf("kube source: %s: %w", tr.kind, err)
		}
		infs[tr.kind] = inf
		synced = append(synced, inf.HasSynced)
	}
	stop := make(chan struct{})
	defer func() {
		close(stop)
		f.Shutdown()
	}()
	f.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	s.log.Info("traffic object caches synced")
	signal(wake)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-deps.events:
		}
		t := time.NewTimer(s.cfg.Debounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		objs := trafficObjects{}
		for kind, inf := range infs {
			for _, o := range inf.GetStore().List() {
				if u, ok := o.(*unstructured.Unstructured); ok {
					objs[kind] = append(objs[kind], u)
				}
			}
		}
		s.traffic.mu.Lock()
		lastGood := s.traffic.lastGood
		s.traffic.mu.Unlock()
		s.applyTraffic(evaluateTraffic(objs, lastGood, deps.refs))
	}
}

func dropManagedFields(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetManagedFields(nil)
	}
	return obj, nil
}

// waitForTrafficCRDs returns true once the API server serves all the
// traffic resources, false when ctx is done first. While one is not
// installed the traffic objects are not read, and the empty set is in
// force (deploy/base installs them all together). Any other error (such
// as a missing permission) leaves the set not ready.
func (s *Source) waitForTrafficCRDs(ctx context.Context) bool {
	lastMsg := ""
	for {
		var missing []string
		var other error
		for _, tr := range trafficResources {
			_, err := s.cfg.Clients.Dynamic.Resource(tr.resource).Namespace(s.cfg.Namespace).List(ctx, metav1.ListOptions{Limit: 1})
			switch {
			case err == nil:
			case apierrors.IsNotFound(err):
				missing = append(missing, tr.resource.GroupResource().String())
			default:
				other = fmt.Errorf("%s: %w", tr.resource.GroupResource(), err)
			}
		}
		if len(missing) == 0 && other == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := s.cfg.PolicyProbe
		var msg string
		if other != nil {
			msg = other.Error()
			wait = min(wait, time.Second)
		} else {
			msg = strings.Join(missing, ", ")
			s.setNoTraffic()
		}
		if msg != lastMsg {
			lastMsg = msg
			if other != nil {
				s.log.Warn("cannot list the traffic objects; retrying", "err", other)
			} else {
				s.log.Warn("the API server does not serve every traffic CRD (is deploy/base/crds installed?): no route or traffic policy is in force; asking again",
					"missing", msg, "every", s.cfg.PolicyProbe)
			}
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
