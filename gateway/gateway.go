package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/topology"
)

// Defaults of Config.
const (
	DefaultHandshakeTimeout  = 5 * time.Second
	DefaultIdleTimeout       = 10 * time.Minute
	DefaultDialTimeout       = 2 * time.Second
	DefaultMaxConns          = 65536
	DefaultMaxConnsPerSource = 4096
	DefaultMaxHelloBytes     = 16 << 10
	DefaultDrainTimeout      = 10 * time.Second

	// DefaultNamespace and DefaultServiceAccount are the identity a
	// gateway claims to the control plane: the ServiceAccount deploy/ runs
	// it as. DefaultWorkload is the workload it claims, as the local
	// demo's bootstrap token names it.
	DefaultNamespace      = "fedmesh-system"
	DefaultServiceAccount = "fedmesh-gateway"
	DefaultWorkload       = "gateway"
)

// Config configures a Gateway. The tuning fields apply to every gateway;
// the control plane and address fields make one that Run drives as a
// whole process (the fedmesh gateway command). Without them a gateway is
// fed with SetRoutes and serves listeners given to Serve.
type Config struct {
	// Cluster is the cluster this gateway serves, for logs and as the
	// xDS node's cluster. Required with ControlPlane.
	Cluster string

	// ControlPlane is host:port of the cluster's xDS server, from which
	// the gateway takes its routes (role gateway). Empty: no xDS client;
	// routes come only through SetRoutes.
	ControlPlane string
	// ControlPlaneID is the SPIFFE ID the control plane must present
	// (spiffe://TD/fedmesh/cluster/CLUSTER). Required with ControlPlane
	// unless InsecureControlPlane.
	ControlPlaneID spiffeid.ID
	// RootCAs verify the control plane's certificate chain (the
	// federation's root bundle). Required with ControlPlane unless
	// InsecureControlPlane.
	RootCAs *x509.CertPool
	// InsecureControlPlane talks plaintext xDS (tests only).
	InsecureControlPlane bool
	// Token proves the gateway's identity to the control plane, sent as
	// node metadata fedmesh.token: a bootstrap token from `fedmesh ca
	// bootstrap-token` in local mode, a projected ServiceAccount token
	// (audience fedmesh) in Kubernetes mode.
	Token string
	// TokenFile, when set, holds the token instead and is read again at
	// every connection to the control plane, so a projected token that
	// the kubelet renews is what a reconnect presents.
	TokenFile string
	// Namespace and ServiceAccount are the identity the gateway claims;
	// the control plane compares them with what Token proves and accepts
	// the role only for its configured gateway identities. Defaults
	// DefaultNamespace and DefaultServiceAccount.
	Namespace      string
	ServiceAccount string
	// Workload is the workload the gateway claims: it must equal the one
	// Token names, when it names one (a bootstrap token's workload, the
	// pod a projected token is bound to). Default DefaultWorkload.
	Workload string
	// Locality is the gateway's region and zone, announced to the control
	// plane; its Cluster field is ignored (Cluster is used).
	Locality topology.Locality
	// NodeID is the xDS node id; empty means gateway~LISTENADDR~CLUSTER.
	NodeID string
	// XDSBackoff is the first reconnect delay to the control plane; zero
	// means the xDS client's default.
	XDSBackoff time.Duration
	// DataDir, when set, is where the gateway keeps its last good
	// configuration (the accepted listeners, endpoints and SDS secrets,
	// 0600 files in DataDir/xds), to route from when it starts while no
	// control plane answers. Empty keeps the configuration in memory
	// only.
	DataDir string
	// RestoreAfter is how long a start waits for the control plane before
	// routing from the persisted configuration; zero means
	// xdsclient.DefaultRestoreAfter.
	RestoreAfter time.Duration

	// ListenAddr is host:port for mTLS passthrough traffic, bound by New
	// and served by Run. Empty: New binds nothing and Run cannot be used;
	// hand listeners to Serve instead. Required with ControlPlane or
	// AdminAddr.
	ListenAddr string
	// AdminAddr is host:port of the admin listener (AdminHandler), bound
	// by New and served by Run; empty disables it.
	AdminAddr string
	// Gatherer serves the metrics on the admin listener. Nil means the
	// Registerer given to New when it is also a Gatherer (a
	// *prometheus.Registry is); otherwise the page is empty.
	Gatherer prometheus.Gatherer
	// DrainTimeout is how long Run, once its context ends, lets spliced
	// connections finish before it closes them. Zero means
	// DefaultDrainTimeout.
	DrainTimeout time.Duration

	// HandshakeTimeout bounds reading the ClientHello.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a spliced connection that carried no byte in
	// either direction for this long.
	IdleTimeout time.Duration
	// DialTimeout bounds dialing an endpoint; on failure the next healthy
	// endpoint is tried once.
	DialTimeout time.Duration
	// MaxConns is the most connections open at once; more are refused.
	MaxConns int
	// MaxConnsPerSource is the most connections open at once from one
	// source IP address.
	MaxConnsPerSource int
	// MaxHelloBytes caps the ClientHello read.
	MaxHelloBytes int
	// SourceClusters maps source IP addresses to cluster names, for the
	// per-source-cluster metrics (the client's identity is inside TLS,
	// which the gateway does not open). Addresses the control plane
	// sends (the listener's source_clusters metadata, see
	// SetSourceClusters) are consulted after these. Unknown sources count
	// as "unknown" (docs/telemetry.md).
	SourceClusters map[netip.Addr]string
	// Logger receives the gateway's logs (and its xDS client's); nil
	// discards them.
	Logger *slog.Logger
	// Dial dials endpoints. Default a net.Dialer with DialTimeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (c Config) withDefaults() Config {
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerSource <= 0 {
		c.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if c.MaxHelloBytes <= 0 {
		c.MaxHelloBytes = DefaultMaxHelloBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.ServiceAccount == "" {
		c.ServiceAccount = DefaultServiceAccount
	}
	if c.Workload == "" {
		c.Workload = DefaultWorkload
	}
	if c.Dial == nil {
		d := &net.Dialer{Timeout: c.DialTimeout}
		c.Dial = d.DialContext
	}
	return c
}

// Refusal reasons, the reason label of fedmesh_gateway_refused_total.
const (
	ReasonNotTLS          = "not_tls"
	ReasonMalformed       = "malformed_hello"
	ReasonTooLarge        = "hello_too_large"
	ReasonNoSNI           = "no_sni"
	ReasonBadSNI          = "bad_sni"
	ReasonNotExported     = "not_exported"
	ReasonNoHealthy       = "no_healthy_endpoint"
	ReasonDialFailed      = "dial_failed"
	ReasonHandshakeTimout = "handshake_timeout"
	ReasonMaxConns        = "max_connections"
	ReasonMaxPerSource    = "max_connections_per_source"
	ReasonDraining        = "draining"
	// ReasonNoIdentity: a probe of the gateway itself while the gateway
	// has no SVID yet.
	ReasonNoIdentity = "no_identity"
)

// Endpoint is one local endpoint of an exported service port.
type Endpoint struct {
	// Address is host:port of the endpoint's inbound (mTLS) listener.
	Address string `json:"address"`
	// Healthy is false for endpoints the control plane marks unhealthy;
	// they get no traffic.
	Healthy bool `json:"healthy"`
	// Priority orders endpoints: the lowest priority with a healthy
	// endpoint gets the traffic.
	Priority int `json:"priority"`
}

// Route makes one exported service port reachable.
type Route struct {
	Service   naming.ServicePort `json:"service"`
	Endpoints []Endpoint         `json:"endpoints"`
}

// host is an endpoint with its live request count.
type host struct {
	Endpoint
	active atomic.Int64
}

// route is a Route ready for picking: the healthy hosts of the best
// priority that has any.
type route struct {
	Route
	sni     string
	healthy []*host
}

// routeTable is immutable once published.
type routeTable struct {
	bySNI map[string]*route
}

// Gateway is an east-west gateway. Its methods are safe for concurrent use.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	routes  atomic.Pointer[routeTable]
	// sources maps peer addresses to federation members, from xDS.
	sources atomic.Pointer[sourceTable]
	// ident is the gateway's SVID and trust bundle from SDS; nil before.
	ident atomic.Pointer[gwIdentity]
	// hosts keeps each endpoint's request counter across route updates.
	hostsMu sync.Mutex // guards hosts and configured
	hosts   map[string]*host
	// configured is set by the first successful SetRoutes.
	configured bool

	mu        sync.Mutex // guards the following
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	perSource map[netip.Addr]int
	draining  bool
	wg        sync.WaitGroup // one per connection handler

	// stopped ends when Shutdown begins; it cuts short the accept loop's
	// backoff after a temporary error.
	stopped context.Context
	stop    context.CancelFunc

	// Set by New for Run (nil when not configured).
	xds     *xdsclient.Client
	ln      net.Listener
	adminLn net.Listener
	gather  prometheus.Gatherer
	running atomic.Bool
}

// New validates cfg and returns a gateway with no routes: it refuses
// everything until SetRoutes or the control plane gives it some. Its
// metrics, and its xDS client's, are registered with reg (nil: not
// registered). With ControlPlane it builds the xDS client; with ListenAddr
// and AdminAddr it binds those listeners, ready for Run. On error every
// listener is closed.
func New(cfg Config, reg prometheus.Registerer) (_ *Gateway, err error) {
	switch {
	case cfg.ControlPlane != "" && cfg.Cluster == "":
		return nil, errors.New("gateway: cluster is required with a control plane")
	case cfg.ControlPlane != "" && !cfg.InsecureControlPlane && (cfg.RootCAs == nil || cfg.ControlPlaneID.IsZero()):
		return nil, errors.New("gateway: root CAs and control plane ID are required for TLS to the control plane")
	case cfg.ControlPlane == "" && (cfg.InsecureControlPlane || cfg.RootCAs != nil || !cfg.ControlPlaneID.IsZero()):
		return nil, errors.New("gateway: control plane settings given without a control plane address")
	case cfg.ListenAddr == "" && (cfg.ControlPlane != "" || cfg.AdminAddr != ""):
		return nil, errors.New("gateway: listen address is required with a control plane or admin address")
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "gateway", "cluster", cfg.Cluster),
		metrics:   m,
		hosts:     map[string]*host{},
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
		perSource: map[netip.Addr]int{},
	}
	g.stopped, g.stop = context.WithCancel(context.Background())
	g.routes.Store(&routeTable{bySNI: map[string]*route{}})
	defer func() {
		if err != nil {
			g.closeFixed()
		}
	}()
	if cfg.ControlPlane != "" {
		if g.xds, err = g.newXDSClient(reg); err != nil {
			return nil, err
		}
	}
	g.gather = cfg.Gatherer
	if g.gather == nil {
		if rg, ok := reg.(prometheus.Gatherer); ok {
			g.gather = rg
		} else {
			g.gather = prometheus.NewRegistry()
		}
	}
	if cfg.ListenAddr != "" {
		if g.ln, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			return nil, fmt.Errorf("gateway: listener: %w", err)
		}
	}
	if cfg.AdminAddr != "" {
		if g.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			return nil, fmt.Errorf("gateway: admin listener: %w", err)
		}
	}
	return g, nil
}

