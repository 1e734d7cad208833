package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

// DefaultHTTPPort is the port assumed for a proxy request whose host has
// none.
const DefaultHTTPPort = 80

type ctxKey struct{}

// call is one outbound request's routing decision, carried from the
// handler to the RoundTripper as the request's context: it wraps the
// handler's context and answers Value(ctxKey{}) with itself, one
// allocation where context.WithValue would add a second.
type call struct {
	context.Context
	u   *upstream
	svc *config.Service
	// retry is the route's retry policy (the service's on the fast path).
	retry *config.RetryPolicy
	// dest is the cluster of the endpoint that answered, for metrics.
	dest string

	// Set only for a request routed by a rule of a route in force.
	rule    *config.Rule
	backend *config.Backend
	hash    uint64 // the request's hash key, when hashed
	hashed  bool
	delayed bool // a fault delayed the request
	// http1: the request goes to the other sidecar over HTTP/1.1 (it
	// came in over HTTP/1.x and is not gRPC; see upstream.pool).
	http1 bool

	// info is the request's record, for metrics and the access log;
	// rec the writer its response goes through.
	info requestInfo
	rec  statusRecorder
	span tracing.Span // the request's client span
}

// Value returns the call for ctxKey{} and asks the wrapped context for
// any other key.
func (c *call) Value(key any) any {
	if key == (ctxKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// OutboundHandler returns the handler of outbound HTTP. port is the
// service port of the listener it serves (0 for the proxy listener, where
// the request's host names the port, 80 when it does not). It routes by
// the Host header or the absolute request URI (NAME.NS.svc.clusterset.local
// or NAME.NS, with the port), and on a service-port listener with one HTTP
// service, sends requests with any other host (an IP address) there.
// CONNECT requests open an opaque tunnel to the named service.
func (p *Proxy) OutboundHandler(port int32) http.Handler {
	o := &outbound{p: p, port: port}
	o.rp = p.forwarder(func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme = "https"
		pr.Out.URL.Host = "upstream.invalid"
	}, p, o.fail)
	o.rp.ModifyResponse = modifyResponse
	return o
}

type outbound struct {
	p    *Proxy
	port int32
	rp   *httputil.ReverseProxy
}

func (o *outbound) route(r *http.Request) (*config.Service, string, int) {
	authority := r.Host
	if r.URL != nil && r.URL.Host != "" {
		authority = r.URL.Host
	}
	// A redirected connection (capture.go): its original destination's
	// port is the default, and its address the fallback.
	dst, captured := r.Context().Value(origDstKey{}).(netip.AddrPort)
	return o.routeAuthority(authority, dst, captured)
}

// routeAuthority is route for a request to authority, on a redirected
// connection to dst when captured.
func (o *outbound) routeAuthority(authority string, dst netip.AddrPort, captured bool) (*config.Service, string, int) {
	def := o.port
	if def == 0 {
		def = DefaultHTTPPort
	}
	if captured {
		def = int32(dst.Port())
	}
	host, port, err := config.SplitHostPort(authority, def)
	snap := o.p.snap.Load()
	if err == nil {
		if svc, ok := snap.Lookup(host, port); ok {
			return svc, "", 0
		}
	}
	if captured {
		if err == nil {
			if svc, ok := snap.Lookup(clusterLocal(host), port); ok {
				return svc, "", 0
			}
		}
		if svc, ok := snap.Lookup(dst.Addr().String(), int32(dst.Port())); ok {
			return svc, "", 0
		}
	}
	if o.port != 0 {
		var only *config.Service
		n := 0
		for _, svc := range snap.Port(o.port) {
			if svc.Protocol.IsHTTP() {
				only, n = svc, n+1
			}
		}
		if n == 1 {
			return only, "", 0
		}
	}
	if err != nil {
		return nil, "bad_host", http.StatusBadRequest
	}
	return nil, "no_route", http.StatusNotFound
}

func (o *outbound) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := o.p
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r, o.port)
		return
	}
	c := &call{}
	ri := &c.info
	ri.begin(r, reporterSource, p.cfg.Now())
	c.rec = statusRecorder{ResponseWriter: w, info: ri}
	c.http1 = r.ProtoMajor == 1 && ri.protocol != "grpc"
	defer o.done(c)
	w = &c.rec
	svc, reason, code := o.route(r)
	if svc == nil {
		ri.setFlag(flagNoRoute)
		p.m.errors.WithLabelValues("outbound", "", reason).Inc()
		http.Error(w, "fedmesh: no service for host "+strconv.Quote(r.Host), code)
		return
	}
	c.u = p.upstream(svc.Cluster)
	if svc.Routes != nil {
		o.serveRouted(w, r, svc, c)
		return
	}
	c.svc, c.retry = svc, &svc.Retry
	o.send(w, r, svc, svc.Timeout, c)
}

