package proxy

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fedmesh/fedmesh/sidecar/config"
)

// upConn is one pooled HTTP/1.1 connection of the fast path to another
// sidecar (mTLS) or to the app (plain), with its buffers.
type upConn struct {
	net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	head []byte
	// idleSince is when it went back to its pool.
	idleSince time.Time
	// reused: it carried a request before, so a failure before any
	// response byte may be the peer closing it while idle.
	reused bool
	// pool counts it among its open connections until it is closed.
	pool   *h1Pool
	closed bool
}

func newUpConn(c net.Conn, pl *h1Pool) *upConn {
	return &upConn{Conn: c, br: bufio.NewReaderSize(c, 8<<10), bw: bufio.NewWriterSize(c, 8<<10), pool: pl}
}

// Close closes the connection and frees its place in its pool; closing
// it again does nothing. Called by its one user at a time.
func (uc *upConn) Close() error {
	if uc.closed {
		return nil
	}
	uc.closed = true
	err := uc.Conn.Close()
	uc.pool.release()
	return err
}

// h1Pool keeps the idle connections to one destination, most recently
// used first.
type h1Pool struct {
	maxIdle     int
	idleTimeout time.Duration

	mu sync.Mutex // guards the following
	// maxOpen bounds the connections open at once (the service's
	// max_connections, net/http's MaxConnsPerHost); 0: no bound.
	maxOpen int
	open    int
	idle    []*upConn
	// freed, when not nil, is closed when a connection comes back or
	// closes, for requests waiting for one.
	freed  chan struct{}
	closed bool
}

// get returns an idle connection, or nil and a place for a new one the
// caller dials (and gives back with release when the dial fails). With
// maxOpen connections open and none idle it waits for one until wait
// has passed, then fails with errOverflow.
func (pl *h1Pool) get(now time.Time, wait time.Duration) (*upConn, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		pl.mu.Lock()
		for len(pl.idle) > 0 {
			uc := pl.idle[len(pl.idle)-1]
			pl.idle[len(pl.idle)-1] = nil
			pl.idle = pl.idle[:len(pl.idle)-1]
			if now.Sub(uc.idleSince) < pl.idleTimeout {
				pl.mu.Unlock()
				uc.reused = true
				return uc, nil
			}
			pl.mu.Unlock()
			uc.Close()
			pl.mu.Lock()
		}
		if pl.maxOpen == 0 || pl.open < pl.maxOpen {
			pl.open++
			pl.mu.Unlock()
			return nil, nil
		}
		if pl.freed == nil {
			pl.freed = make(chan struct{})
		}
		freed := pl.freed
		pl.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-freed:
		case <-timer.C:
			return nil, errOverflow
		}
		now = time.Now()
	}
}

// release frees the place of a connection that closed or was never
// opened.
func (pl *h1Pool) release() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.open--
	pl.notifyLocked()
}

func (pl *h1Pool) notifyLocked() {
	if pl.freed != nil {
		close(pl.freed)
		pl.freed = nil
	}
}

// put returns a connection that can carry another request.
func (pl *h1Pool) put(uc *upConn, now time.Time) {
	pl.mu.Lock()
	if pl.closed || len(pl.idle) >= pl.maxIdle {
		pl.mu.Unlock()
		uc.Close()
		return
	}
	uc.idleSince = now
	pl.idle = append(pl.idle, uc)
	pl.notifyLocked()
	pl.mu.Unlock()
}

// close closes the idle connections; connections in use are closed as
// they come back.
func (pl *h1Pool) close() {
	pl.mu.Lock()
	pl.closed = true
	idle := pl.idle
	pl.idle = nil
	pl.mu.Unlock()
	for _, uc := range idle {
		uc.Close()
	}
}

// fastUpstream is an upstream's state for the fast path: whether the
// fast path may serve it, and its connection pools.
type fastUpstream struct {
	// ok: the service is plain HTTP with every endpoint in this
	// cluster (HTTP/2 through gateways is net/http's).
	ok atomic.Bool

	mu    sync.Mutex // guards the following
	pools map[poolKey]*h1Pool
}

// update follows a new configuration of the service (upstream.update).
func (f *fastUpstream) update(svc *config.Service) {
	ok := svc.Protocol == config.HTTP
	keep := make(map[string]bool, len(svc.Endpoints))
	for _, e := range svc.Endpoints {
		ok = ok && !e.Remote
		keep[e.Address] = true
	}
	f.ok.Store(ok)
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, pl := range f.pools {
		if !keep[k.addr] {
			pl.close()
			delete(f.pools, k)
			continue
		}
		pl.mu.Lock()
		pl.maxOpen = svc.Limits.MaxConnections
		pl.mu.Unlock()
	}
}

// close closes every pool (upstream.close).
func (f *fastUpstream) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, pl := range f.pools {
		pl.close()
		delete(f.pools, k)
	}
}

// pool returns the pool of t.
func (f *fastUpstream) pool(t target, svc *config.Service) *h1Pool {
	ids := t.identity
	if ids == "" {
		if len(t.identities) == 1 {
			ids = t.identities[0]
		} else {
			ids = strings.Join(t.identities, ",")
		}
	}
	k := poolKey{addr: t.addr, sni: t.sni, identities: ids, http1: true}
	f.mu.Lock()
	defer f.mu.Unlock()
	if pl := f.pools[k]; pl != nil {
		return pl
	}
	if f.pools == nil {
		f.pools = map[poolKey]*h1Pool{}
	}
	pl := &h1Pool{maxIdle: maxIdleHTTP1, idleTimeout: 90 * time.Second, maxOpen: svc.Limits.MaxConnections}
	if svc.IdleTimeout > 0 {
		pl.idleTimeout = svc.IdleTimeout
	}
	f.pools[k] = pl
	return pl
}

// conn returns a pooled connection to t, or a new one (mTLS, ALPN
// http/1.1); a failure to connect is an *errDial.
func (u *upstream) fastConn(t target, svc *config.Service, now time.Time) (*h1Pool, *upConn, error) {
	pl := u.fast.pool(t, svc)
	timeout := svc.ConnectTimeout
	if timeout <= 0 {
		timeout = config.DefaultConnectTimeout
	}
	uc, err := pl.get(now, timeout)
	if err != nil {
		u.series.overflowed("max_connections")
		return pl, nil, err
	}
	if uc != nil {
		return pl, uc, nil
	}
	c, err := u.dialTLS(context.Background(), t, ALPNHTTP1, timeout)
	if err != nil {
		pl.release()
		return pl, nil, err
	}
	return pl, newUpConn(c, pl), nil
}

// appPool returns the fast path's pool of connections to an app address.
func (p *Proxy) appPool(addr string) *h1Pool {
	if pl, ok := p.appPools.Load(addr); ok {
		return pl.(*h1Pool)
	}
	pl, _ := p.appPools.LoadOrStore(addr, &h1Pool{maxIdle: 64, idleTimeout: 90 * time.Second})
	return pl.(*h1Pool)
}

// closeAppPools closes the connections to apps (Proxy.Close).
func (p *Proxy) closeAppPools() {
	p.appPools.Range(func(k, v any) bool {
		v.(*h1Pool).close()
		p.appPools.Delete(k)
		return true
	})
}