// SetRoutes replaces the routing table. Routes are validated first: a
// route with a bad service port or endpoint address rejects the whole
// update with an error, and the previous table stays.
func (g *Gateway) SetRoutes(routes []Route) error {
	t := &routeTable{bySNI: make(map[string]*route, len(routes))}
	g.hostsMu.Lock()
	defer g.hostsMu.Unlock()
	seen := map[string]*host{}
	for _, r := range routes {
		sni := r.Service.SNI()
		if _, err := naming.ParseSNI(sni); err != nil {
			g.metrics.configRejected.Inc()
			return fmt.Errorf("route %s: %w", r.Service, err)
		}
		if _, dup := t.bySNI[sni]; dup {
			g.metrics.configRejected.Inc()
			return fmt.Errorf("route %s: duplicate", r.Service)
		}
		rt := &route{Route: r, sni: sni}
		best := -1
		for _, ep := range r.Endpoints {
			if _, err := netip.ParseAddrPort(ep.Address); err != nil {
				g.metrics.configRejected.Inc()
				return fmt.Errorf("route %s: endpoint %q: %w", r.Service, ep.Address, err)
			}
			if ep.Healthy && (best < 0 || ep.Priority < best) {
				best = ep.Priority
			}
		}
		for _, ep := range r.Endpoints {
			if !ep.Healthy || ep.Priority != best {
				continue
			}
			h := g.hosts[ep.Address]
			if h == nil {
				h = &host{}
			}
			h.Endpoint = ep
			seen[ep.Address] = h
			rt.healthy = append(rt.healthy, h)
		}
		t.bySNI[sni] = rt
	}
	g.hosts = seen
	g.configured = true
	g.routes.Store(t)
	g.metrics.routes.Set(float64(len(t.bySNI)))
	g.log.Info("routes updated", "services", len(t.bySNI))
	return nil
}

