package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/sidecar/config"
)

var errUnknownSNI = errors.New("no inbound port for this server name")

// inboundPort finds the inbound port for a server name.
func (p *Proxy) inboundPort(sni string) (config.InboundPort, bool) {
	sni = strings.ToLower(sni)
	for _, in := range p.snap.Load().Inbound {
		if ip, ok := in.Ports[sni]; ok {
			return ip, true
		}
	}
	return config.InboundPort{}, false
}

// InboundTLSConfig is the server side of mutual TLS: the workload's SDS
// certificate, clients verified against the SDS trust bundle (exactly one
// URI SAN, a workload SPIFFE ID of the federation's trust domain, chained to
// the bundle, valid now), and a server name that selects one of the
// workload's service ports. Refusals are counted by reason.
func (p *Proxy) InboundTLSConfig() *tls.Config {
	cfg := identity.OnRefuse(identity.ServerConfig(p, p, identity.AuthorizeWorkloads()), func(err error) {
		p.m.refused.WithLabelValues(identity.Reason(err)).Inc()
		p.log.Debug("inbound handshake refused", "reason", identity.Reason(err), "err", err)
	})
	cfg.NextProtos = []string{ALPNH2, "http/1.1", ALPNTCP}
	base := cfg
	cfg = base.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if _, ok := p.inboundPort(hello.ServerName); !ok {
			p.m.refused.WithLabelValues("unknown_sni").Inc()
			return nil, fmt.Errorf("%w: %q", errUnknownSNI, hello.ServerName)
		}
		return nil, nil
	}
	return cfg
}

// ServeInbound accepts mutual TLS connections on l until ctx ends: HTTP
// (ALPN h2 or http/1.1) goes to the app through a reverse proxy that sets
// the caller's identity in X-Fedmesh-Client-Id, opaque TCP (ALPN
// fedmesh-tcp) is spliced to the app. It closes l and returns nil when ctx
// ends, after its connections are closed.
func (p *Proxy) ServeInbound(ctx context.Context, l net.Listener) error {
	tcfg := p.InboundTLSConfig()
	httpConns := newChanListener(l.Addr())
	fail := func(w http.ResponseWriter, r *http.Request, err error) {
		if rec, ok := w.(*statusRecorder); ok && rec.info != nil {
			rec.info.setFlag(flagConnectFailure)
		}
		p.m.errors.WithLabelValues("inbound", "", "app_unreachable").Inc()
		p.log.Debug("app unreachable", "err", err)
		w.WriteHeader(http.StatusBadGateway)
	}
	h1 := p.forwarder(p.rewriteInbound, p.appH1, fail)
	h2c := p.forwarder(p.rewriteInbound, p.appH2C, fail)
	srv := &http.Server{
		Handler:           p.inboundHandler(h1, h2c),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          p.errorLog,
		ConnContext:       p.withPeer,
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(httpConns)
	}()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var conns sync.WaitGroup
	for {
		raw, err := l.Accept()
		if err != nil {
			break
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			p.inboundConn(ctx, raw, tcfg, httpConns)
		}()
	}
	l.Close()
	conns.Wait()
	_ = srv.Close()
	httpConns.Close()
	wg.Wait()
	return nil
}

