package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/portset"
	"github.com/fedmesh/fedmesh/sidecar/audit"
	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

// ClientIDHeader carries the caller's verified SPIFFE ID to the app. The
// inbound side always sets it and removes any copy the caller sent.
const ClientIDHeader = "X-Fedmesh-Client-Id"

// Config configures a Proxy.
type Config struct {
	// Cluster is the fedmesh cluster the sidecar runs in, the
	// source_cluster of its outbound metrics. Required.
	Cluster string
	// Workload, Namespace and Principal (its SPIFFE ID) name the
	// sidecar's own workload: the source_* labels of its outbound
	// requests and the destination_* labels of its inbound ones. Empty
	// ones are reported as "unknown".
	Workload, Namespace, Principal string
	// AccessLog receives a line per request when the access log is on;
	// nil writes none, whatever the configuration says. Its owner runs
	// it.
	AccessLog *AccessLog
	// AccessLogMode is which requests are logged while the node's
	// configuration (Snapshot.Telemetry.AccessLog) does not turn the
	// access log on; the zero value logs none.
	AccessLogMode AccessLogMode
	// OutboundBindAddr, when valid, is the source address of connections
	// to other sidecars and to gateways: the workload's own address, so
	// that the peer sees who calls (local mode gives each workload its
	// own loopback address, but an unbound socket would send from
	// 127.0.0.1). Destinations it cannot reach (a loopback source and a
	// non-loopback destination, or the other way round) are dialled
	// unbound. The zero value binds nothing.
	OutboundBindAddr netip.Addr
	// Logger receives proxy logs; per-request messages are at debug level.
	// Nil discards.
	Logger *slog.Logger
	// Metrics are the proxy's collectors; nil creates unregistered ones.
	Metrics *Metrics
	// BalancerMetrics are shared by the balancers of every service; nil
	// records nothing.
	BalancerMetrics *balancer.Metrics
	// MaxRetryBody is the largest request body buffered so that the
	// request can be retried; larger or streaming bodies are never
	// retried once sent. Zero means 64 KiB.
	MaxRetryBody int64
	// HandshakeTimeout bounds the inbound TLS handshake; zero means 10s.
	HandshakeTimeout time.Duration
	// Now tells the time; default time.Now.
	Now func() time.Time
	// Audit receives an audit record for every request or connection an
	// authorization policy denies and every AUDIT match; it must not
	// block. Nil records nothing (decisions are still counted).
	Audit audit.Recorder
	// Tracer opens a client span per outbound and a server span per
	// inbound HTTP request and propagates trace context; nil traces
	// nothing and passes trace headers through as they are.
	Tracer *tracing.Tracer
	// OriginalDst, when set, turns transparent capture on: it reads the
	// original destination of a connection the pod's capture rules
	// redirected to a listener (origdst.Get), and fails for one that
	// was not. ServeOutbound then meshes or passes through by it, and
	// ServeInbound relays allowed plaintext to it. Nil: no capture.
	OriginalDst func(net.Conn) (netip.AddrPort, error)
	// InboundPlaintext says which ports take plaintext inbound
	// connections (detected by their first bytes not being a TLS
	// handshake), relayed to their original destination; the zero value
	// takes none (STRICT). It needs OriginalDst.
	InboundPlaintext PlaintextPolicy
	// SniffTimeout bounds the wait for a redirected connection's first
	// request head (capture.go) and an inbound connection's first bytes;
	// zero means DefaultSniffTimeout.
	SniffTimeout time.Duration
	// OpaquePorts are the ports of redirected connections where no
	// protocol is detected, for protocols whose server speaks first
	// (SMTP, MySQL) or whose client's first bytes say nothing the mesh
	// needs (portset.DefaultOpaque, Linkerd's opaque ports). Outbound, a
	// connection to one, unless to a service's address, is passed
	// through at once, without waiting for a request head naming a
	// service. Inbound, a connection to one the workload takes plaintext
	// on and no mesh service uses is relayed at once, without waiting
	// for a TLS handshake. Empty: detection on every port. It needs
	// OriginalDst.
	OpaquePorts portset.Set
	// NetHTTPOnly serves every HTTP request with net/http. By default
	// plain HTTP/1.1 requests, outbound and inbound, take the fast
	// path (fast1.go), and net/http serves the others.
	NetHTTPOnly bool
}