// done reports a finished outbound request: on the series of the
// upstream it went to (or of its service, when it went nowhere), or with
// destination_service "unknown" when no service was found.
func (o *outbound) done(c *call) {
	p := o.p
	ri := &c.info
	ri.end(&c.rec, p.cfg.Now())
	p.self(ri)
	if c.u == nil {
		p.m.mesh.observe(ri)
		p.logRequest(ri)
		return
	}
	svc := c.u.svc.Load()
	ri.destService, ri.destNamespace, ri.upstreamCluster = c.u.host, svc.Port.Namespace, svc.Cluster
	if ri.destCluster == "" {
		ri.destCluster = c.dest
	}
	p.report(ri, c.u.series)
}

// send forwards r to the cluster svc within timeout (0: none), with the
// routing decision c (whose svc is svc); w is c.rec.
func (o *outbound) send(w http.ResponseWriter, r *http.Request, svc *config.Service, timeout time.Duration, c *call) {
	p := o.p
	u := p.upstream(svc.Cluster)
	if u != nil {
		c.u = u
	}
	if u == nil {
		http.Error(w, "fedmesh: service is being configured", http.StatusServiceUnavailable)
		return
	}
	if !svc.Protocol.IsHTTP() {
		u.series.failed("not_http")
		http.Error(w, "fedmesh: "+svc.Port.String()+" is an opaque TCP port; use CONNECT or its port listener", http.StatusBadGateway)
		return
	}
	if n := u.active.Add(1); svc.Limits.MaxRequests > 0 && n > int64(svc.Limits.MaxRequests) {
		u.active.Add(-1)
		u.series.overflowed("max_requests")
		c.info.setFlag(flagOverflow)
		w.Header().Set("X-Fedmesh-Overloaded", "max_requests")
		http.Error(w, "fedmesh: too many requests to "+u.name, http.StatusServiceUnavailable)
		return
	}
	defer u.active.Add(-1)

	ctx := r.Context()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := p.bufferBody(r); err != nil {
		u.series.failed("client_body")
		http.Error(w, "fedmesh: reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if c.rule != nil {
		p.mirror(r, c.rule.Route, timeout)
	}
	c.Context = ctx
	c.span = p.traceOutbound(r, u)
	c.info.traceID = c.span.TraceID()
	start := p.cfg.Now()
	defer endSpan(&c.span, &c.rec)
	defer func() {
		u.series.request(p.cfg.Cluster, c.dest, c.rec.status(), p.cfg.Now().Sub(start).Seconds())
	}()
	forward(o.rp, &c.rec, r.WithContext(c))
}

// bufferBody reads a small request body of known length into memory so
// that the request can be replayed on another endpoint.
func (p *Proxy) bufferBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength < 0 || r.ContentLength > p.cfg.MaxRetryBody {
		return nil
	}
	buf := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, buf); err != nil {
		return err
	}
	r.Body.Close()
	r.GetBody = func() (io.ReadCloser, error) {
		rb := new(replayBody)
		rb.Reset(buf)
		return rb, nil
	}
	r.Body, _ = r.GetBody()
	return nil
}

// replayBody reads a buffered request body; every attempt gets its own.
type replayBody struct{ bytes.Reader }

