package tracing

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Tracer's collectors.
type metrics struct {
	exported prometheus.Counter
	dropped  *prometheus.CounterVec
	invalid  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		exported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_trace_spans_exported_total",
			Help: "Sampled spans the OTLP collector accepted.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_trace_spans_dropped_total",
			Help: "Sampled spans never delivered, by reason: queue_full (the export queue was full; the request went on), export_failed (the collector refused or did not answer in time), shutdown (ended after the tracer stopped).",
		}, []string{"reason"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_trace_context_invalid_total",
			Help: "Malformed trace context ignored (the request started a new trace), by format: w3c, b3, b3multi; policy counts telemetry policies with an invalid sampling percentage.",
		}, []string{"format"}),
	}
	for _, r := range []string{"queue_full", "export_failed", "shutdown"} {
		m.dropped.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.exported, m.dropped, m.invalid} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("tracing: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
