package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

// serveFastHTTP serves an outbound HTTP listener with the fast path in
// front of srv, which gets the connections the fast path hands over. It
// closes l and returns once ctx ends and every connection is closed.
func (p *Proxy) serveFastHTTP(ctx context.Context, l net.Listener, o *outbound, srv *http.Server) error {
	handed := newChanListener(l.Addr())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(handed)
	}()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var conns sync.WaitGroup
	for {
		conn, err := l.Accept()
		if err != nil {
			break
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			p.serveFast(ctx, conn, "outbound", o.serveFast, func(c net.Conn) {
				if !handed.deliver(c) {
					c.Close()
				}
			})
		}()
	}
	l.Close()
	conns.Wait()
	_ = srv.Close()
	handed.Close()
	wg.Wait()
	return nil
}

// serveFast serves one outbound request on the fast path, or leaves it
// to net/http (fallBack with the reason in fc.req.fallback).
func (o *outbound) serveFast(fc *fastConn) outcome {
	p := o.p
	req := &fc.req
	if isGRPCContentType(string(req.contentType)) {
		req.fallback = fallbackGRPC
		return fallBack
	}
	var dst netip.AddrPort
	cc, captured := fc.conn.(*capturedConn)
	if captured {
		dst = cc.dst
	}
	svc, _, _ := o.routeAuthority(req.authority, dst, captured)
	switch {
	case svc == nil:
		req.fallback = fallbackNoService
		return fallBack
	case svc.Routes != nil:
		req.fallback = fallbackRoutes
		return fallBack
	}
	u := p.upstream(svc.Cluster)
	if u == nil || !u.fast.ok.Load() {
		req.fallback = fallbackUpstream
		return fallBack
	}
	fc.call = call{u: u, svc: svc, retry: &svc.Retry}
	c := &fc.call
	fc.begin(&c.info, reporterSource, p.cfg.Now())
	out := o.sendFast(fc, c, svc, u)
	ri := &c.info
	fc.end(ri, p.cfg.Now())
	p.self(ri)
	ri.destService, ri.destNamespace, ri.upstreamCluster = u.host, svc.Port.Namespace, svc.Cluster
	if ri.destCluster == "" {
		ri.destCluster = c.dest
	}
	p.report(ri, u.series)
	return out
}

// sendFast is send and RoundTrip for the fast path: it forwards the
// current request to an endpoint of u, retrying as the service's policy
// says, and relays the response.
func (o *outbound) sendFast(fc *fastConn, c *call, svc *config.Service, u *upstream) outcome {
	p := o.p
	if n := u.active.Add(1); svc.Limits.MaxRequests > 0 && n > int64(svc.Limits.MaxRequests) {
		u.active.Add(-1)
		u.series.overflowed("max_requests")
		c.info.setFlag(flagOverflow)
		fc.writeError(http.StatusServiceUnavailable, "X-Fedmesh-Overloaded: max_requests", "fedmesh: too many requests to "+u.name)
		return o.afterError(fc)
	}
	defer u.active.Add(-1)
	var deadline time.Time
	if svc.Timeout > 0 {
		deadline = time.Now().Add(svc.Timeout)
	}
	replayable, err := fc.readBody(p.cfg.MaxRetryBody)
	if err != nil {
		u.series.failed("client_body")
		fc.closeAfter = true
		fc.writeError(http.StatusBadRequest, "", "fedmesh: reading request body: "+err.Error())
		return closeNow
	}
	c.span = fc.startTrace(p.cfg.Tracer, func(t *tracing.Tracer, h http.Header) tracing.Span {
		return t.StartClient(h, c.info.method, c.info.path, u.name)
	})
	c.info.traceID = c.span.TraceID()
	start := p.cfg.Now()
	out := o.roundTripFast(fc, c, svc, u, deadline, replayable)
	u.series.request(p.cfg.Cluster, c.dest, fc.status(), p.cfg.Now().Sub(start).Seconds())
	c.span.End(fc.status(), fc.errHeader)
	return out
}

// afterError is what follows a response the sidecar made itself: the
// connection goes on when the request's body has been read or there was
// none.
func (o *outbound) afterError(fc *fastConn) outcome {
	if fc.bodyUnread() {
		return closeNow
	}
	return next
}