// Proxy is the sidecar's data plane: it forwards outbound HTTP and TCP to
// services, picking endpoints with a balancer per service and retrying
// failed attempts elsewhere, and terminates inbound mutual TLS in front of
// the app. Create it with New, feed it configuration with Update, and
// serve listeners with ServeOutboundHTTP, ServePort and ServeInbound.
type Proxy struct {
	cfg Config
	log *slog.Logger
	m   *Metrics

	snap atomic.Pointer[config.Snapshot]

	// limiter holds the inbound rate limits' buckets and counters; it
	// outlives configurations, so buckets keep their tokens across
	// updates.
	limiter *ratelimit.Limiter

	mu        sync.Mutex // guards the following
	upstreams map[string]*upstream
	cur       atomic.Pointer[map[string]*upstream] // by cluster name

	// mirrors bounds the mirrored requests in flight (a token per
	// request); mirrorCtx ends them when the proxy closes, mirrorWG
	// waits for them.
	mirrors      chan struct{}
	mirrorCtx    context.Context
	mirrorCancel context.CancelFunc
	mirrorWG     sync.WaitGroup

	// errorLog receives net/http's own messages (client gone mid-body,
	// TLS handshake errors), at debug level.
	errorLog *stdlog.Logger

	// inbound holds the series of every inbound port of the
	// configuration (naming.ServicePort -> *serviceSeries); written under
	// mu, read without it.
	inbound sync.Map

	// appPools are the fast path's connections to apps, by address
	// (string -> *h1Pool).
	appPools sync.Map

	appH1   *http.Transport
	appH2C  *http.Transport
	buffers *bufferPool
	wg      sync.WaitGroup // connection goroutines
	closed  chan struct{}
	once    sync.Once
}

var (
	_ identity.CertSource   = (*Proxy)(nil)
	_ identity.BundleSource = (*Proxy)(nil)
)

// New validates cfg and returns a Proxy with an empty configuration.
func New(cfg Config) (*Proxy, error) {
	if cfg.Cluster == "" {
		return nil, errors.New("proxy: cluster is required")
	}
	if cfg.MaxRetryBody == 0 {
		cfg.MaxRetryBody = 64 << 10
	}
	if cfg.MaxRetryBody < 0 {
		return nil, errors.New("proxy: max retry body is negative")
	}
	if cfg.AccessLogMode < AccessLogOff || cfg.AccessLogMode > AccessLogErrors {
		return nil, fmt.Errorf("proxy: access log mode %d is not one of off, all, errors", cfg.AccessLogMode)
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SniffTimeout == 0 {
		cfg.SniffTimeout = DefaultSniffTimeout
	}
	if cfg.SniffTimeout < 0 {
		return nil, errors.New("proxy: sniff timeout is negative")
	}
	if (cfg.InboundPlaintext.All || len(cfg.InboundPlaintext.Ports) > 0) && cfg.OriginalDst == nil {
		return nil, errors.New("proxy: inbound plaintext needs capture (OriginalDst), which tells where to relay it")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := cfg.Metrics
	if m == nil {
		var err error
		if m, err = NewMetrics(nil); err != nil {
			return nil, err
		}
	}
	p := &Proxy{
		cfg:       cfg,
		log:       log.With("component", "proxy"),
		m:         m,
		upstreams: map[string]*upstream{},
		closed:    make(chan struct{}),
		buffers:   newBufferPool(),
		mirrors:   make(chan struct{}, maxMirrors),
		limiter:   ratelimit.New(ratelimit.Config{Now: cfg.Now}),
	}
	m.rateLimits.add(p.limiter)
	p.mirrorCtx, p.mirrorCancel = context.WithCancel(context.Background())
	p.errorLog = slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)
	p.appH1 = &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	p.appH2C = &http.Transport{Protocols: h2c, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	empty := map[string]*upstream{}
	p.cur.Store(&empty)
	p.snap.Store(config.NewBuilder(spiffeIDZero).Current())
	return p, nil
}

// Update installs a new configuration. Services whose configuration did
// not change keep their balancer state and connection pools; services
// that are gone are closed, and their metric series (the proxy's and
// their balancer's, outbound, and the inbound ones of inbound ports that
// are gone) are deleted. It is safe to call while traffic flows.
//
// A service's upstream (its balancer, pools and series) is made on its
// first request (upstream), not here: a sidecar that knows 1,000
// services and calls a few holds the state of a few. Update checks the
// endpoints of every service all the same, so a bad list is reported
// whether or not the service is in use.
func (p *Proxy) Update(snap *config.Snapshot) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, svc := range snap.ClusterList() {
		if err := balancer.Check(balancerEndpoints(svc)); err != nil {
			errs = append(errs, err)
		}
	}
	next := make(map[string]*upstream, len(p.upstreams))
	for sp, u := range p.upstreams {
		svc, ok := snap.Cluster(sp)
		if !ok || !sameBalancer(u.svc.Load(), svc) {
			// Gone, or a new load balancing policy, which needs a new
			// balancer: closed below, made anew on first use. The
			// series of a service that stays stay.
			continue
		}
		if u.svc.Load().Version != svc.Version {
			if err := u.update(svc); err != nil {
				errs = append(errs, err)
			}
		} else {
			// The same service in the new snapshot: hold the new
			// snapshot's copy, so that the old snapshot can be freed.
			u.svc.Store(svc)
		}
		next[sp] = u
	}
	var names, hosts map[string]bool // the series snap's services write
	for sp, u := range p.upstreams {
		if next[sp] != nil {
			continue
		}
		u.close()
		if names == nil {
			names, hosts = seriesOf(snap)
		}
		if !names[u.name] {
			u.series.delete(!hosts[u.host])
			p.cfg.BalancerMetrics.Delete(u.name)
		}
	}
	p.updateInboundSeriesLocked(snap)
	p.declareLimits(snap)
	if err := p.configureTracing(snap); err != nil {
		errs = append(errs, err)
	}
	p.upstreams = next
	p.cur.Store(&next)
	p.snap.Store(snap)
	return errors.Join(errs...)
}

// seriesOf returns the series names the services of snap write, and
// the hosts of their mesh series.
func seriesOf(snap *config.Snapshot) (names, hosts map[string]bool) {
	names, hosts = map[string]bool{}, map[string]bool{}
	for _, svc := range snap.ClusterList() {
		names[upstreamName(svc)] = true
		hosts[svc.Port.Host()] = true
	}
	return names, hosts
}

// sameBalancer reports whether a balancer built for a serves b.
func sameBalancer(a, b *config.Service) bool {
	return a.LB == b.LB && a.MinRingSize == b.MinRingSize && a.MaxRingSize == b.MaxRingSize
}

// QuotaDemand returns what this sidecar's shares of clusterset quotas
// admitted and refused since it started, by quota ID
// ("NAMESPACE/POLICY/QUOTA"), sorted; counters only grow. Safe to call
// from any goroutine.
func (p *Proxy) QuotaDemand() []ratelimit.QuotaDemand { return p.limiter.QuotaDemand() }

// Snapshot returns the configuration in use.
func (p *Proxy) Snapshot() *config.Snapshot { return p.snap.Load() }

// Balancers returns the balancer of every service, for admin pages. A
// service without requests yet has no upstream (see Update): its
// balancer here is a fresh one of its endpoints, recording no metrics
// and kept nowhere.
func (p *Proxy) Balancers() map[naming.ServicePort]*balancer.Balancer {
	cur := *p.cur.Load()
	out := map[naming.ServicePort]*balancer.Balancer{}
	for _, svc := range p.snap.Load().ServiceList() {
		if u := cur[svc.Cluster]; u != nil {
			out[svc.Port] = u.bal
			continue
		}
		b, err := p.newBalancer(svc, nil)
		if err != nil {
			continue
		}
		if err := b.Update(balancerEndpoints(svc)); err != nil {
			continue
		}
		out[svc.Port] = b
	}
	return out
}

// upstream returns the upstream of a cluster (a service port or a subset
// of one), nil when it is not configured. The first call for a cluster
// makes its upstream.
func (p *Proxy) upstream(cluster string) *upstream {
	if u := (*p.cur.Load())[cluster]; u != nil {
		return u
	}
	if _, ok := p.snap.Load().Cluster(cluster); !ok {
		return nil // not configured: no need for the lock
	}
	return p.makeUpstream(cluster)
}

// makeUpstream makes the upstream of a cluster of the configuration in
// use, once: concurrent first requests wait on p.mu and find the one the
// first made. It returns nil when the cluster is not configured, its
// endpoints are refused (Update reported it), or the proxy is closed.
func (p *Proxy) makeUpstream(cluster string) *upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.upstreams[cluster]; u != nil {
		return u
	}
	select {
	case <-p.closed:
		return nil
	default:
	}
	// p.snap changes under p.mu only, so it is the configuration
	// p.upstreams belongs to.
	svc, ok := p.snap.Load().Cluster(cluster)
	if !ok {
		return nil
	}
	u, err := newUpstream(p, svc)
	if err != nil {
		p.log.Debug("upstream refused", "cluster", cluster, "err", err)
		return nil
	}
	// Readers hold the map in p.cur without a lock: copy it.
	next := make(map[string]*upstream, len(p.upstreams)+1)
	maps.Copy(next, p.upstreams)
	next[cluster] = u
	p.upstreams = next
	p.cur.Store(&next)
	return u
}