func (p *Proxy) inboundConn(ctx context.Context, raw net.Conn, tcfg *tls.Config, httpConns *chanListener) {
	if p.cfg.OriginalDst != nil {
		var ok bool
		if raw, ok = p.tlsOrPlaintext(ctx, raw); !ok {
			return
		}
	}
	conn := tls.Server(raw, tcfg)
	hctx, cancel := context.WithTimeout(ctx, p.cfg.HandshakeTimeout)
	err := conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		raw.Close()
		p.log.Debug("inbound handshake failed", "remote", raw.RemoteAddr(), "err", err)
		return
	}
	cs := conn.ConnectionState()
	port, ok := p.inboundPort(cs.ServerName)
	if !ok {
		conn.Close()
		return
	}
	if port.Authz != nil && port.Authz.Connection != nil {
		id, err := identity.PeerID(cs)
		if err != nil || !p.authorizeConn(port, id.String(), &peerInfo{p: p, cs: cs}) {
			conn.Close()
			return
		}
	}
	if port.ConnectionLimit != nil {
		// After authorization, as Envoy's network filters run in order:
		// a denied connection takes no token.
		principal := ""
		if id, err := identity.PeerID(cs); err == nil {
			principal = id.String()
		}
		if !p.admitConn(port, principal, (&peerInfo{p: p, cs: cs}).peerCluster()) {
			conn.Close()
			return
		}
	}
	// An HTTP port with request-level authorization or rate limits parses
	// what comes in as HTTP, as Envoy's HTTP connection manager does,
	// whatever ALPN the client chose: an opaque tunnel (CONNECT) cannot
	// pass requests by the policy.
	if cs.NegotiatedProtocol != ALPNTCP || (port.Authz != nil && port.Authz.Request != nil) || port.RateLimit != nil {
		if !p.cfg.NetHTTPOnly && (cs.NegotiatedProtocol == ALPNHTTP1 || cs.NegotiatedProtocol == "") {
			p.serveInboundFast(ctx, conn, cs, httpConns)
			return
		}
		if !httpConns.deliver(conn) {
			conn.Close()
		}
		return
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	app, err := d.DialContext(dctx, "tcp", port.App)
	cancel()
	if err != nil {
		p.inboundSeries(port.Port).failed("app_unreachable")
		conn.Close()
		return
	}
	series := p.inboundSeries(port.Port)
	g := series.tcpOpened(p.cfg.Cluster)
	pi := peerInfo{p: p, cs: cs}
	srcNS := ""
	if id, err := identity.PeerID(cs); err == nil {
		srcNS = namespaceOf(id.String())
	}
	tc, ok := series.tcpOpen("", srcNS, pi.peerCluster(), p.cfg.Workload, p.cfg.Namespace, p.cfg.Cluster)
	sctx, scancel := p.untilClosed(ctx)
	sent, received := splice(conn, app, sctx.Done())
	scancel()
	if ok {
		tc.sent.Add(float64(sent))
		tc.received.Add(float64(received))
	}
	if g != nil {
		g.Dec()
	}
}

// inboundHandler checks the caller, sets its identity header and forwards
// to the app over HTTP/1.1 (h1) or h2c (h2c, see appSpeaksH2C).
func (p *Proxy) inboundHandler(h1, h2c *httputil.ReverseProxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pr, ok := r.Context().Value(peerKey{}).(*peer); ok && r.TLS == nil {
			// A connection the fast path handed over (withPeer).
			r.TLS = &pr.info.cs
		}
		if r.TLS == nil {
			http.Error(w, "fedmesh: inbound needs TLS", http.StatusForbidden)
			return
		}
		port, ok := p.inboundPort(r.TLS.ServerName)
		if !ok {
			http.Error(w, "fedmesh: unknown server name", http.StatusMisdirectedRequest)
			return
		}
		id, err := peerOf(r)
		if err != nil {
			p.m.refused.WithLabelValues(identity.Reason(err)).Inc()
			http.Error(w, "fedmesh: "+err.Error(), http.StatusForbidden)
			return
		}
		ir := &inboundRequest{}
		ri := &ir.info
		ri.begin(r, reporterDestination, p.cfg.Now())
		ir.rec = statusRecorder{ResponseWriter: w, info: ri}
		pi := peerInfoOf(r, p)
		ri.sourcePrincipal = id.String()
		ri.sourceNamespace = namespaceOf(ri.sourcePrincipal)
		ri.sourceCluster = pi.peerCluster()
		ri.upstreamCluster, ri.upstreamHost = port.SNI, port.App
		series := p.inboundSeries(port.Port)
		if series != nil {
			ri.destService = series.host
		}
		defer func() {
			ri.end(&ir.rec, p.cfg.Now())
			p.self(ri)
			p.report(ri, series)
		}()
		if port.Authz != nil && port.Authz.Request != nil && !p.authorizeHTTP(&ir.rec, r, port, id.String(), pi) {
			ri.setFlag(flagDenied)
			return
		}
		if port.RateLimit != nil && !p.rateLimitHTTP(&ir.rec, r, port, id.String(), ri.sourceCluster) {
			ri.setFlag(flagRateLimited)
			return
		}
		if _, spoofed := r.Header[ClientIDHeader]; spoofed {
			p.m.spoofed.Inc()
			p.log.Debug("removed a client identity header set by the caller", "caller", id.String())
		}
		r.Header.Del(ClientIDHeader)
		r.Header.Set(ClientIDHeader, id.String())
		rp := h1
		if appSpeaksH2C(port.Protocol, r.Header.Get("Content-Type")) {
			rp = h2c
		}
		start := p.cfg.Now()
		sp := p.traceInbound(r, port)
		ri.traceID = sp.TraceID()
		defer endSpan(&sp, &ir.rec)
		defer func() {
			series.request(ri.sourceCluster, p.cfg.Cluster, ir.rec.status(), p.cfg.Now().Sub(start).Seconds())
		}()
		forward(rp, &ir.rec, r)
	})
}