// upstreamTarget returns the request target to send upstream: an
// absolute-form target loses its scheme and authority (origin form, as
// net/http's transport writes it).
func upstreamTarget(t []byte) []byte {
	if len(t) > 0 && t[0] == '/' {
		return t
	}
	rest := t[len("http://"):]
	for i, ch := range rest {
		if ch == '/' {
			return rest[i:]
		}
		if ch == '?' {
			return append([]byte{'/'}, rest[i:]...)
		}
	}
	return []byte{'/'}
}

// roundTripFast sends the current request to endpoints of u until one
// answers in a way the retry policy keeps, and relays that answer (the
// fast path's RoundTrip, with the same decisions).
func (o *outbound) roundTripFast(fc *fastConn, c *call, svc *config.Service, u *upstream, deadline time.Time, replayable bool) outcome {
	p := o.p
	rp := c.retry
	target := upstreamTarget(fc.req.target)
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
		h, err := u.bal.Pick(tried...)
		if err != nil {
			return o.failFast(fc, c, errNoHealthy)
		}
		t := u.targetOf(h, svc)
		traceAttempt(c, h, svc)
		tried = append(tried, h)
		if n := u.pending.Add(1); svc.Limits.MaxPending > 0 && n > int64(svc.Limits.MaxPending) {
			u.pending.Add(-1)
			u.series.overflowed("max_pending")
			return o.failFast(fc, c, errOverflow)
		}
		tryDeadline := deadline
		if rp.PerTryTimeout > 0 {
			if d := time.Now().Add(rp.PerTryTimeout); tryDeadline.IsZero() || d.Before(tryDeadline) {
				tryDeadline = d
			}
		}
		h.Begin()
		start := p.cfg.Now()
		pl, uc, err := o.attempt(fc, u, t, svc, target, tryDeadline, replayable)
		u.pending.Add(-1)
		if retryHeld {
			u.bal.RetryDone()
			retryHeld = false
		}
		lat := p.cfg.Now().Sub(start)
		timedOut := errors.Is(err, os.ErrDeadlineExceeded)
		overall := timedOut && !deadline.IsZero() && !time.Now().Before(deadline)
		var retryReason string
		var ce *errClientBody
		switch {
		case errors.Is(err, errOverflow):
			h.End(balancer.Result{Kind: balancer.Canceled})
			return o.failFast(fc, c, err)
		case errors.Is(err, errClientGone) || errors.As(err, &ce) || overall:
			h.End(balancer.Result{Kind: balancer.Canceled})
			if overall {
				err = fmt.Errorf("request timeout %v: %w", svc.Timeout, context.DeadlineExceeded)
			}
			return o.failFast(fc, c, err)
		case timedOut:
			// A per-try timeout, as RoundTrip.
			h.End(balancer.Result{Kind: balancer.Status5xx, Latency: lat})
			err = fmt.Errorf("per-try timeout %v: %w", rp.PerTryTimeout, context.DeadlineExceeded)
			if !(rp.On5xx || rp.OnGatewayError) || !replayable || !p.reserveRetry(u, rp, retries) {
				return o.failFast(fc, c, err)
			}
			retryReason = "per_try_timeout"
		case err != nil:
			h.End(balancer.Result{Kind: balancer.ConnectFailure})
			var de *errDial
			sent := !errors.As(err, &de)
			if !rp.OnConnectFailure || (sent && !replayable) {
				return o.failFast(fc, c, err)
			}
			p.log.Debug("attempt failed", "service", u.name, "endpoint", t.addr, "err", err)
			if !p.reserveRetry(u, rp, retries) {
				return o.failFast(fc, c, err)
			}
			retryReason = "connect_failure"
			if sent {
				retryReason = "reset"
			}
		case fc.resp.status >= 500:
			h.End(balancer.Result{Kind: balancer.Status5xx, Latency: lat})
			if !rp.Retriable(fc.resp.status) || !replayable || !p.reserveRetry(u, rp, retries) {
				c.answered(t, svc, h)
				if retries > 0 && rp.Retriable(fc.resp.status) {
					c.info.setFlag(flagRetriesExceeded)
				}
				return o.relay(fc, pl, uc)
			}
			retryReason = "status_5xx"
			fc.drain(pl, uc)
		case fc.resp.status < 500 && rp.Retriable(fc.resp.status) && replayable && p.reserveRetry(u, rp, retries):
			h.End(balancer.Result{Kind: balancer.OK, Latency: lat})
			retryReason = "status_4xx"
			fc.drain(pl, uc)
		default:
			c.answered(t, svc, h)
			h.End(balancer.Result{Kind: balancer.OK, Latency: lat})
			return o.relay(fc, pl, uc)
		}
		retryHeld = true
		retries++
		c.info.retries = retries
		u.series.retried(retryReason)
		c.span.Retry(retryReason)
		if rp.BackOffBase > 0 {
			_ = backOff(context.Background(), rp, retries)
		}
	}
}

