package proxy

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus collectors. Create them with
// NewMetrics and pass them in Config; the caller registers them.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	errors    *prometheus.CounterVec
	retries   *prometheus.CounterVec
	overflow  *prometheus.CounterVec
	refused   *prometheus.CounterVec
	spoofed   prometheus.Counter
	tcp       *prometheus.CounterVec
	tcpActive *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them with reg (nil
// registers nothing).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_requests_total",
			Help: "HTTP requests by direction (inbound, outbound), source and destination cluster, service and status class.",
		}, []string{"direction", "source_cluster", "destination_cluster", "service", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fedmesh_sidecar_request_duration_seconds",
			Help:    "Time to response headers of HTTP requests, by direction, source and destination cluster and service.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"direction", "source_cluster", "destination_cluster", "service"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_request_errors_total",
			Help: "Requests and connections the sidecar failed, by direction, service and reason (no_route, bad_host, no_healthy, connect, timeout, upstream_reset, app_unreachable).",
		}, []string{"direction", "service", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_retries_total",
			Help: "Retries by service and the reason of the failed attempt (connect_failure, status_5xx, budget_exhausted).",
		}, []string{"service", "reason"}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_circuit_open_total",
			Help: "Requests or connections refused by a circuit breaker, by service and limit (max_requests, max_pending, max_connections).",
		}, []string{"service", "limit"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_inbound_refused_total",
			Help: "Inbound TLS connections refused, by reason (the identity package's refusal reasons, unknown_sni, handshake).",
		}, []string{"reason"}),
		spoofed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_spoofed_identity_headers_total",
			Help: "Inbound requests that carried their own x-fedmesh-client-id header (removed).",
		}),
		tcp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_tcp_connections_total",
			Help: "Opaque TCP connections by direction, service and destination cluster.",
		}, []string{"direction", "service", "destination_cluster"}),
		tcpActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_sidecar_tcp_connections_active",
			Help: "Open opaque TCP connections by direction and service.",
		}, []string{"direction", "service"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.errors, m.retries, m.overflow, m.refused, m.spoofed, m.tcp, m.tcpActive} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("proxy: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func codeClass(code int) string {
	switch {
	case code >= 500:
		return "5xx"
	case code >= 400:
		return "4xx"
	case code >= 300:
		return "3xx"
	case code >= 200:
		return "2xx"
	}
	return "1xx"
}
