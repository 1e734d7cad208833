package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/config"
)

// ALPN protocols between sidecars.
const (
	// ALPNH2 carries HTTP/2 and gRPC requests, multiplexed.
	ALPNH2 = "h2"
	// ALPNHTTP1 carries HTTP/1.x requests that are not gRPC, one at a
	// time per connection (see pool).
	ALPNHTTP1 = "http/1.1"
	// ALPNTCP carries one opaque TCP connection.
	ALPNTCP = "fedmesh-tcp"
)

// upstream is the proxy's state for one service port: its configuration,
// its balancer, its connection pools and its circuit breaker counters.
type upstream struct {
	p      *Proxy
	name   string // namespace/name:port
	host   string // NAME.NS.svc.clusterset.local, the destination_service
	series *serviceSeries
	svc    atomic.Pointer[config.Service]
	bal    *balancer.Balancer

	active  atomic.Int64 // requests in flight
	pending atomic.Int64 // requests without response headers yet
	conns   atomic.Int64 // open opaque TCP connections

	// fast is the HTTP/1.1 fast path's state (fast1_pool.go).
	fast fastUpstream

	mu    sync.Mutex // guards the following
	pools map[poolKey]*http.Transport
}

// poolKey identifies one connection pool: one endpoint reached with one
// server name, expecting one identity set, over HTTP/2 or HTTP/1.1.
type poolKey struct {
	addr, sni, identities string
	http1                 bool
}

func newUpstream(p *Proxy, svc *config.Service) (*upstream, error) {
	u := &upstream{p: p, name: upstreamName(svc), host: svc.Port.Host(), pools: map[poolKey]*http.Transport{}}
	u.series = newServiceSeries(p.m, "outbound", u.name, u.host)
	bal, err := p.newBalancer(svc, p.cfg.BalancerMetrics)
	if err != nil {
		return nil, err
	}
	u.bal = bal
	if err := u.update(svc); err != nil {
		return nil, err
	}
	return u, nil
}

// upstreamName is the series and balancer name of a service port or a
// subset of one: namespace/name:port[/subset].
func upstreamName(svc *config.Service) string {
	if svc.Subset != "" {
		return svc.Port.String() + "/" + svc.Subset
	}
	return svc.Port.String()
}

// newBalancer returns an empty balancer for svc recording into m (nil
// records nothing).
func (p *Proxy) newBalancer(svc *config.Service, m *balancer.Metrics) (*balancer.Balancer, error) {
	policy := balancer.LeastRequest
	switch svc.LB {
	case config.RoundRobin:
		policy = balancer.RoundRobin
	case config.RingHash:
		policy = balancer.RingHash
	}
	return balancer.New(balancer.Config{
		Name:           upstreamName(svc),
		Policy:         policy,
		MinRingSize:    svc.MinRingSize,
		MaxRingSize:    svc.MaxRingSize,
		PanicThreshold: int(svc.PanicThreshold),
		Outlier: balancer.OutlierConfig{
			Consecutive5xx:   orDisabled(svc.Outlier.Consecutive5xx),
			BaseEjectionTime: svc.Outlier.BaseEjectionTime,
			Interval:         svc.Outlier.Interval,
			// The control plane's percentage caps ejections for 5xx;
			// failed connects keep the balancer's default (100%).
			MaxEjectionPercent: svc.Outlier.MaxEjectionPercent,
		},
		RetryBudget: balancer.RetryBudgetConfig{MinRetryConcurrency: max(svc.Limits.MaxRetries, 1)},
		Logger:      p.log,
		Metrics:     m,
		Now:         p.cfg.Now,
	})
}