// attempt sends the current request to t on a pooled or new connection
// and reads the response head into fc.resp. A pooled connection that
// fails before any response byte (its peer closed it while idle) is
// replaced by a new one, once, when the request can be sent again.
func (o *outbound) attempt(fc *fastConn, u *upstream, t target, svc *config.Service, target []byte, deadline time.Time, replayable bool) (*h1Pool, *upConn, error) {
	for {
		pl, uc, err := u.fastConn(t, svc, time.Now())
		if err != nil {
			return pl, nil, err
		}
		err = fc.writeRequest(uc, target, nil, nil)
		if err == nil {
			err = fc.awaitResponse(uc, deadline)
		}
		if err == nil {
			return pl, uc, nil
		}
		uc.Close()
		var ce *errClientBody
		if uc.reused && replayable && !errors.As(err, &ce) && err != errClientGone && !errors.Is(err, os.ErrDeadlineExceeded) && uc.br.Buffered() == 0 {
			continue
		}
		return pl, nil, err
	}
}

// drain reads a response the client will not get so that its connection
// can carry another request (up to 64 KiB, as drain), else closes it.
func (fc *fastConn) drain(pl *h1Pool, uc *upConn) {
	resp := &fc.resp
	if resp.chunked || resp.contentLength < 0 || resp.contentLength > 64<<10 || resp.close {
		uc.Close()
		return
	}
	if _, err := uc.br.Discard(int(resp.contentLength)); err != nil {
		uc.Close()
		return
	}
	pl.put(uc, time.Now())
}

// relay sends the response on uc to the client and returns uc to its
// pool when it can carry another request.
func (o *outbound) relay(fc *fastConn, pl *h1Pool, uc *upConn) outcome {
	reusable, err := fc.relayResponse(uc, nil)
	if reusable && err == nil {
		_ = uc.SetReadDeadline(time.Time{})
		pl.put(uc, time.Now())
	} else {
		uc.Close()
	}
	if err != nil {
		return closeNow
	}
	return next
}

// failFast answers a request that got no response, as outbound.fail.
func (o *outbound) failFast(fc *fastConn, c *call, err error) outcome {
	var de *errDial
	code, reason := http.StatusBadGateway, "upstream_reset"
	switch {
	case errors.Is(err, errNoHealthy):
		code, reason = http.StatusServiceUnavailable, "no_healthy"
	case errors.Is(err, errOverflow):
		code, reason = http.StatusServiceUnavailable, "overflow"
	case errors.Is(err, context.DeadlineExceeded):
		code, reason = http.StatusGatewayTimeout, "timeout"
	case errors.Is(err, errClientGone):
		code, reason = 499, "client_canceled"
	case errors.As(err, &de):
		code, reason = http.StatusServiceUnavailable, "connect"
	}
	var ce *errClientBody
	if errors.As(err, &ce) {
		reason = "client_body"
		code = http.StatusBadRequest
	}
	c.u.series.failed(reason)
	c.info.setFlag(flagOf(reason, c.info.retries))
	o.p.log.Debug("outbound request failed", "service", c.u.name, "reason", reason, "err", err)
	if reason == "client_canceled" || reason == "client_body" {
		fc.code = code
		return closeNow
	}
	fc.errHeader = reason
	fc.writeError(code, "X-Fedmesh-Error: "+reason, "fedmesh: "+reason+": "+err.Error())
	if code == http.StatusBadRequest {
		return closeNow
	}
	return o.afterError(fc)
}