// Close does nothing: the buffer stays for the next attempt.
func (*replayBody) Close() error { return nil }

func (o *outbound) fail(w http.ResponseWriter, r *http.Request, err error) {
	c, _ := r.Context().Value(ctxKey{}).(*call)
	name := ""
	if c != nil {
		name = c.u.name
	}
	var de *errDial
	code, reason := http.StatusBadGateway, "upstream_reset"
	switch {
	case errors.Is(err, errNoHealthy):
		code, reason = http.StatusServiceUnavailable, "no_healthy"
	case errors.Is(err, errOverflow):
		code, reason = http.StatusServiceUnavailable, "overflow"
	case errors.Is(err, context.DeadlineExceeded):
		code, reason = http.StatusGatewayTimeout, "timeout"
	case errors.Is(err, context.Canceled):
		code, reason = 499, "client_canceled"
	case errors.As(err, &de):
		code, reason = http.StatusServiceUnavailable, "connect"
	}
	if c != nil {
		c.u.series.failed(reason)
		c.info.setFlag(flagOf(reason, c.info.retries))
	} else {
		o.p.m.errors.WithLabelValues("outbound", "", reason).Inc()
	}
	o.p.log.Debug("outbound request failed", "service", name, "reason", reason, "err", err)
	w.Header().Set("X-Fedmesh-Error", reason)
	w.WriteHeader(code)
	_, _ = io.WriteString(w, "fedmesh: "+reason+": "+err.Error()+"\n")
}

// flagOf is the response flag of a request that failed for reason
// (outbound fail) after retries retries.
func flagOf(reason string, retries int) string {
	f := flagReset
	switch reason {
	case "no_healthy":
		return flagNoHealthy
	case "overflow":
		return flagOverflow
	case "client_canceled":
		return flagDownstreamGone
	case "timeout":
		f = flagTimeout
	case "connect":
		f = flagConnectFailure
	}
	if retries > 0 {
		return flagRetriesExceeded
	}
	return f
}