func orDisabled(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// update installs a new configuration of the same service port.
func (u *upstream) update(svc *config.Service) error {
	if err := u.bal.Update(balancerEndpoints(svc)); err != nil {
		return err
	}
	u.svc.Store(svc)
	u.fast.update(svc)
	// Drop pools of endpoints that are gone.
	keep := map[string]bool{}
	for _, e := range svc.Endpoints {
		keep[e.Address] = true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, t := range u.pools {
		if !keep[k.addr] {
			t.CloseIdleConnections()
			delete(u.pools, k)
		}
	}
	return nil
}

// balancerEndpoints returns the endpoints of svc as its balancer takes
// them.
func balancerEndpoints(svc *config.Service) []balancer.Endpoint {
	eps := make([]balancer.Endpoint, 0, len(svc.Endpoints))
	for _, e := range svc.Endpoints {
		be := balancer.Endpoint{
			Address:  e.Address,
			Cluster:  e.Cluster,
			Identity: e.Identity,
			Priority: int(e.Priority),
			Weight:   e.Weight,
			Healthy:  e.Healthy,
			Workload: e.Workload,
		}
		if e.Remote {
			be.SNI = e.SNI
		}
		if !e.Healthy {
			be.HealthReason = "unhealthy in the control plane's view"
		}
		eps = append(eps, be)
	}
	return eps
}

func (u *upstream) close() {
	u.fast.close()
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, t := range u.pools {
		t.CloseIdleConnections()
		delete(u.pools, k)
	}
}

// target is where one attempt goes.
type target struct {
	addr, sni string
	// identity is the one SPIFFE ID the endpoint must present; when
	// empty, any of identities (the service's) will do.
	identity   string
	identities []string
	// remote: the endpoint is in another cluster, reached through its
	// gateway.
	remote bool
}

func (u *upstream) targetOf(h *balancer.Host, svc *config.Service) target {
	ep := h.Endpoint()
	t := target{addr: ep.Address, sni: ep.SNI, identity: ep.Identity, identities: svc.Identities, remote: ep.SNI != ""}
	if t.sni == "" {
		t.sni = svc.SNI
	}
	return t
}

// expect returns the SPIFFE IDs the server may present.
func (t target) expect() []string {
	if t.identity != "" {
		return []string{t.identity}
	}
	return t.identities
}

// errDial marks a failure to connect or to complete the TLS handshake:
// nothing was sent, so a retry is always safe.
type errDial struct{ err error }

func (e *errDial) Error() string { return "connect: " + e.err.Error() }
func (e *errDial) Unwrap() error { return e.err }

// dialTLS connects to t with the sidecar's certificate, sending t.sni and
// accepting only a server whose SPIFFE ID is one of t.expect().
func (u *upstream) dialTLS(ctx context.Context, t target, alpn string, timeout time.Duration) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := u.p.dialer(t.addr)
	if alpn == ALPNHTTP1 {
		// HTTP/1.1 has no pings: the kernel watches the connection
		// instead, so that a partition is noticed as quickly as
		// HTTP/2's pings notice it (see pool). Keepalives probe an
		// idle connection; the user timeout ends one whose request
		// goes unacknowledged.
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 2}
		d.Control = controlUserTimeout(3 * time.Second)
	}
	raw, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, &errDial{err}
	}
	cfg := identity.ClientConfig(u.p, u.p, expectIDs(t.expect()))
	cfg.ServerName = t.sni
	cfg.NextProtos = []string{alpn}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &errDial{fmt.Errorf("tls handshake with %s (%s): %w", t.addr, t.sni, err)}
	}
	if got := conn.ConnectionState().NegotiatedProtocol; got != alpn {
		conn.Close()
		return nil, &errDial{fmt.Errorf("%s negotiated ALPN %q, want %q", t.addr, got, alpn)}
	}
	return conn, nil
}

func expectIDs(ids []string) identity.Authorizer {
	if len(ids) == 0 {
		return func(id spiffeid.ID) error {
			return fmt.Errorf("%s: the control plane announced no identity for this service", id)
		}
	}
	parsed := make([]spiffeid.ID, 0, len(ids))
	for _, s := range ids {
		if id, err := spiffeid.FromString(s); err == nil {
			parsed = append(parsed, id)
		}
	}
	return identity.AuthorizeIDs(parsed...)
}

// pool returns the connection pool for t: HTTP/2 (ALPN h2), or with
// http1 HTTP/1.1 (ALPN http/1.1).
//
// HTTP/1.x requests that are not gRPC travel between sidecars of one
// cluster as HTTP/1.1 over pooled mTLS connections, one request at a
// time per connection: Go's HTTP/1.1 client and server write a
// request's or a response's headers and a small body as one TLS record
// and one syscall, where its HTTP/2 stack writes HEADERS and DATA
// separately and hands every request to more goroutines
// (bench/sidecar.md has the figures that decided it). gRPC, requests
// that came in over HTTP/2, and every request to another cluster keep
// HTTP/2: through a gateway one multiplexed connection per endpoint
// costs one TLS handshake across the WAN instead of one per request in
// flight, and its pings notice a partition before a request waits on it
// (test/e2e TestPartition).
func (u *upstream) pool(t target, svc *config.Service, http1 bool) *http.Transport {
	http1 = http1 && !t.remote
	ids := t.identity
	if ids == "" {
		ids = strings.Join(t.identities, ",")
	}
	k := poolKey{addr: t.addr, sni: t.sni, identities: ids, http1: http1}
	u.mu.Lock()
	defer u.mu.Unlock()
	if tr := u.pools[k]; tr != nil {
		return tr
	}
	timeout := svc.ConnectTimeout
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return u.dialTLS(ctx, t, ALPNH2, timeout)
		},
		ForceAttemptHTTP2: true,
		// Ping a connection that has been silent for a second and close
		// it when the ping goes unanswered: a connection blackholed by
		// a partition is dropped within seconds, its requests retried
		// elsewhere, and never reused once the partition heals.
		HTTP2:               &http.HTTP2Config{SendPingTimeout: time.Second, PingTimeout: 2 * time.Second},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if http1 {
		// One connection per request in flight; keep as many idle
		// as a busy caller reuses. TCP keepalives (see dialTLS) stand
		// for HTTP/2's pings.
		protos := new(http.Protocols)
		protos.SetHTTP1(true)
		tr.Protocols = protos
		tr.ForceAttemptHTTP2 = false
		tr.HTTP2 = nil
		tr.MaxIdleConnsPerHost = maxIdleHTTP1
		tr.DialTLSContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return u.dialTLS(ctx, t, ALPNHTTP1, timeout)
		}
	}
	if svc.Limits.MaxConnections > 0 {
		tr.MaxConnsPerHost = svc.Limits.MaxConnections
	}
	if svc.IdleTimeout > 0 {
		tr.IdleConnTimeout = svc.IdleTimeout
	}
	u.pools[k] = tr
	return tr
}

// maxIdleHTTP1 is how many idle HTTP/1.1 connections a pool keeps per
// endpoint.
const maxIdleHTTP1 = 256

// errNoHealthy and friends decide the status the client sees.
var (
	errNoHealthy = errors.New("no healthy upstream")
	errOverflow  = errors.New("upstream overflow")
)