// Routes returns the current routing table, sorted by server name.
func (g *Gateway) Routes() []Route {
	t := g.routes.Load()
	out := make([]Route, 0, len(t.bySNI))
	for _, r := range t.bySNI {
		out = append(out, r.Route)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service.SNI() < out[j].Service.SNI() })
	return out
}

// pick chooses a healthy host by least-request with two random choices.
func (r *route) pick(exclude *host) *host {
	n := len(r.healthy)
	switch {
	case n == 0:
		return nil
	case n == 1:
		if r.healthy[0] == exclude {
			return nil
		}
		return r.healthy[0]
	}
	a, b := r.healthy[rand.IntN(n)], r.healthy[rand.IntN(n)]
	if a == exclude {
		a = b
	}
	if b == exclude {
		b = a
	}
	if a == exclude {
		for _, h := range r.healthy {
			if h != exclude {
				return h
			}
		}
		return nil
	}
	if b.active.Load() < a.active.Load() {
		return b
	}
	return a
}

// Serve accepts connections on ln until ln is closed or Shutdown is
// called. It returns nil after Shutdown.
func (g *Gateway) Serve(ln net.Listener) error {
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		ln.Close()
		return nil
	}
	g.listeners[ln] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.listeners, ln)
		g.mu.Unlock()
	}()
	// A temporary Accept error (out of file descriptors, say) is retried
	// after a growing delay, which Shutdown cuts short.
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(5*time.Millisecond),
		backoff.WithMaxInterval(time.Second),
		backoff.WithMaxElapsedTime(0),
	)
	failing := false
	for {
		c, err := ln.Accept()
		if err != nil {
			if g.Draining() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return err
			}
			log := g.log.Debug
			if !failing {
				bo.Reset()
				failing = true
				log = g.log.Warn
			}
			d := bo.NextBackOff()
			log("accept failed; retrying", "err", err, "retry_in", d)
			t := time.NewTimer(d)
			select {
			case <-g.stopped.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		failing = false
		if !g.admit(c) {
			continue
		}
		go g.handle(c)
	}
}

