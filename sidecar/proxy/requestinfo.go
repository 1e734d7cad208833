package proxy

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// Reporters, the reporter label and access log field: which sidecar saw
// the request.
const (
	reporterSource      = "source"      // the client's sidecar (outbound)
	reporterDestination = "destination" // the server's sidecar (inbound)
)

// Response flags, Envoy's short codes for outcomes the mesh made
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage#config-access-log-format-response-flags).
// A request carries at most one; when several apply the most specific
// wins (URX over the failure of the last attempt). docs/telemetry.md
// lists them.
const (
	flagNone            = "-"
	flagNoHealthy       = "UH"   // no healthy upstream
	flagOverflow        = "UO"   // circuit breaker open (max requests, pending, connections)
	flagRetriesExceeded = "URX"  // retried, and the retry limit or budget ended it
	flagRateLimited     = "RL"   // a local rate limit refused it
	flagFaultAbort      = "FI"   // aborted by fault injection
	flagFaultDelay      = "DI"   // delayed by fault injection (and answered)
	flagDenied          = "RBAC" // denied by the authorization policy
	flagTimeout         = "UT"   // request or per-try timeout
	flagReset           = "UR"   // upstream reset after the request was sent
	flagConnectFailure  = "UF"   // no connection to the upstream (connect or TLS)
	flagNoRoute         = "NR"   // no service for the host, or no route rule matched
	flagNoCluster       = "NC"   // the route's backend does not exist
	flagDownstreamGone  = "DC"   // the client went away before the answer
)

// requestInfo is what one request was, filled as it goes through the
// sidecar and read once it ends, by the metrics and the access log (and
// by tracing, which fills traceID). One lives in each outbound call and
// inbound request; it is never shared between requests.
type requestInfo struct {
	start     time.Time
	duration  time.Duration
	reporter  string
	method    string
	authority string
	path      string
	protocol  string // "http" or "grpc"
	// code is the status the client got (0 before it is known),
	// grpcStatus the grpc-status it got ("" when none).
	code       int
	grpcStatus string
	flags      string // one of the flag constants; "" means flagNone
	// bytesIn is the request body received from the client, bytesOut
	// the response body sent to it.
	bytesIn, bytesOut int64
	// upstreamCluster is the xDS cluster (outbound) or inbound port
	// served; upstreamHost the endpoint that answered (host:port).
	upstreamCluster string
	upstreamHost    string
	retries         int

	sourceWorkload, sourceNamespace, sourcePrincipal, sourceCluster string
	destService                                                     string
	destWorkload, destNamespace, destPrincipal, destCluster         string
	// traceID is the W3C trace id (32 hex digits), "" when not traced.
	traceID string

	body countingBody // counts a request body of unknown length
}

// begin fills what the request says about itself.
func (ri *requestInfo) begin(r *http.Request, reporter string, now time.Time) {
	ri.start = now
	ri.reporter = reporter
	ri.method = r.Method
	ri.authority = r.Host
	ri.path = r.URL.Path
	ri.protocol = "http"
	if isGRPCContentType(r.Header.Get("Content-Type")) {
		ri.protocol = "grpc"
	}
	if r.ContentLength >= 0 {
		ri.bytesIn = r.ContentLength
	} else if r.Body != nil && r.Body != http.NoBody {
		ri.body.ReadCloser = r.Body
		ri.body.n = &ri.bytesIn
		r.Body = &ri.body
	}
}

// end fills the outcome from the recorder once the handler is done.
func (ri *requestInfo) end(rec *statusRecorder, now time.Time) {
	ri.duration = now.Sub(ri.start)
	ri.code = rec.status()
	ri.bytesOut = rec.bytes
	if ri.grpcStatus == "" {
		ri.grpcStatus = grpcStatusOf(rec.Header())
	}
	if ri.flags == "" {
		ri.flags = flagNone
	}
}

// setFlag records a mesh-made outcome; the first one set stays.
func (ri *requestInfo) setFlag(f string) {
	if ri.flags == "" || ri.flags == flagFaultDelay {
		ri.flags = f
	}
}

// failed reports whether the request is an error for the errors-only
// access log: a 5xx, a gRPC status other than OK, or a mesh-made outcome
// other than a fault delay.
func (ri *requestInfo) failed() bool {
	return ri.code >= 500 || (ri.grpcStatus != "" && ri.grpcStatus != "0") ||
		(ri.flags != "" && ri.flags != flagNone && ri.flags != flagFaultDelay)
}

// grpcStatusOf reads grpc-status from response headers or from the
// trailers httputil.ReverseProxy copied into them.
func grpcStatusOf(h http.Header) string {
	if v := h["Grpc-Status"]; len(v) > 0 {
		return v[0]
	}
	if v := h[http.TrailerPrefix+"Grpc-Status"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// countingBody counts the bytes read from a request body of unknown
// length.
type countingBody struct {
	io.ReadCloser
	n *int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	*b.n += int64(n)
	return n, err
}

// namespaceOf returns the namespace of a workload SPIFFE ID
// (spiffe://TD/ns/NS/sa/SA), "" for any other.
func namespaceOf(principal string) string {
	_, rest, ok := strings.Cut(principal, "/ns/")
	if !ok {
		return ""
	}
	ns, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return ns
}

// report records a finished request: in the mesh families of series s
// (nil: the service went away meanwhile, nothing is counted) and, when the
// access log is on for it, as an access log line.
func (p *Proxy) report(ri *requestInfo, s *serviceSeries) {
	s.observe(ri)
	p.logRequest(ri)
}

// logRequest queues ri's access log line when the access log is on for
// it: the node's configuration (Snapshot.Telemetry.AccessLog) turns it on
// for all requests or errors only; when it does not, Config.AccessLogMode
// decides.
func (p *Proxy) logRequest(ri *requestInfo) {
	l := p.cfg.AccessLog
	if l == nil {
		return
	}
	tel := &p.snap.Load().Telemetry
	mode := p.cfg.AccessLogMode
	if tel.AccessLog.Enabled {
		mode = AccessLogAll
		if tel.AccessLog.ErrorsOnly {
			mode = AccessLogErrors
		}
	}
	if mode == AccessLogOff || mode == AccessLogErrors && !ri.failed() {
		return
	}
	l.record(ri, tel.Tags)
}

// self fills the labels of the sidecar's own workload on the side ri
// reports from: source on outbound, destination on inbound.
func (p *Proxy) self(ri *requestInfo) {
	if ri.reporter == reporterSource {
		ri.sourceWorkload, ri.sourceNamespace, ri.sourcePrincipal, ri.sourceCluster = p.cfg.Workload, p.cfg.Namespace, p.cfg.Principal, p.cfg.Cluster
		return
	}
	ri.destWorkload, ri.destNamespace, ri.destPrincipal, ri.destCluster = p.cfg.Workload, p.cfg.Namespace, p.cfg.Principal, p.cfg.Cluster
}
