package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

// inboundFast is the fast path's state of one inbound mTLS connection:
// who the caller is, found once.
type inboundFast struct {
	p   *Proxy
	sni string
	// principal is the caller's SPIFFE ID, idErr why it has none (the
	// request goes to net/http, which refuses it).
	principal string
	idErr     error
	namespace string
	pi        *peerInfo
	remote    string
	// idLine is the identity header line sent to the app.
	idLine []byte
}

// serveInboundFast serves the HTTP/1.1 requests of an inbound mTLS
// connection on the fast path; requests it leaves to net/http go to
// httpConns with their connection.
func (p *Proxy) serveInboundFast(ctx context.Context, conn *tls.Conn, cs tls.ConnectionState, httpConns *chanListener) {
	in := &inboundFast{p: p, sni: cs.ServerName, pi: &peerInfo{p: p, cs: cs}, remote: conn.RemoteAddr().String()}
	id, err := identity.PeerID(cs)
	in.idErr = err
	if err == nil {
		in.principal = id.String()
		in.namespace = namespaceOf(in.principal)
		in.idLine = []byte(ClientIDHeader + ": " + in.principal + "\r\n")
	}
	p.serveFast(ctx, conn, "inbound", in.serve, func(c net.Conn) {
		if !httpConns.deliver(c) {
			c.Close()
		}
	})
}

// serve serves one inbound request on the fast path, or leaves it to
// net/http: what inboundHandler does, without authorization and rate
// limits (ports with those are net/http's).
func (in *inboundFast) serve(fc *fastConn) outcome {
	p := in.p
	req := &fc.req
	port, ok := p.inboundPort(in.sni)
	switch {
	case in.idErr != nil:
		req.fallback = fallbackIdentity
	case !ok:
		req.fallback = fallbackUnknownSNI
	case port.Authz != nil && port.Authz.Request != nil, port.RateLimit != nil:
		req.fallback = fallbackPolicy
	case appSpeaksH2C(port.Protocol, string(req.contentType)):
		req.fallback = fallbackH2C
	}
	if req.fallback != "" {
		return fallBack
	}
	fc.call = call{}
	ri := &fc.call.info
	fc.begin(ri, reporterDestination, p.cfg.Now())
	ri.sourcePrincipal, ri.sourceNamespace, ri.sourceCluster = in.principal, in.namespace, in.pi.peerCluster()
	ri.upstreamCluster, ri.upstreamHost = port.SNI, port.App
	series := p.inboundSeries(port.Port)
	if series != nil {
		ri.destService = series.host
	}
	for _, h := range req.headers {
		if isClientIDHeader(h.name) {
			p.m.spoofed.Inc()
			p.log.Debug("removed a client identity header set by the caller", "caller", in.principal)
			break
		}
	}
	sp := fc.startTrace(p.cfg.Tracer, func(t *tracing.Tracer, h http.Header) tracing.Span {
		return t.StartServer(h, ri.method, ri.path, port.Port.String())
	})
	if sp.Recording() {
		sp.SetSource(ri.sourceCluster, in.principal, in.remote)
	}
	ri.traceID = sp.TraceID()
	start := p.cfg.Now()
	out := in.forward(fc, port.App)
	series.request(ri.sourceCluster, p.cfg.Cluster, fc.status(), p.cfg.Now().Sub(start).Seconds())
	sp.End(fc.status(), fc.errHeader)
	fc.end(ri, p.cfg.Now())
	p.self(ri)
	p.report(ri, series)
	return out
}

// isClientIDHeader reports whether name is ClientIDHeader.
func isClientIDHeader(name []byte) bool { return eqFold(name, "x-fedmesh-client-id") }

// forward sends the current request, with the caller's identity, to the
// app at addr over a pooled HTTP/1.1 connection and relays its answer.
func (in *inboundFast) forward(fc *fastConn, addr string) outcome {
	p := in.p
	ri := &fc.call.info
	replayable, err := fc.readBody(p.cfg.MaxRetryBody)
	if err != nil {
		fc.code = http.StatusBadRequest
		return closeNow
	}
	pl := p.appPool(addr)
	for {
		uc, _ := pl.get(time.Now(), 0)
		if uc == nil {
			c, err := net.DialTimeout("tcp", addr, appDialTimeout)
			if err != nil {
				pl.release()
				ri.setFlag(flagConnectFailure)
				p.m.errors.WithLabelValues("inbound", "", "app_unreachable").Inc()
				p.log.Debug("app unreachable", "err", err)
				fc.writeError(http.StatusBadGateway, "", "fedmesh: app unreachable")
				if fc.bodyUnread() {
					return closeNow
				}
				return next
			}
			uc = newUpConn(c, pl)
		}
		err := fc.writeRequest(uc, fc.req.target, in.idLine, isClientIDHeader)
		if err == nil {
			err = fc.awaitResponse(uc, time.Time{})
		}
		if err != nil {
			uc.Close()
			var ce *errClientBody
			switch {
			case err == errClientGone || errors.As(err, &ce):
				ri.setFlag(flagDownstreamGone)
				fc.code = 499
				return closeNow
			case uc.reused && replayable && uc.br.Buffered() == 0 && !errors.Is(err, os.ErrDeadlineExceeded):
				// The app closed the pooled connection while it was
				// idle: a new one.
				continue
			}
			ri.setFlag(flagConnectFailure)
			p.m.errors.WithLabelValues("inbound", "", "app_unreachable").Inc()
			p.log.Debug("app unreachable", "err", err)
			fc.closeAfter = true
			fc.writeError(http.StatusBadGateway, "", "fedmesh: app unreachable")
			return closeNow
		}
		reusable, err := fc.relayResponse(uc, nil)
		if reusable && err == nil {
			pl.put(uc, time.Now())
		} else {
			uc.Close()
		}
		if err != nil {
			return closeNow
		}
		return next
	}
}

// appDialTimeout bounds a connection to the app.
const appDialTimeout = 5 * time.Second