// admit applies the connection limits; it closes and counts a refused
// connection. An admitted connection is tracked until release.
func (g *Gateway) admit(c net.Conn) bool {
	src := sourceAddr(c)
	g.mu.Lock()
	var reason string
	switch {
	case g.draining:
		reason = ReasonDraining
	case len(g.conns) >= g.cfg.MaxConns:
		reason = ReasonMaxConns
	case g.perSource[src] >= g.cfg.MaxConnsPerSource:
		reason = ReasonMaxPerSource
	default:
		g.conns[c] = struct{}{}
		g.perSource[src]++
		g.wg.Add(1)
	}
	g.mu.Unlock()
	if reason != "" {
		g.refuse(c, reason, "", "", nil)
		return false
	}
	g.metrics.active.Inc()
	return true
}

func (g *Gateway) release(c net.Conn) {
	src := sourceAddr(c)
	g.mu.Lock()
	delete(g.conns, c)
	if g.perSource[src]--; g.perSource[src] <= 0 {
		delete(g.perSource, src)
	}
	g.mu.Unlock()
	g.metrics.active.Dec()
	g.wg.Done()
}

func sourceAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	return netip.Addr{}
}

func (g *Gateway) sourceCluster(c net.Conn) string {
	a := sourceAddr(c)
	if name, ok := g.cfg.SourceClusters[a]; ok {
		return name
	}
	if t := g.sources.Load(); t != nil {
		if name := t.lookup(a); name != "" {
			return name
		}
	}
	return UnknownSource
}

