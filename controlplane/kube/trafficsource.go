package kube

import (
	"context"
	"reflect"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
	*crdSet[policy.Traffic, TrafficStatus, acceptedTraffic]
	rejected *prometheus.CounterVec
	inForceN *prometheus.GaugeVec
}

func newTrafficState(reg prometheus.Registerer) (*trafficState, error) {
	t := &trafficState{
		crdSet: newCRDSet[policy.Traffic, TrafficStatus, acceptedTraffic](),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_kube_source_traffic_rejected_total",
			Help: "HTTPRoute, GRPCRoute, ResiliencePolicy and FaultInjection object versions the source refused, by kind and reason (counted once per generation).",
		}, []string{"kind", "reason"}),
		inForceN: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_kube_source_traffic_objects",
			Help: "Traffic objects the source currently holds in force, by kind.",
		}, []string{"kind"}),
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
	return s.traffic.get(func(t policy.Traffic) policy.Traffic {
		return policy.Traffic{
			HTTPRoutes: slices.Clone(t.HTTPRoutes),
			GRPCRoutes: slices.Clone(t.GRPCRoutes),
			Resilience: slices.Clone(t.Resilience),
			Faults:     slices.Clone(t.Faults),
			Telemetry:  slices.Clone(t.Telemetry),
			RateLimits: slices.Clone(t.RateLimits),
		}
	})
}

// TrafficStatus returns the status every traffic object should carry,
// with the object as last read, and a channel closed when they change.
// It implements TrafficStatusReporter.
func (s *Source) TrafficStatus() ([]TrafficStatus, <-chan struct{}) {
	return s.traffic.status()
}

// trafficProblems returns the refused traffic objects.
func (s *Source) trafficProblems() []source.Problem {
	return s.traffic.refusedObjects()
}

// setNoTraffic records that no traffic object can exist (a CRD is not
// served): the empty set is in force.
func (s *Source) setNoTraffic() {
	s.traffic.setEmpty(func(t policy.Traffic) bool { return t.Empty() }, func() {
		for _, tr := range trafficResources {
			s.traffic.inForceN.WithLabelValues(tr.kind).Set(0)
		}
	})
}

// applyTraffic makes ev the source's view, in one step: the set in force
// is replaced whole or not at all.
func (s *Source) applyTraffic(ev trafficEval) {
	s.traffic.apply(ev, crdApply[policy.Traffic, TrafficStatus]{
		sameSet: func(a, b policy.Traffic) bool { return reflect.DeepEqual(a, b) },
		sameStatuses: func(a, b []TrafficStatus) bool {
			return sameObjects(a, b, func(x, y TrafficStatus) bool {
				return sameVersion(x.Object, y.Object) && reflect.DeepEqual(x.Conditions, y.Conditions) && reflect.DeepEqual(x.Parents, y.Parents)
			})
		},
		onInForce: func(t policy.Traffic, refused int) {
			n := s.traffic.inForceN
			n.WithLabelValues(policy.KindHTTPRoute).Set(float64(len(t.HTTPRoutes)))
			n.WithLabelValues(policy.KindGRPCRoute).Set(float64(len(t.GRPCRoutes)))
			n.WithLabelValues(policy.KindResiliencePolicy).Set(float64(len(t.Resilience)))
			n.WithLabelValues(policy.KindFaultInjection).Set(float64(len(t.Faults)))
			n.WithLabelValues(policy.KindTelemetryPolicy).Set(float64(len(t.Telemetry)))
			n.WithLabelValues(policy.KindRateLimitPolicy).Set(float64(len(t.RateLimits)))
			s.log.Info("traffic objects", "httpRoutes", len(t.HTTPRoutes), "grpcRoutes", len(t.GRPCRoutes),
				"resiliencePolicies", len(t.Resilience), "faultInjections", len(t.Faults), "telemetryPolicies", len(t.Telemetry), "rateLimitPolicies", len(t.RateLimits), "refused", refused)
		},
		onRefused: func(r crdRefusal) {
			s.traffic.rejected.WithLabelValues(r.kind, string(r.reason)).Inc()
			s.log.Warn("traffic object refused", "problem", r.problem.Error(), "reason", string(r.reason), "generation", r.generation)
		},
	})
}

// sameObjects reports whether two status lists are of the same object
// versions with the same status, as same tells for one pair.
func sameObjects[S any](a, b []S, same func(x, y S) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !same(a[i], b[i]) {
			return false
		}
	}
	return true
}

// sameVersion reports whether two objects are the same version of one
// object.
func sameVersion(a, b *unstructured.Unstructured) bool {
	return a.GetUID() == b.GetUID() && a.GetResourceVersion() == b.GetResourceVersion()
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
	return s.followCRDs(ctx, crdFollow{
		what:      "the traffic objects",
		resources: trafficResources,
		synced:    deps.synced,
		events:    deps.events,
		setEmpty:  s.setNoTraffic,
		evaluate: func(objs map[string][]*unstructured.Unstructured) {
			s.applyTraffic(evaluateTraffic(objs, s.traffic.accepted(), deps.refs))
		},
	})
}
