package balancer

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the balancers' Prometheus collectors, labelled by the
// balancer's Config.Name. Create one per process and pass it to every
// balancer.
type Metrics struct {
	ejections *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	noHost    *prometheus.CounterVec
	retries   *prometheus.CounterVec
	ejected   *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them with reg (nil
// registers nothing).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_lb_ejections_total",
			Help: "Hosts ejected by outlier detection, by upstream and reason (consecutive_5xx, consecutive_connect_failure).",
		}, []string{"upstream", "reason"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_lb_ejections_skipped_total",
			Help: "Ejections not done because the maximum ejected share was reached, by upstream and reason.",
		}, []string{"upstream", "reason"}),
		noHost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_lb_pick_failures_total",
			Help: "Picks that found no host, by upstream and reason (no_hosts, no_healthy).",
		}, []string{"upstream", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_lb_retries_total",
			Help: "Retry attempts asked of the retry budget, by upstream and result (allowed, budget_exhausted).",
		}, []string{"upstream", "result"}),
		ejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_sidecar_lb_ejected_hosts",
			Help: "Hosts currently ejected by outlier detection, by upstream.",
		}, []string{"upstream"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.ejections, m.skipped, m.noHost, m.retries, m.ejected} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Delete removes every series of upstream (a Config.Name), for an
// upstream that has left the configuration, so that its series are no
// longer exported. A balancer of that name still in use keeps counting,
// but into series nobody exports; a balancer created later with the name
// starts new series.
func (m *Metrics) Delete(upstream string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"upstream": upstream}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{m.ejections, m.skipped, m.noHost, m.retries, m.ejected} {
		v.DeletePartialMatch(l)
	}
}

// upstreamMetrics are one balancer's resolved children, so that the hot
// path never looks up labels.
type upstreamMetrics struct {
	eject5xx, ejectConnect     prometheus.Counter
	skip5xx, skipConnect       prometheus.Counter
	noHosts, noHealthy         prometheus.Counter
	retryAllowed, retryRefused prometheus.Counter
	ejected                    prometheus.Gauge
}

func (m *Metrics) forUpstream(name string) upstreamMetrics {
	if m == nil {
		m, _ = NewMetrics(nil)
	}
	return upstreamMetrics{
		eject5xx:     m.ejections.WithLabelValues(name, reason5xx),
		ejectConnect: m.ejections.WithLabelValues(name, reasonConnect),
		skip5xx:      m.skipped.WithLabelValues(name, reason5xx),
		skipConnect:  m.skipped.WithLabelValues(name, reasonConnect),
		noHosts:      m.noHost.WithLabelValues(name, "no_hosts"),
		noHealthy:    m.noHost.WithLabelValues(name, "no_healthy"),
		retryAllowed: m.retries.WithLabelValues(name, "allowed"),
		retryRefused: m.retries.WithLabelValues(name, "budget_exhausted"),
		ejected:      m.ejected.WithLabelValues(name),
	}
}
