package proxy

import (
	"fmt"
	"sync"

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
	authz     *prometheus.CounterVec
	faults    *prometheus.CounterVec
	// Transparent capture (capture.go, inbound.go).
	captured          *prometheus.CounterVec
	passthrough       *prometheus.CounterVec
	passthroughActive *prometheus.GaugeVec
	passthroughBytes  *prometheus.CounterVec
	passthroughErrors *prometheus.CounterVec
	plaintextRefused  *prometheus.CounterVec
	detection         *prometheus.CounterVec
	// The HTTP/1.1 fast path (fast1.go).
	http1Refused  *prometheus.CounterVec
	http1Fallback *prometheus.CounterVec
	// mesh are the request and TCP families with the mesh labels
	// (fedmesh_requests_total, ...).
	mesh *meshMetrics
	// rateLimits reads the rate limiters' counters
	// (fedmesh_ratelimit_requests_total).
	rateLimits *rateLimitCollector
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
			Help: "Requests and connections the sidecar failed, by direction, service and reason (no_route, bad_host, no_healthy, connect, timeout, upstream_reset, app_unreachable, rate_limited (an inbound TCP connection over its rate); on a route in force no_route_match, backend_not_found, fault_injected, mirror_overflow).",
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
		authz: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_authz_decisions_total",
			Help: "Authorization decisions on inbound requests and connections of ports with an authorization policy, by decision (allow, deny, audit: an AUDIT policy matched) and service.",
		}, []string{"decision", "service"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_faults_injected_total",
			Help: "Faults injected by a route's envoy.filters.http.fault configuration, by service and fault (delay, abort). Aborted requests are also counted in fedmesh_sidecar_request_errors_total with reason fault_injected, and not in fedmesh_sidecar_requests_total.",
		}, []string{"service", "fault"}),
		captured: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_captured_connections_total",
			Help: "Redirected outbound connections meshed, by how the service was found (address: its ClusterSetIP or ClusterIP and port; host: the Host of the first request).",
		}, []string{"by"}),
		passthrough: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_passthrough_connections_total",
			Help: "Redirected connections relayed untouched to their original destination, by direction (outbound: to no service; inbound: plaintext the workload allows).",
		}, []string{"direction"}),
		passthroughActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_sidecar_passthrough_connections_active",
			Help: "Open passthrough connections, by direction.",
		}, []string{"direction"}),
		passthroughBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_passthrough_bytes_total",
			Help: "Bytes of passthrough connections, by direction and flow (sent: from the connection's client; received: to it).",
		}, []string{"direction", "flow"}),
		passthroughErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_passthrough_errors_total",
			Help: "Passthrough connections that failed, by direction and reason (connect).",
		}, []string{"direction", "reason"}),
		plaintextRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_inbound_plaintext_refused_total",
			Help: "Inbound plaintext connections refused, by reason (strict: the port takes mTLS only; authz_policy: an authorization policy guards the port, and plaintext has no identity to check; not_redirected: no original destination to relay to; own_port: addressed to the sidecar itself).",
		}, []string{"reason"}),
		detection: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_protocol_detection_total",
			Help: "Redirected connections whose first bytes were waited for to tell their protocol, by direction and result (outbound: http, a request head was read; other, not HTTP/1; inbound: tls or plaintext; both: timeout, nothing came within the sniff timeout, as with a protocol whose server speaks first; skipped: an opaque port, no wait).",
		}, []string{"direction", "result"}),
		http1Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_http1_refused_total",
			Help: "HTTP/1.1 request heads the fast path refused (400 or 431), by direction and reason (bare_lf, head_too_large, too_many_headers, request_line, header_line, obs_fold, content_length, content_length_and_transfer_encoding, transfer_encoding, host, target).",
		}, []string{"direction", "reason"}),
		http1Fallback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_http1_fallback_total",
			Help: "Connections the HTTP/1.1 fast path handed to net/http, by direction and the reason of the request that needed it (http/1.0, h2c, version, expect, hop_by_hop, target_form, grpc, no_service, routes, upstream, policy, app_h2c, identity, unknown_sni).",
		}, []string{"direction", "reason"}),
		mesh:       newMeshMetrics(),
		rateLimits: newRateLimitCollector(),
	}
	if reg != nil {
		cs := []prometheus.Collector{m.requests, m.duration, m.errors, m.retries, m.overflow, m.refused, m.spoofed, m.tcp, m.tcpActive, m.authz, m.faults,
			m.captured, m.passthrough, m.passthroughActive, m.passthroughBytes, m.passthroughErrors, m.plaintextRefused, m.detection, m.http1Refused, m.http1Fallback, m.rateLimits}
		for _, c := range append(cs, m.mesh.collectors()...) {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("proxy: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// deleteService removes every series of service in direction (inbound,
// outbound).
func (m *Metrics) deleteService(direction, service string) {
	l := prometheus.Labels{"direction": direction, "service": service}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{m.requests, m.duration, m.errors, m.tcp, m.tcpActive} {
		v.DeletePartialMatch(l)
	}
	if direction == "inbound" {
		m.authz.DeletePartialMatch(prometheus.Labels{"service": service})
	}
	if direction == "outbound" {
		l := prometheus.Labels{"service": service}
		m.retries.DeletePartialMatch(l)
		m.overflow.DeletePartialMatch(l)
		m.faults.DeletePartialMatch(l)
	}
}

// serviceSeries writes the series of one service in one direction until
// the service leaves the configuration; then delete removes them, and
// writes after it (of requests still in flight) do nothing, so the series
// stay gone. Writes hold mu for reading, so one cannot slip in between
// the deletion and gone being set. The write methods of a nil
// *serviceSeries (an inbound port no longer configured) do nothing.
type serviceSeries struct {
	m         *Metrics
	direction string
	name      string // the service label: namespace/name:port
	// host is the destination_service label of the mesh families
	// (NAME.NS.svc.clusterset.local), reporter their reporter.
	host, reporter string

	mu   sync.RWMutex // guards the following
	gone bool

	// bound caches the request counter and duration histogram of each
	// (source, destination, code class) this series has written, so
	// that a request costs a map lookup here instead of hashing the
	// label values in both vectors. It is emptied with the series.
	boundMu sync.RWMutex // guards bound
	bound   map[requestKey]requestSeries
}

// requestKey names the labels of one request series of a serviceSeries
// (the direction and service are its own).
type requestKey struct {
	source, dest, class string
}

// requestSeries are the collectors of one requestKey.
type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

func newServiceSeries(m *Metrics, direction, name, host string) *serviceSeries {
	reporter := reporterSource
	if direction == "inbound" {
		reporter = reporterDestination
	}
	return &serviceSeries{m: m, direction: direction, name: name, host: host, reporter: reporter}
}

// delete removes the service's series for good, and with dropHost those
// of the mesh families of its host too (the caller says whether another
// series still writes them: two ports of a service share the host). It
// is idempotent.
func (s *serviceSeries) delete(dropHost bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gone {
		s.gone = true
		s.boundMu.Lock()
		s.bound = nil
		s.boundMu.Unlock()
		s.m.deleteService(s.direction, s.name)
		if dropHost {
			s.m.mesh.deleteService(s.reporter, s.host)
		}
	}
}

// observe records a finished request in the mesh families.
func (s *serviceSeries) observe(ri *requestInfo) {
	if s == nil {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.gone {
		s.m.mesh.observe(ri)
	}
}

// tcpOpen counts an opaque TCP connection in the mesh families; lv are
// the source workload, namespace and cluster and the destination
// workload, namespace and cluster. ok is false when the service is gone.
func (s *serviceSeries) tcpOpen(srcWorkload, srcNamespace, srcCluster, dstWorkload, dstNamespace, dstCluster string) (tcpConn, bool) {
	if s == nil {
		return tcpConn{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.gone {
		return tcpConn{}, false
	}
	return s.m.mesh.tcpOpen(s.reporter, srcWorkload, srcNamespace, srcCluster, dstWorkload, dstNamespace, s.host, dstCluster), true
}

// request records one HTTP request from source to dest cluster that
// answered code after seconds.
func (s *serviceSeries) request(source, dest string, code int, seconds float64) {
	if s == nil {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.gone {
		return
	}
	rs := s.boundLocked(requestKey{source: source, dest: dest, class: codeClass(code)})
	rs.count.Inc()
	rs.duration.Observe(seconds)
}

// boundLocked returns the collectors of k, binding them on first use.
// Called with s.mu held for reading and the series not gone.
func (s *serviceSeries) boundLocked(k requestKey) requestSeries {
	s.boundMu.RLock()
	rs, ok := s.bound[k]
	s.boundMu.RUnlock()
	if ok {
		return rs
	}
	rs = requestSeries{
		count:    s.m.requests.WithLabelValues(s.direction, k.source, k.dest, s.name, k.class),
		duration: s.m.duration.WithLabelValues(s.direction, k.source, k.dest, s.name),
	}
	s.boundMu.Lock()
	if s.bound == nil {
		s.bound = map[requestKey]requestSeries{}
	}
	s.bound[k] = rs
	s.boundMu.Unlock()
	return rs
}

// failed counts a request or connection failed for reason.
func (s *serviceSeries) failed(reason string) {
	if s == nil {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.gone {
		s.m.errors.WithLabelValues(s.direction, s.name, reason).Inc()
	}
}

// retried counts a retry after an attempt failed for reason (outbound).
func (s *serviceSeries) retried(reason string) {
	if s == nil {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.gone {
		s.m.retries.WithLabelValues(s.name, reason).Inc()
	}
}

// authzDecision counts an authorization decision (inbound).
func (s *serviceSeries) authzDecision(decision string) {
	if s == nil {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.gone {
		s.m.authz.WithLabelValues(decision, s.name).Inc()
	}
}

// overflowed counts a request or connection refused by limit (outbound).
func (s *serviceSeries) overflowed(limit string) {
	if s == nil {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.gone {
		s.m.overflow.WithLabelValues(s.name, limit).Inc()
	}
}

// tcpOpened counts an opaque TCP connection to dest cluster and returns
// the gauge of open connections, already raised: the caller lowers it
// when the connection ends. Nil when the service is gone.
func (s *serviceSeries) tcpOpened(dest string) prometheus.Gauge {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.gone {
		return nil
	}
	s.m.tcp.WithLabelValues(s.direction, s.name, dest).Inc()
	g := s.m.tcpActive.WithLabelValues(s.direction, s.name)
	g.Inc()
	return g
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
