package balancer

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the balancers' Prometheus collectors, labelled by the
// balancer's Config.Name. Create one per process and pass it to every
// balancer.
//
// Series are bounded per upstream and made lazily: an upstream has at
// most MaxSeriesPerUpstream series (one per family and reason), and only
// those of the events that happened to it (an ejection, a skipped
// ejection, a failed pick, a retry, an ejected host). A sidecar holding
// a thousand upstreams that never failed exports none of these, rather
// than nine thousand zeros (about 4 MB of heap). docs/telemetry.md
// states the bound.
type Metrics struct {
	ejections *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	noHost    *prometheus.CounterVec
	retries   *prometheus.CounterVec
	ejected   *prometheus.GaugeVec

	mu   sync.Mutex                  // guards the following, and the making of series
	live map[string]*upstreamMetrics // by upstream name, the latest balancer's
}

// MaxSeriesPerUpstream bounds the balancer series of one upstream: two
// reasons of ejections and of skipped ejections, two of pick failures,
// two retry results, and the ejected-hosts gauge.
const MaxSeriesPerUpstream = numSeries

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
		live: map[string]*upstreamMetrics{},
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
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.live[upstream]; u != nil {
		u.deleted = true
		delete(m.live, upstream)
	}
	l := prometheus.Labels{"upstream": upstream}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{m.ejections, m.skipped, m.noHost, m.retries, m.ejected} {
		v.DeletePartialMatch(l)
	}
}

// The series of one upstream, as indexes of upstreamMetrics.series.
const (
	seriesEject5xx = iota
	seriesEjectConnect
	seriesSkip5xx
	seriesSkipConnect
	seriesNoHosts
	seriesNoHealthy
	seriesRetryAllowed
	seriesRetryRefused
	seriesEjected
	numSeries
)

// upstreamMetrics are one balancer's series, each made on its first use
// and then read without a lock, so that the hot path never looks up
// labels more than once. The slots are made with the first series: most
// upstreams of a large mesh never eject, skip or retry, and a sidecar
// holds one per service (430 bytes each, 0.4 MB with 1,000 services).
type upstreamMetrics struct {
	m      *Metrics // nil: counting into nothing
	name   string
	series atomic.Pointer[[numSeries]lazySeries]
	// deleted is set by Metrics.Delete (under m.mu): series made later
	// are not registered.
	deleted bool
}

// lazySeries is one series, made once.
type lazySeries struct {
	once sync.Once
	c    prometheus.Counter // counters
	g    prometheus.Gauge   // seriesEjected
}

func (m *Metrics) forUpstream(name string) *upstreamMetrics {
	u := &upstreamMetrics{m: m, name: name}
	if m != nil {
		m.mu.Lock()
		m.live[name] = u
		m.mu.Unlock()
	}
	return u
}

// inc adds one to series i (a counter).
func (u *upstreamMetrics) inc(i int) {
	s := u.get(i)
	s.c.Inc()
}

// setEjected sets the ejected-hosts gauge; a zero does not make it.
// Called with the balancer's lock held (publishLocked), so calls are
// never concurrent.
func (u *upstreamMetrics) setEjected(n int) {
	if p := u.series.Load(); n == 0 && (p == nil || p[seriesEjected].g == nil) {
		return
	}
	u.get(seriesEjected).g.Set(float64(n))
}

// get returns series i, making it on first use.
func (u *upstreamMetrics) get(i int) *lazySeries {
	p := u.series.Load()
	if p == nil {
		p = new([numSeries]lazySeries)
		if !u.series.CompareAndSwap(nil, p) {
			p = u.series.Load()
		}
	}
	s := &p[i]
	s.once.Do(func() {
		if u.m == nil {
			s.c, s.g = prometheus.NewCounter(prometheus.CounterOpts{Name: "unexported"}), prometheus.NewGauge(prometheus.GaugeOpts{Name: "unexported"})
			return
		}
		u.m.mu.Lock()
		defer u.m.mu.Unlock()
		if u.deleted {
			s.c, s.g = prometheus.NewCounter(prometheus.CounterOpts{Name: "unexported"}), prometheus.NewGauge(prometheus.GaugeOpts{Name: "unexported"})
			return
		}
		m, n := u.m, u.name
		switch i {
		case seriesEject5xx:
			s.c = m.ejections.WithLabelValues(n, reason5xx)
		case seriesEjectConnect:
			s.c = m.ejections.WithLabelValues(n, reasonConnect)
		case seriesSkip5xx:
			s.c = m.skipped.WithLabelValues(n, reason5xx)
		case seriesSkipConnect:
			s.c = m.skipped.WithLabelValues(n, reasonConnect)
		case seriesNoHosts:
			s.c = m.noHost.WithLabelValues(n, "no_hosts")
		case seriesNoHealthy:
			s.c = m.noHost.WithLabelValues(n, "no_healthy")
		case seriesRetryAllowed:
			s.c = m.retries.WithLabelValues(n, "allowed")
		case seriesRetryRefused:
			s.c = m.retries.WithLabelValues(n, "budget_exhausted")
		case seriesEjected:
			s.g = m.ejected.WithLabelValues(n)
		}
	})
	return s
}