// inboundRequest is one inbound request's record and response writer,
// allocated together.
type inboundRequest struct {
	info requestInfo
	rec  statusRecorder
}

// peer is the verified identity of the client of one connection.
type peer struct {
	id   spiffeid.ID
	err  error
	info *peerInfo
}

type peerKey struct{}

// withPeer reads the client's identity once per connection (the
// handshake has verified it already), for every request on it.
func (p *Proxy) withPeer(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*prefixConn); ok {
		// Handed over by the fast path, with the bytes it read.
		c = pc.Conn
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		return ctx
	}
	cs := tc.ConnectionState()
	id, err := identity.PeerID(cs)
	return context.WithValue(ctx, peerKey{}, &peer{id: id, err: err, info: &peerInfo{p: p, cs: cs}})
}

// peerInfoOf returns the connection's peer information of r.
func peerInfoOf(r *http.Request, p *Proxy) *peerInfo {
	if pr, ok := r.Context().Value(peerKey{}).(*peer); ok {
		return pr.info
	}
	return &peerInfo{p: p, cs: *r.TLS}
}

// peerOf returns the identity of r's client.
func peerOf(r *http.Request) (spiffeid.ID, error) {
	if pr, ok := r.Context().Value(peerKey{}).(*peer); ok {
		return pr.id, pr.err
	}
	return identity.PeerID(*r.TLS)
}

// inboundSeries returns the series of the inbound port sp, or nil when a
// new configuration has removed the port since the caller found it.
func (p *Proxy) inboundSeries(sp naming.ServicePort) *serviceSeries {
	s, _ := p.inbound.Load(sp)
	ss, _ := s.(*serviceSeries)
	return ss
}

// updateInboundSeriesLocked makes the inbound series those of the ports
// of snap: new ports get theirs, the series of ports that are gone are
// deleted. Called under p.mu, before snap is published.
func (p *Proxy) updateInboundSeriesLocked(snap *config.Snapshot) {
	want := map[naming.ServicePort]bool{}
	hosts := map[string]bool{}
	for _, in := range snap.Inbound {
		for _, port := range in.Ports {
			want[port.Port] = true
			hosts[port.Port.Host()] = true
			if _, ok := p.inbound.Load(port.Port); !ok {
				p.inbound.Store(port.Port, newServiceSeries(p.m, "inbound", port.Port.String(), port.Port.Host()))
			}
		}
	}
	p.inbound.Range(func(k, v any) bool {
		if sp := k.(naming.ServicePort); !want[sp] {
			v.(*serviceSeries).delete(!hosts[sp.Host()])
			p.inbound.Delete(k)
		}
		return true
	})
}

// rewriteInbound sends the request to the app of the port its server name
// selects. The handler found that port a moment ago; should a new
// configuration have removed it since, the empty address fails the
// request with 502.
func (p *Proxy) rewriteInbound(pr *httputil.ProxyRequest) {
	port, _ := p.inboundPort(pr.In.TLS.ServerName)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = port.App
	// Rewrite drops X-Forwarded-*; the identity header was set by the
	// handler on In and is copied with the other headers.
}

