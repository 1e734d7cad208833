package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/config"
)

// dialTCP opens an opaque mTLS connection to an endpoint of svc, trying
// other endpoints when a connect fails (nothing has been sent yet). It
// counts the connection against the service's max_connections; the caller
// must call pipeTCP, or undo it.
func (p *Proxy) dialTCP(ctx context.Context, u *upstream, svc *config.Service) (net.Conn, *balancer.Host, error) {
	if n := u.conns.Add(1); svc.Limits.MaxConnections > 0 && n > int64(svc.Limits.MaxConnections) {
		u.conns.Add(-1)
		u.series.overflowed("max_connections")
		return nil, nil, errOverflow
	}
	var tried []*balancer.Host
	var lastErr error
	for attempt := 0; attempt <= svc.Retry.Retries+2; attempt++ {
		h, err := u.bal.Pick(tried...)
		if err != nil {
			lastErr = errNoHealthy
			break
		}
		tried = append(tried, h)
		t := u.targetOf(h, svc)
		h.Begin()
		conn, err := u.dialTLS(ctx, t, ALPNTCP, svc.ConnectTimeout)
		if err == nil {
			return conn, h, nil
		}
		h.End(balancer.Result{Kind: balancer.ConnectFailure})
		lastErr = err
		if ctx.Err() != nil {
			break
		}
		u.series.retried("connect_failure")
	}
	u.conns.Add(-1)
	reason := "connect"
	if errors.Is(lastErr, errNoHealthy) {
		reason = "no_healthy"
	}
	u.series.failed(reason)
	return nil, nil, fmt.Errorf("%s: %w", u.name, lastErr)
}

// pipeTCP copies bytes both ways until both directions end or stop
// closes, then closes both connections and ends the host's request.
func (p *Proxy) pipeTCP(client, up net.Conn, u *upstream, h *balancer.Host, stop <-chan struct{}) {
	ep := h.Endpoint()
	g := u.series.tcpOpened(ep.Cluster)
	tc, ok := u.series.tcpOpen(p.cfg.Workload, p.cfg.Namespace, p.cfg.Cluster, "", u.svc.Load().Port.Namespace, ep.Cluster)
	sent, received := splice(client, up, stop)
	if ok {
		tc.sent.Add(float64(sent))
		tc.received.Add(float64(received))
	}
	if g != nil {
		g.Dec()
	}
	u.conns.Add(-1)
	h.End(balancer.Result{Kind: balancer.OK})
}

// serveTCPConn forwards one accepted connection to the opaque TCP
// service svc until either side hangs up, ctx ends (its listener stops)
// or the proxy closes.
func (p *Proxy) serveTCPConn(ctx context.Context, conn net.Conn, svc *config.Service) {
	u := p.upstream(svc.Cluster)
	if u == nil {
		conn.Close()
		return
	}
	ctx, cancel := p.untilClosed(ctx)
	defer cancel()
	up, h, err := p.dialTCP(ctx, u, svc)
	if err != nil {
		p.log.Debug("tcp connect failed", "service", u.name, "err", err)
		conn.Close()
		return
	}
	p.pipeTCP(conn, up, u, h, ctx.Done())
}

// untilClosed returns a context that ends with ctx or when the proxy
// closes, whichever comes first. The caller must call cancel.
func (p *Proxy) untilClosed(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-p.closed:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

type closeWriter interface{ CloseWrite() error }

// splice copies a->b and b->a; when one direction ends it half-closes the
// other side's write, and when both end (or stop closes) it closes both.
// It returns the bytes copied each way.
func splice(a, b net.Conn, stop <-chan struct{}) (aToB, bToA int64) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn, n *int64) {
		defer wg.Done()
		*n, _ = io.Copy(dst, src)
		if cw, ok := dst.(closeWriter); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	go cp(a, b, &bToA)
	done := make(chan struct{})
	go func() {
		defer close(done)
		wg.Wait()
	}()
	go cp(b, a, &aToB)
	select {
	case <-done:
	case <-stop:
	}
	a.Close()
	b.Close()
	<-done
	return aToB, bToA
}
