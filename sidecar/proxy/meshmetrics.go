package proxy

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// unknown is the value of a mesh label the sidecar cannot know (Istio's).
const unknown = "unknown"

// requestLabelNames are the labels of the fedmesh_request* families,
// Istio's standard set (docs/telemetry.md).
var requestLabelNames = []string{
	"reporter",
	"source_workload", "source_namespace", "source_principal", "source_cluster",
	"destination_workload", "destination_namespace", "destination_principal", "destination_service", "destination_cluster",
	"request_protocol", "response_code", "grpc_response_status", "response_flags",
}

// tcpLabelNames are the labels of the fedmesh_tcp_* families.
var tcpLabelNames = []string{
	"reporter",
	"source_workload", "source_namespace", "source_cluster",
	"destination_workload", "destination_namespace", "destination_service", "destination_cluster",
}

// requestLabels is one series of the request families, in the order of
// requestLabelNames; a map key, so a request whose series exists
// allocates nothing to find it.
type requestLabels struct {
	reporter                                                        string
	srcWorkload, srcNamespace, srcPrincipal, srcCluster             string
	dstWorkload, dstNamespace, dstPrincipal, dstService, dstCluster string
	protocol, code, grpcStatus, flags                               string
}

// requestObservers are the collectors of one series.
type requestObservers struct {
	count                         prometheus.Counter
	duration, reqBytes, respBytes prometheus.Observer
}

// meshMetrics are the request and TCP families with the mesh labels.
type meshMetrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	reqBytes  *prometheus.HistogramVec
	respBytes *prometheus.HistogramVec

	tcpOpened   *prometheus.CounterVec
	tcpSent     *prometheus.CounterVec
	tcpReceived *prometheus.CounterVec

	mu     sync.RWMutex // guards the following
	series map[requestLabels]*requestObservers
}

// sizeBuckets are Istio's for request and response sizes: 1 B to 100 MB
// in powers of ten.
var sizeBuckets = prometheus.ExponentialBuckets(1, 10, 9)

func newMeshMetrics() *meshMetrics {
	return &meshMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_requests_total",
			Help: "HTTP and gRPC requests, reported by the client's sidecar (reporter=source) and the server's (reporter=destination), with the mesh labels and the response flags of mesh-made outcomes (docs/telemetry.md).",
		}, requestLabelNames),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fedmesh_request_duration_seconds",
			Help:    "Time from the request's arrival at the sidecar to the end of its response, by the labels of fedmesh_requests_total.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, requestLabelNames),
		reqBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fedmesh_request_bytes",
			Help:    "Request body sizes, by the labels of fedmesh_requests_total.",
			Buckets: sizeBuckets,
		}, requestLabelNames),
		respBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fedmesh_response_bytes",
			Help:    "Response body sizes, by the labels of fedmesh_requests_total.",
			Buckets: sizeBuckets,
		}, requestLabelNames),
		tcpOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_tcp_connections_opened_total",
			Help: "Opaque TCP connections opened, by reporter and the mesh labels.",
		}, tcpLabelNames),
		tcpSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_tcp_sent_bytes_total",
			Help: "Bytes of opaque TCP connections sent towards the server (client to server), counted when the connection ends.",
		}, tcpLabelNames),
		tcpReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_tcp_received_bytes_total",
			Help: "Bytes of opaque TCP connections received from the server (server to client), counted when the connection ends.",
		}, tcpLabelNames),
		series: map[requestLabels]*requestObservers{},
	}
}

func (mm *meshMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{mm.requests, mm.duration, mm.reqBytes, mm.respBytes, mm.tcpOpened, mm.tcpSent, mm.tcpReceived}
}

// observe records one finished request.
func (mm *meshMetrics) observe(ri *requestInfo) {
	k := requestLabels{
		reporter:    ri.reporter,
		srcWorkload: orUnknown(ri.sourceWorkload), srcNamespace: orUnknown(ri.sourceNamespace),
		srcPrincipal: orUnknown(ri.sourcePrincipal), srcCluster: orUnknown(ri.sourceCluster),
		dstWorkload: orUnknown(ri.destWorkload), dstNamespace: orUnknown(ri.destNamespace),
		dstPrincipal: orUnknown(ri.destPrincipal), dstService: orUnknown(ri.destService), dstCluster: orUnknown(ri.destCluster),
		protocol: ri.protocol, code: codeString(ri.code), grpcStatus: ri.grpcStatus, flags: ri.flags,
	}
	mm.mu.RLock()
	o := mm.series[k]
	mm.mu.RUnlock()
	if o == nil {
		o = mm.create(k)
	}
	o.count.Inc()
	o.duration.Observe(ri.duration.Seconds())
	o.reqBytes.Observe(float64(ri.bytesIn))
	o.respBytes.Observe(float64(ri.bytesOut))
}

func (mm *meshMetrics) create(k requestLabels) *requestObservers {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if o := mm.series[k]; o != nil {
		return o
	}
	lv := []string{k.reporter, k.srcWorkload, k.srcNamespace, k.srcPrincipal, k.srcCluster,
		k.dstWorkload, k.dstNamespace, k.dstPrincipal, k.dstService, k.dstCluster,
		k.protocol, k.code, k.grpcStatus, k.flags}
	o := &requestObservers{
		count:     mm.requests.WithLabelValues(lv...),
		duration:  mm.duration.WithLabelValues(lv...),
		reqBytes:  mm.reqBytes.WithLabelValues(lv...),
		respBytes: mm.respBytes.WithLabelValues(lv...),
	}
	mm.series[k] = o
	return o
}

// tcpConn is the series of one opaque TCP connection.
type tcpConn struct {
	sent, received prometheus.Counter
}

// tcpOpened counts a connection and returns the counters of its bytes.
func (mm *meshMetrics) tcpOpen(lv ...string) tcpConn {
	for i, v := range lv {
		lv[i] = orUnknown(v)
	}
	mm.tcpOpened.WithLabelValues(lv...).Inc()
	return tcpConn{sent: mm.tcpSent.WithLabelValues(lv...), received: mm.tcpReceived.WithLabelValues(lv...)}
}

// deleteService removes every series of a destination service seen by
// reporter.
func (mm *meshMetrics) deleteService(reporter, host string) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	for k := range mm.series {
		if k.reporter == reporter && k.dstService == host {
			delete(mm.series, k)
		}
	}
	l := prometheus.Labels{"reporter": reporter, "destination_service": host}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{mm.requests, mm.duration, mm.reqBytes, mm.respBytes, mm.tcpOpened, mm.tcpSent, mm.tcpReceived} {
		v.DeletePartialMatch(l)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// codeStrings are the response_code values of statuses 0-599, made once
// so that a request does not format its code.
var codeStrings = func() []string {
	s := make([]string, 600)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func codeString(code int) string {
	if code >= 0 && code < len(codeStrings) {
		return codeStrings[code]
	}
	return fmt.Sprint(code)
}