// Certificate returns the workload certificate from SDS, for new
// handshakes; a renewed certificate is used from the next handshake on.
func (p *Proxy) Certificate() (*tls.Certificate, error) {
	c := p.snap.Load().Certificate
	if c == nil {
		return nil, identity.ErrNoLocalCertificate
	}
	return c, nil
}

// Bundle returns the trust bundle from SDS.
func (p *Proxy) Bundle() *x509bundle.Bundle {
	b := p.snap.Load().Bundle
	if b == nil {
		return x509bundle.New(trustDomainNone)
	}
	return b
}

// Close stops the proxy's connection goroutines' upstream pools and waits
// for hijacked connections (TCP, CONNECT) to end. Listeners are closed by
// their owner. Close is idempotent.
func (p *Proxy) Close() {
	p.once.Do(func() {
		close(p.closed)
		p.mirrorCancel()
		p.mu.Lock()
		for _, u := range p.upstreams {
			u.close()
		}
		p.mu.Unlock()
		p.appH1.CloseIdleConnections()
		p.appH2C.CloseIdleConnections()
		p.closeAppPools()
	})
	p.wg.Wait()
	p.mirrorWG.Wait()
}

var (
	spiffeIDZero    = mustTD("invalid.fedmesh")
	trustDomainNone = spiffeIDZero
)
