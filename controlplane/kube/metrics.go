package kube

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/controlplane/source"
)

type sourceMetrics struct {
	rejected *prometheus.CounterVec
	builds   prometheus.Counter
	exports  prometheus.Gauge
}

func newSourceMetrics(reg prometheus.Registerer) (*sourceMetrics, error) {
	m := &sourceMetrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_kube_source_rejected_total",
			Help: "Kubernetes objects left out of the exports, by reason (counted at every rebuild).",
		}, []string{"reason"}),
		builds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_kube_source_builds_total",
			Help: "Rebuilds of the exports from the informer caches.",
		}),
		exports: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_kube_source_exports",
			Help: "Services the cluster exports.",
		}),
	}
	for _, r := range source.Reasons {
		m.rejected.WithLabelValues(string(r))
	}
	return m, register(reg, m.rejected, m.builds, m.exports)
}

// Reasons a sink write fails: the reason label of
// fedmesh_kube_sink_errors_total.
const (
	SinkErrNamespaceMissing = "namespace_missing"
	SinkErrConflict         = "conflict"
	SinkErrForbidden        = "forbidden"
	SinkErrInvalid          = "invalid"
	SinkErrOther            = "other"
)

type sinkMetrics struct {
	writes      *prometheus.CounterVec
	errors      *prometheus.CounterVec
	reconciles  prometheus.Counter
	imports     prometheus.Gauge
	leader      prometheus.Gauge
	transitions prometheus.Counter
}

func newSinkMetrics(reg prometheus.Registerer) (*sinkMetrics, error) {
	m := &sinkMetrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_kube_sink_writes_total",
			Help: "Writes to the Kubernetes API by the sink, by kind and operation.",
		}, []string{"kind", "op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_kube_sink_errors_total",
			Help: "Sink writes the Kubernetes API refused, by reason.",
		}, []string{"reason"}),
		reconciles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_kube_sink_reconciles_total",
			Help: "Reconciliations of ServiceImports, EndpointSlices and ServiceExport status.",
		}),
		imports: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_kube_sink_service_imports",
			Help: "ServiceImports the sink keeps.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_kube_sink_leader",
			Help: "1 while this replica is the leader and writes to the Kubernetes API.",
		}),
		transitions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_kube_sink_leader_transitions_total",
			Help: "Times this replica became the leader.",
		}),
	}
	for _, r := range []string{SinkErrNamespaceMissing, SinkErrConflict, SinkErrForbidden, SinkErrInvalid, SinkErrOther} {
		m.errors.WithLabelValues(r)
	}
	return m, register(reg, m.writes, m.errors, m.reconciles, m.imports, m.leader, m.transitions)
}

func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}