// RoundTrip sends one outbound request to an endpoint of the service in
// its context, retrying on another endpoint when the attempt failed in a
// way that allows it (see Service.Retry) and the retry budget has room.
// It returns as soon as response headers arrive: a response that has
// begun is never retried.
func (p *Proxy) RoundTrip(req *http.Request) (*http.Response, error) {
	c, ok := req.Context().Value(ctxKey{}).(*call)
	if !ok {
		return nil, errors.New("proxy: request without a route")
	}
	u, svc, rp := c.u, c.svc, c.retry
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	var triedBuf [4]*balancer.Host
	tried := triedBuf[:0]
	retries := 0
	retryHeld := false
	defer func() {
		c.info.retries = retries
		if retryHeld {
			u.bal.RetryDone()
		}
	}()
	for {
		var h *balancer.Host
		var err error
		if c.hashed {
			h, err = u.bal.PickHash(c.hash, tried...)
		} else {
			h, err = u.bal.Pick(tried...)
		}
		if err != nil {
			return nil, errNoHealthy
		}
		t := u.targetOf(h, svc)
		traceAttempt(c, h, svc)
		attempt := req
		if len(tried) > 0 {
			r2 := *req
			u2 := *req.URL
			r2.URL = &u2
			if req.GetBody != nil {
				if r2.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
			}
			attempt = &r2
		}
		attempt.URL.Host = t.addr
		tried = append(tried, h)
		if n := u.pending.Add(1); svc.Limits.MaxPending > 0 && n > int64(svc.Limits.MaxPending) {
			u.pending.Add(-1)
			u.series.overflowed("max_pending")
			return nil, errOverflow
		}
		var cancelTry context.CancelFunc
		if rp.PerTryTimeout > 0 {
			var actx context.Context
			actx, cancelTry = context.WithTimeout(req.Context(), rp.PerTryTimeout)
			attempt = attempt.WithContext(actx)
		}
		h.Begin()
		start := p.cfg.Now()
		resp, err := u.pool(t, svc, c.http1).RoundTrip(attempt)
		u.pending.Add(-1)
		perTryTimeout := err != nil && cancelTry != nil && attempt.Context().Err() != nil && req.Context().Err() == nil
		if cancelTry != nil && err != nil {
			cancelTry()
		}
		if retryHeld {
			u.bal.RetryDone()
			retryHeld = false
		}
		lat := p.cfg.Now().Sub(start)
		var retryReason string
		switch {
		case err != nil && req.Context().Err() != nil:
			h.End(balancer.Result{Kind: balancer.Canceled})
			return nil, err
		case perTryTimeout:
			// Envoy retries a per-try timeout under 5xx and
			// gateway-error; the client sees 504 when it gives up.
			h.End(balancer.Result{Kind: balancer.Status5xx, Latency: lat})
			err = fmt.Errorf("per-try timeout %v: %w", rp.PerTryTimeout, context.DeadlineExceeded)
			if !(rp.On5xx || rp.OnGatewayError) || !replayable || !p.reserveRetry(u, rp, retries) {
				return nil, err
			}
			retryReason = "per_try_timeout"
		case err != nil:
			h.End(balancer.Result{Kind: balancer.ConnectFailure})
			var de *errDial
			sent := !errors.As(err, &de)
			if !rp.OnConnectFailure || (sent && !replayable) {
				return nil, err
			}
			p.log.Debug("attempt failed", "service", u.name, "endpoint", t.addr, "err", err)
			if !p.reserveRetry(u, rp, retries) {
				return nil, err
			}
			retryReason = "connect_failure"
			if sent {
				retryReason = "reset"
			}
		case resp.StatusCode >= 500:
			h.End(balancer.Result{Kind: balancer.Status5xx, Latency: lat})
			// Without a retry the client gets this response as it is.
			if !rp.Retriable(resp.StatusCode) || !replayable || !p.reserveRetry(u, rp, retries) {
				c.answered(t, svc, h)
				if retries > 0 && rp.Retriable(resp.StatusCode) {
					c.info.setFlag(flagRetriesExceeded)
				}
				resp.Body = &endBody{ReadCloser: resp.Body, cancel: cancelTry}
				return resp, nil
			}
			retryReason = "status_5xx"
			drain(resp.Body)
		case rp.GRPCCodes != 0 && grpcRetriable(rp, resp) && replayable && p.reserveRetry(u, rp, retries):
			// A trailers-only gRPC answer with a retriable status.
			h.End(balancer.Result{Kind: balancer.OK, Latency: lat})
			retryReason = "grpc_status"
			drain(resp.Body)
		case resp.StatusCode < 500 && rp.Retriable(resp.StatusCode) && replayable && p.reserveRetry(u, rp, retries):
			h.End(balancer.Result{Kind: balancer.OK, Latency: lat})
			retryReason = "status_4xx"
			drain(resp.Body)
		default:
			c.answered(t, svc, h)
			resp.Body = &endBody{ReadCloser: resp.Body, cancel: cancelTry}
			h.End(balancer.Result{Kind: balancer.OK, Latency: lat})
			return resp, nil
		}
		if cancelTry != nil {
			cancelTry()
		}
		retryHeld = true
		retries++
		u.series.retried(retryReason)
		c.span.Retry(retryReason)
		if rp.BackOffBase > 0 {
			if err := backOff(req.Context(), rp, retries); err != nil {
				return nil, err
			}
		}
	}
}

// answered notes the endpoint whose response the client gets: its
// cluster, address, identity and workload (the control plane's EDS
// hostname, "" for a gateway entry of several workloads: unknown).
func (c *call) answered(t target, svc *config.Service, h *balancer.Host) {
	ep := h.Endpoint()
	c.dest = ep.Cluster
	c.info.destCluster = c.dest
	c.info.destWorkload = ep.Workload
	c.info.upstreamHost = t.addr
	switch {
	case t.identity != "":
		c.info.destPrincipal = t.identity
	case len(svc.Identities) == 1:
		c.info.destPrincipal = svc.Identities[0]
	}
}