// appSpeaksH2C reports whether a request goes to the app over h2c rather
// than HTTP/1.1: always on a gRPC port, and on an HTTP port for gRPC
// itself (application/grpc, application/grpc+proto, ...), which needs
// HTTP/2. gRPC-Web (application/grpc-web...) is made for HTTP/1.1 and goes
// there.
func appSpeaksH2C(proto config.Protocol, contentType string) bool {
	if proto == config.GRPC {
		return true
	}
	rest, ok := cutPrefixFold(contentType, "application/grpc")
	if !ok {
		return false
	}
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// cutPrefixFold is strings.CutPrefix ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// chanListener hands connections accepted and TLS-terminated elsewhere to
// an http.Server.
type chanListener struct {
	addr  net.Addr
	ch    chan net.Conn
	done  chan struct{}
	close sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.close.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// tlsRecordHandshake is the first byte of a TLS connection: the record
// type of its ClientHello.
const tlsRecordHandshake = 0x16

// tlsOrPlaintext tells a TLS client from a plaintext one by the first
// byte it sends (within the sniff timeout; a client that sends nothing
// first is plaintext). A TLS connection is returned, with that byte to be
// read again, for the handshake. A plaintext one is relayed to its
// original destination when the workload takes plaintext on that port
// (PERMISSIVE), else refused (STRICT); either way it is done with. On an
// opaque port that takes plaintext and that no mesh service uses, no
// TLS can come: the connection is relayed at once, without the wait, so
// a server that speaks first (SMTP, MySQL) is heard at once.
func (p *Proxy) tlsOrPlaintext(ctx context.Context, raw net.Conn) (net.Conn, bool) {
	dst, redirected := p.redirected(raw)
	if redirected && p.cfg.OpaquePorts.Contains(dst.Port()) && p.takesPlaintext(dst.Port()) && !p.meshAppPort(dst.Port()) {
		p.m.detection.WithLabelValues("inbound", "skipped").Inc()
		p.relay(ctx, &capturedConn{Conn: raw, r: raw, dst: dst}, "inbound")
		return nil, false
	}
	first := make([]byte, 1)
	_ = raw.SetReadDeadline(time.Now().Add(p.cfg.SniffTimeout))
	n, err := raw.Read(first)
	_ = raw.SetReadDeadline(time.Time{})
	var ne net.Error
	timeout := err != nil && errors.As(err, &ne) && ne.Timeout()
	if err != nil && !timeout {
		raw.Close()
		return nil, false
	}
	cc := &capturedConn{Conn: raw, r: io.MultiReader(bytes.NewReader(first[:n]), raw)}
	if n == 1 && first[0] == tlsRecordHandshake {
		p.m.detection.WithLabelValues("inbound", "tls").Inc()
		return cc, true
	}
	if timeout {
		p.m.detection.WithLabelValues("inbound", "timeout").Inc()
	} else {
		p.m.detection.WithLabelValues("inbound", "plaintext").Inc()
	}
	switch {
	case !redirected:
		p.refusePlaintext(raw, "not_redirected", dst)
	case slices.Contains(p.cfg.InboundPlaintext.Own, dst.Port()):
		p.refusePlaintext(raw, "own_port", dst)
	case !p.cfg.InboundPlaintext.allows(dst.Port()):
		p.refusePlaintext(raw, "strict", dst)
	case p.guardedPort(dst.Port()):
		p.refusePlaintext(raw, "authz_policy", dst)
	default:
		cc.dst = dst
		p.relay(ctx, cc, "inbound")
	}
	return nil, false
}

// takesPlaintext reports whether plaintext to the app's port is relayed:
// the workload allows it there and no authorization policy guards it.
func (p *Proxy) takesPlaintext(port uint16) bool {
	return p.cfg.InboundPlaintext.allows(port) && !p.guardedPort(port)
}

// meshAppPort reports whether a mesh service of the workload is served
// on the app's port: mesh peers dial it with mTLS (Kubernetes' endpoints
// are the app's ports), so its connections must be looked at.
func (p *Proxy) meshAppPort(port uint16) bool {
	for _, in := range p.snap.Load().Inbound {
		for _, ip := range in.Ports {
			if _, ap, err := net.SplitHostPort(ip.App); err == nil && ap == strconv.Itoa(int(port)) {
				return true
			}
		}
	}
	return false
}

func (p *Proxy) refusePlaintext(raw net.Conn, reason string, dst netip.AddrPort) {
	p.m.plaintextRefused.WithLabelValues(reason).Inc()
	p.log.Debug("inbound plaintext refused", "reason", reason, "remote", raw.RemoteAddr(), "destination", dst)
	raw.Close()
}

// guardedPort reports whether an app port is under an authorization
// policy: plaintext callers have no identity to check, so such a port
// takes mTLS alone whatever the workload's mode says (a relayed
// plaintext connection would go around the policy).
func (p *Proxy) guardedPort(port uint16) bool {
	for _, in := range p.snap.Load().Inbound {
		for _, ip := range in.Ports {
			if ip.Authz == nil {
				continue
			}
			if _, ap, err := net.SplitHostPort(ip.App); err == nil && ap == strconv.Itoa(int(port)) {
				return true
			}
		}
	}
	return false
}