// setSources replaces the table of federation members' addresses
// the control plane sent (cluster name -> addresses or CIDR prefixes).
func (g *Gateway) setSources(t sourceTable) { g.sources.Store(&t) }

// refuse closes c and counts the refusal.
func (g *Gateway) refuse(c net.Conn, reason, service, source string, err error) {
	if source == "" {
		source = g.sourceCluster(c)
	}
	g.metrics.refused.WithLabelValues(reason, service, source).Inc()
	g.log.Debug("connection refused", "reason", reason, "service", service, "source", c.RemoteAddr().String(), "err", err)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // reset: the client sees the refusal at once
	}
	c.Close()
}

func helloReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrNotTLS):
		return ReasonNotTLS
	case errors.Is(err, ErrNoSNI):
		return ReasonNoSNI
	case errors.Is(err, ErrHelloTooLarge):
		return ReasonTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return ReasonHandshakeTimout
	}
	return ReasonMalformed
}

// handle serves one admitted connection.
func (g *Gateway) handle(c net.Conn) {
	defer g.release(c)
	source := g.sourceCluster(c)
	c.SetReadDeadline(time.Now().Add(g.cfg.HandshakeTimeout))
	hello, err := ReadClientHello(c, g.cfg.MaxHelloBytes)
	if err != nil {
		g.refuse(c, helloReason(err), "", source, err)
		return
	}
	c.SetReadDeadline(time.Time{})
	if hello.ServerName == naming.GatewayProbeSNI {
		g.answerSelfProbe(c, hello, source)
		return
	}
	sp, err := naming.ParseSNI(hello.ServerName)
	if err != nil {
		g.refuse(c, ReasonBadSNI, "", source, err)
		return
	}
	rt := g.routes.Load().bySNI[sp.SNI()]
	if rt == nil {
		g.refuse(c, ReasonNotExported, "", source, fmt.Errorf("%s is not exported by this cluster", sp))
		return
	}
	service := sp.String()
	// The mesh label is the service's host, as the sidecars' is.
	destHost := sp.Host()

	var up net.Conn
	var h *host
	for attempt := 0; attempt < 2; attempt++ {
		h = rt.pick(h)
		if h == nil {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.DialTimeout)
		up, err = g.cfg.Dial(ctx, "tcp", h.Address)
		cancel()
		if err == nil {
			break
		}
		g.metrics.dialErrors.WithLabelValues(service).Inc()
		g.log.Debug("dial failed", "endpoint", h.Address, "service", service, "err", err)
	}
	if up == nil {
		reason := ReasonNoHealthy
		if err != nil {
			reason = ReasonDialFailed
		}
		g.refuse(c, reason, service, source, err)
		return
	}
	h.active.Add(1)
	defer h.active.Add(-1)
	probe := slices.Contains(hello.ALPN, naming.ProbeALPN)
	if probe {
		g.metrics.probes.WithLabelValues(source).Inc()
	} else {
		g.metrics.accepted.WithLabelValues(destHost, source).Inc()
	}

	if _, err := up.Write(hello.Raw); err != nil {
		up.Close()
		c.Close()
		return
	}
	// Bytes are counted as they flow, so a long-lived connection (the
	// sidecars pool theirs) shows its traffic before it ends; probes
	// are not traffic.
	var inBytes, outBytes prometheus.Counter
	if !probe {
		inBytes = g.metrics.bytes.WithLabelValues("in", destHost, source)
		outBytes = g.metrics.bytes.WithLabelValues("out", destHost, source)
		inBytes.Add(float64(len(hello.Raw)))
	}
	g.splice(c, up, inBytes, outBytes)
}

// Shutdown stops accepting (closing every listener), then waits for the
// spliced connections to finish until ctx is done, and closes those still
// open. It is idempotent.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.draining = true
	g.stop()
	for ln := range g.listeners {
		ln.Close()
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	n := len(g.conns)
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	<-done
	g.log.Warn("drain deadline passed; closed open connections", "connections", n)
	return ctx.Err()
}

// Draining reports whether Shutdown has begun.
func (g *Gateway) Draining() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.draining
}