// backOff waits before retry number n (1 for the first retry): a random
// time up to BackOffBase * 2^(n-1), capped at BackOffMax (Envoy's fully
// jittered exponential back-off). It returns early with ctx's error.
func backOff(ctx context.Context, rp *config.RetryPolicy, n int) error {
	ceil := rp.BackOffBase << min(n-1, 16)
	if rp.BackOffMax > 0 && (ceil > rp.BackOffMax || ceil <= 0) {
		ceil = rp.BackOffMax
	}
	d := time.Duration(rand.Int64N(int64(ceil)) + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// grpcRetriable reports whether resp is a gRPC answer whose headers carry
// a grpc-status the policy retries.
func grpcRetriable(rp *config.RetryPolicy, resp *http.Response) bool {
	v := resp.Header.Get("Grpc-Status")
	if v == "" {
		return false
	}
	code, err := strconv.Atoi(v)
	return err == nil && rp.RetriableGRPC(code)
}

// reserveRetry reports whether a request that made retries retries may
// make one more: within the route's num_retries and the balancer's retry
// budget. After true the caller holds a retry of the budget until the
// next attempt ends.
func (p *Proxy) reserveRetry(u *upstream, rp *config.RetryPolicy, retries int) bool {
	if retries >= rp.Retries {
		return false
	}
	if !u.bal.TryRetry() {
		u.series.retried("budget_exhausted")
		return false
	}
	return true
}

// endBody is the response body handed to the client side; closing it
// twice is harmless.
type endBody struct {
	io.ReadCloser
	once sync.Once
	// cancel, when set, ends the attempt's per-try timeout.
	cancel context.CancelFunc
}

func (b *endBody) Close() error {
	var err error
	b.once.Do(func() {
		err = b.ReadCloser.Close()
		if b.cancel != nil {
			b.cancel()
		}
	})
	return err
}

func drain(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 64<<10)
	b.Close()
}

// statusRecorder remembers the status written, for metrics; it passes
// Flush and Unwrap through so streaming and full duplex keep working.
type statusRecorder struct {
	http.ResponseWriter
	code  int
	bytes int64 // body bytes written
	// info, when set, is the request's record, for error handlers that
	// get only the writer.
	info *requestInfo
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// status is the status written, 200 when the handler wrote none.
func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// serveConnect tunnels a CONNECT request to a service over an opaque mTLS
// connection.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request, listenerPort int32) {
	def := listenerPort
	if def == 0 {
		def = DefaultHTTPPort
	}
	host, port, err := config.SplitHostPort(r.Host, def)
	if err != nil {
		p.m.errors.WithLabelValues("outbound", "", "bad_host").Inc()
		http.Error(w, "fedmesh: "+err.Error(), http.StatusBadRequest)
		return
	}
	svc, ok := p.snap.Load().Lookup(host, port)
	if !ok {
		p.m.errors.WithLabelValues("outbound", "", "no_route").Inc()
		http.Error(w, "fedmesh: no service "+net.JoinHostPort(host, strconv.Itoa(int(port))), http.StatusNotFound)
		return
	}
	u := p.upstream(svc.Cluster)
	if u == nil {
		http.Error(w, "fedmesh: service is being configured", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	up, h, err := p.dialTCP(r.Context(), u, svc)
	if err != nil {
		http.Error(w, "fedmesh: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	conn, brw, err := rc.Hijack()
	if err != nil {
		up.Close()
		h.End(balancer.Result{Kind: balancer.Canceled})
		u.conns.Add(-1)
		http.Error(w, "fedmesh: CONNECT needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	_, _ = io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
	var client net.Conn = conn
	if n := brw.Reader.Buffered(); n > 0 {
		pre, _ := brw.Reader.Peek(n)
		client = &prefixConn{Conn: conn, pre: bytes.Clone(pre)}
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.pipeTCP(client, up, u, h, p.closed)
	}()
}

type prefixConn struct {
	net.Conn
	pre []byte
}

// CloseWrite half-closes the connection where the one underneath can
// (splice), else closes it.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
