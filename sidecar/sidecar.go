package sidecar

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/admin"
	"github.com/fedmesh/fedmesh/sidecar/audit"
	"github.com/fedmesh/fedmesh/sidecar/authz"
	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/dns"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
	"github.com/fedmesh/fedmesh/topology"
)

// Config configures a Sidecar.
type Config struct {
	// ControlPlane is host:port of the cluster's xDS server. Required.
	ControlPlane string
	// ControlPlaneID is the SPIFFE ID the control plane must present
	// (spiffe://TD/fedmesh/cluster/CLUSTER); the zero ID with
	// InsecureControlPlane only.
	ControlPlaneID spiffeid.ID
	// RootBundle verifies the control plane before SDS has delivered
	// the trust bundle (from the workload directory). Required unless
	// InsecureControlPlane.
	RootBundle *x509bundle.Bundle
	// InsecureControlPlane talks plaintext xDS (tests of the protocol).
	InsecureControlPlane bool
	// TrustDomain is the federation's trust domain. Required.
	TrustDomain spiffeid.TrustDomain
	// NodeID is the xDS node id; empty means sidecar~OUTBOUNDIP~WORKLOAD.NS.
	NodeID string
	// Token is the workload bootstrap token, sent as node metadata
	// fedmesh.token.
	Token string
	// TokenFile, when set, holds the token instead and is read again at
	// every connection to the control plane, so a token renewed on disk
	// (a projected ServiceAccount token) is what a reconnect presents.
	TokenFile string
	// Cluster is the fedmesh cluster the workload runs in. Required.
	Cluster string
	// Locality is the workload's region and zone (Cluster is ignored).
	Locality topology.Locality
	// Namespace and ServiceAccount make the workload's identity.
	// Namespace is required; ServiceAccount empty means "default".
	Namespace      string
	ServiceAccount string
	// Workload is the workload's name, which selects its inbound side.
	Workload string
	// AppPorts is fedmesh.app_ports: PORTNAME=APPPORT[,...].
	AppPorts string
	// Labels are the workload's labels, fedmesh.labels: KEY=VALUE[,...]
	// (naming.ParseLabels checks them), which a ResiliencePolicy's
	// failoverPriority compares with its endpoints' labels.
	Labels string

	// OutboundAddr is the HTTP proxy listener, host:port (15001 by
	// default). Required. Whoever reaches it speaks with the workload's
	// identity, so it belongs on a loopback address only the workload
	// reaches (127.0.0.1 in a pod, the workload's own 127.0.N.M in local
	// mode); New logs a warning for any other address.
	OutboundAddr string
	// ServiceIP is the address the sidecar binds one listener per
	// imported service port on, and that its DNS answers for service
	// names. Empty disables service-port listeners. These listeners proxy
	// with the workload's identity too: a loopback address, as
	// OutboundAddr.
	ServiceIP string
	// OutboundBindAddr, when valid, is the source address of the
	// sidecar's connections to other sidecars and gateways: the
	// workload's own address, so that gateways and server sidecars see
	// the caller's (proxy.Config.OutboundBindAddr). The zero value binds
	// nothing.
	OutboundBindAddr netip.Addr
	// DNSAddr is the DNS listener (UDP and TCP), host:port; empty
	// disables. It answers the workload only: a loopback address.
	DNSAddr string
	// DNSAddrIPv6 is a second DNS listener (UDP and TCP), [IPv6]:port,
	// for a pod whose capture rules redirect its IPv6 DNS queries, which
	// arrive on ::1 ([::1]:15053); empty for none. It needs DNSAddr. On a
	// host without IPv6 the sidecar runs without it (logged once).
	DNSAddrIPv6 string
	// DNSClusterSetIP makes DNS answer a service's ClusterSetIP (the IP
	// literal among its virtual host's domains) when it has one, and
	// ServiceIP otherwise. For pods whose outbound connections are
	// captured (Kubernetes), where the ClusterSetIP is what the app dials
	// and the sidecar matches; false (local mode) answers ServiceIP only.
	DNSClusterSetIP bool
	// AdminAddr is the admin listener, host:port; empty disables. It
	// shows the configuration and endpoints: a loopback address.
	AdminAddr string
	// ReadyAddr, when set, is a listener serving GET /ready and GET
	// /stats/prometheus alone, for probes and Prometheus outside the
	// workload (on the pod address), which cannot reach the loopback
	// admin listener.
	ReadyAddr string
	// InboundAddr, when set, is bound for the inbound mTLS listener
	// instead of the address of the inbound listener from LDS (tests use
	// port 0 and announce the bound port).
	InboundAddr string

	// Logger receives logs; nil discards.
	Logger *slog.Logger
	// Registerer registers every metric of the sidecar; Gatherer serves
	// them on /stats/prometheus. Both nil means a private registry.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// XDSBackoff is the first reconnect delay to the control plane
	// (zero: the client's default).
	XDSBackoff time.Duration
	// DataDir, when set, keeps the last good configuration, certificate,
	// key and bundle on disk, to serve from after a start when no control
	// plane answers within RestoreAfter (zero: the default); persisted.go.
	DataDir      string
	RestoreAfter time.Duration

	// AuditSink receives the authorization audit trail, one JSON line per
	// denied request or connection and per AUDIT match (sidecar/audit);
	// nil writes none. Writes come from one goroutine; the sidecar never
	// closes it, so its owner closes it after Run has returned, by which
	// time every accepted record has been written.
	AuditSink io.Writer
	// AuditQueueSize is how many audit records may wait for the sink
	// before new ones are dropped (counted); zero means
	// audit.DefaultQueueSize.
	AuditQueueSize int

	// AccessLogSink receives the access log, one JSON line per request
	// (docs/telemetry.md), when it is on: for the requests AccessLogMode
	// says, or as the node's TelemetryPolicy (Snapshot.Telemetry) turns
	// it on. Nil writes no access log at all. Writes come from one
	// goroutine; the sidecar never closes it (its owner does, after Run
	// has returned).
	AccessLogSink io.Writer
	// AccessLogMode is which requests are logged while no
	// TelemetryPolicy turns the access log on: proxy.AccessLogOff (the
	// default), AccessLogAll or AccessLogErrors.
	AccessLogMode proxy.AccessLogMode
	// AccessLogQueueSize is how many lines may wait for the sink before
	// new ones are dropped (counted); zero means
	// proxy.DefaultAccessLogQueue.
	AccessLogQueueSize int
	// Tracing, when set, turns distributed tracing on: OTLP endpoint,
	// protocol and sampling (see sidecar/tracing). Its ServiceName,
	// Namespace, Cluster, Locality and Logger default to the workload's
	// (WORKLOAD.NAMESPACE). Nil traces nothing.
	Tracing *tracing.Config
	// Capture, when set, turns transparent capture on (capture.go).
	Capture *CaptureConfig
}

// Sidecar is one workload's data plane. Create it with New, which binds
// the fixed listeners, and run it with Run.
type Sidecar struct {
	cfg     Config
	log     *slog.Logger
	proxy   *proxy.Proxy
	builder *config.Builder
	xds     *xdsclient.Client
	dns     *dns.Server
	audit   *audit.Log       // nil without an audit sink
	access  *proxy.AccessLog // nil without an access log sink
	tracer  *tracing.Tracer  // nil without Config.Tracing
	gather  prometheus.Gatherer

	outbound  net.Listener
	outbound6 net.Listener // with Capture.OutboundAddrIPv6 on a host with IPv6
	inbound   net.Listener // when InboundAddr is set
	admin     net.Listener
	ready     net.Listener // when ReadyAddr is set
	dnsUDP    net.PacketConn
	dnsTCP    net.Listener
	dnsUDP6   net.PacketConn // with DNSAddrIPv6 on a host with IPv6
	dnsTCP6   net.Listener
	svcIP     netip.Addr

	updated chan struct{}  // a new snapshot was applied
	release *memoryRelease // used by onUpdate only

	bindErrors *prometheus.CounterVec
	// authzRejected counts xDS updates refused for their RBAC filters.
	authzRejected *prometheus.CounterVec

	// bindFailing counts the failed binds in a row of each listener key
	// that cannot be bound now. Only the listener goroutine of Run
	// (reconcile) uses it.
	bindFailing map[string]int

	// mu guards the listener set, for ServiceAddr and the admin pages.
	// It is never held while a listener is bound or stopped.
	mu        sync.Mutex // guards the following
	listeners map[string]*managed
}

type managed struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

// New validates cfg, binds the outbound, admin, DNS and (with InboundAddr)
// inbound listeners, and returns a Sidecar ready to Run. On error every
// listener is closed.
func New(cfg Config) (_ *Sidecar, err error) {
	switch {
	case cfg.ControlPlane == "":
		return nil, errors.New("sidecar: control plane address is required")
	case cfg.TrustDomain.IsZero():
		return nil, errors.New("sidecar: trust domain is required")
	case cfg.Cluster == "":
		return nil, errors.New("sidecar: cluster is required")
	case cfg.Namespace == "":
		return nil, errors.New("sidecar: namespace is required")
	case cfg.OutboundAddr == "":
		return nil, errors.New("sidecar: outbound address is required")
	case !cfg.InsecureControlPlane && (cfg.RootBundle == nil || cfg.ControlPlaneID.IsZero()):
		return nil, errors.New("sidecar: root bundle and control plane ID are required for TLS to the control plane")
	}
	if cfg.ServiceAccount == "" {
		cfg.ServiceAccount = "default"
	}
	if _, err := identity.WorkloadID(cfg.TrustDomain, cfg.Namespace, cfg.ServiceAccount); err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	labels, err := naming.ParseLabels(cfg.Labels)
	if err != nil {
		return nil, fmt.Errorf("sidecar: labels: %w", err)
	}
	cfg.Labels = naming.FormatLabels(labels)
	if err := cfg.Capture.validate(); err != nil {
		return nil, fmt.Errorf("sidecar: capture: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := log.With("cluster", cfg.Cluster)
	log = base.With("component", "sidecar")
	warnExposed(log, cfg)
	reg, gather := cfg.Registerer, cfg.Gatherer
	if reg == nil && gather == nil {
		r := prometheus.NewRegistry()
		reg, gather = r, r
	}
	if gather == nil {
		gather = prometheus.NewRegistry()
	}
	s := &Sidecar{cfg: cfg, log: log, gather: gather, builder: config.NewBuilder(cfg.TrustDomain),
		updated: make(chan struct{}, 1), release: newMemoryRelease(xdsclient.AllTypes), listeners: map[string]*managed{}, bindFailing: map[string]int{},
		bindErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_listener_bind_errors_total",
			Help: "Failed attempts to bind a service-port or inbound listener from the configuration, by reason (address_in_use, address_not_available, permission_denied, other); each is retried every second.",
		}, []string{"reason"}),
		authzRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_authz_config_rejected_total",
			Help: "xDS listener updates refused (NACKed, the last good configuration kept) because of an RBAC filter, by reason (unsupported_field, invalid).",
		}, []string{"reason"})}
	defer func() {
		if err != nil {
			s.closeFixed()
			s.stopTracer()
		}
	}()

	if reg != nil {
		for _, c := range []prometheus.Collector{s.bindErrors, s.authzRejected} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("sidecar: register metrics: %w", err)
			}
		}
	}
	var rec audit.Recorder
	if cfg.AuditSink != nil {
		if s.audit, err = audit.New(audit.Config{Sink: cfg.AuditSink, QueueSize: cfg.AuditQueueSize, Logger: base}, reg); err != nil {
			return nil, fmt.Errorf("sidecar: %w", err)
		}
		rec = s.audit
	}
	pm, err := proxy.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	bm, err := balancer.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	if cfg.AccessLogSink != nil {
		if s.access, err = proxy.NewAccessLog(proxy.AccessLogConfig{Sink: cfg.AccessLogSink, QueueSize: cfg.AccessLogQueueSize, Logger: base}, reg); err != nil {
			return nil, fmt.Errorf("sidecar: %w", err)
		}
	}
	if cfg.Tracing != nil {
		if s.tracer, err = newTracer(*cfg.Tracing, cfg, base, reg); err != nil {
			return nil, fmt.Errorf("sidecar: %w", err)
		}
	}
	self, _ := identity.WorkloadID(cfg.TrustDomain, cfg.Namespace, cfg.ServiceAccount)
	pcfg := proxy.Config{Cluster: cfg.Cluster, Workload: cfg.Workload, Namespace: cfg.Namespace, Principal: self.String(),
		Logger: base, Metrics: pm, BalancerMetrics: bm, Audit: rec, AccessLog: s.access, AccessLogMode: cfg.AccessLogMode, Tracer: s.tracer,
		OutboundBindAddr: cfg.OutboundBindAddr}
	proxyCapture(cfg, &pcfg)
	if s.proxy, err = proxy.New(pcfg); err != nil {
		return nil, err
	}
	if cfg.ServiceIP != "" {
		if s.svcIP, err = netip.ParseAddr(cfg.ServiceIP); err != nil {
			return nil, fmt.Errorf("sidecar: service IP: %w", err)
		}
	}
	node, err := s.node()
	if err != nil {
		return nil, err
	}
	xcfg := xdsclient.Config{
		Target:         cfg.ControlPlane,
		Node:           node,
		TokenFile:      cfg.TokenFile,
		Handler:        xdsclient.HandlerFunc(s.onUpdate),
		LoadReports:    s.quotaLoad,
		Logger:         base,
		InitialBackoff: cfg.XDSBackoff,
		// The builder keeps the resources; the client keeps none.
		Incremental: true,
	}
	persistIn(cfg, &xcfg)
	if cfg.InsecureControlPlane {
		xcfg.Insecure = true
	} else {
		tcfg := identity.ClientConfig(s.proxyCertIfAny(), bundleOr(s.proxy, cfg.RootBundle), identity.AuthorizeIDs(cfg.ControlPlaneID))
		xcfg.Credentials = credentials.NewTLS(tcfg)
	}
	if s.xds, err = xdsclient.New(xcfg, reg); err != nil {
		return nil, err
	}
	if err := s.newDNS(base, reg); err != nil {
		return nil, err
	}
	if s.outbound, err = net.Listen("tcp", cfg.OutboundAddr); err != nil {
		return nil, fmt.Errorf("sidecar: outbound listener: %w", err)
	}
	if err := s.listenOutboundIPv6(); err != nil {
		return nil, err
	}
	if cfg.InboundAddr != "" {
		if s.inbound, err = net.Listen("tcp", cfg.InboundAddr); err != nil {
			return nil, fmt.Errorf("sidecar: inbound listener: %w", err)
		}
	}
	if cfg.AdminAddr != "" {
		if s.admin, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			return nil, fmt.Errorf("sidecar: admin listener: %w", err)
		}
	}
	if cfg.ReadyAddr != "" {
		if s.ready, err = net.Listen("tcp", cfg.ReadyAddr); err != nil {
			return nil, fmt.Errorf("sidecar: ready listener: %w", err)
		}
	}
	return s, nil
}

// proxyCertIfAny presents the SDS certificate to the control plane once
// the sidecar has one (none on the very first connection).
func (s *Sidecar) proxyCertIfAny() identity.CertSource { return optionalCert{s.proxy} }

type optionalCert struct{ p *proxy.Proxy }

func (o optionalCert) Certificate() (*tls.Certificate, error) {
	c, err := o.p.Certificate()
	if err != nil {
		// No certificate yet: present none; the token authenticates us.
		return &tls.Certificate{}, nil
	}
	return c, nil
}

// bundleOr prefers the SDS bundle and falls back to the bootstrap bundle.
func bundleOr(p *proxy.Proxy, boot *x509bundle.Bundle) identity.BundleSource {
	return bundleFallback{p, boot}
}

type bundleFallback struct {
	p    *proxy.Proxy
	boot *x509bundle.Bundle
}

func (b bundleFallback) Bundle() *x509bundle.Bundle {
	if b.p.Snapshot().Bundle != nil {
		return b.p.Snapshot().Bundle
	}
	return b.boot
}

func (s *Sidecar) node() (*corev3.Node, error) {
	c := s.cfg
	id := c.NodeID
	if id == "" {
		host, _, _ := net.SplitHostPort(c.OutboundAddr)
		id = naming.RoleSidecar + "~" + host + "~" + c.Workload + "." + c.Namespace
	}
	meta := map[string]any{
		naming.MetaCluster:        c.Cluster,
		naming.MetaNamespace:      c.Namespace,
		naming.MetaServiceAccount: c.ServiceAccount,
		naming.MetaRole:           naming.RoleSidecar,
		naming.MetaWorkload:       c.Workload,
	}
	if c.Token != "" {
		meta[naming.MetaToken] = c.Token
	}
	if c.AppPorts != "" {
		meta[naming.MetaAppPorts] = c.AppPorts
	}
	if c.Labels != "" {
		meta[naming.MetaLabels] = c.Labels
	}
	st, err := structpb.NewStruct(meta)
	if err != nil {
		return nil, fmt.Errorf("sidecar: node metadata: %w", err)
	}
	return &corev3.Node{
		Id:       id,
		Cluster:  c.Cluster,
		Locality: &corev3.Locality{Region: c.Locality.Region, Zone: c.Locality.Zone, SubZone: c.Cluster},
		Metadata: st,
	}, nil
}

// onUpdate is the xDS handler: build, install, and wake the listener
// reconciler. An error NACKs the update and changes nothing.
func (s *Sidecar) onUpdate(u xdsclient.Update) error {
	snap, err := s.builder.Apply(u)
	if err != nil {
		switch {
		case errors.Is(err, authz.ErrUnsupported):
			s.authzRejected.WithLabelValues("unsupported_field").Inc()
		case errors.Is(err, config.ErrAuthz):
			s.authzRejected.WithLabelValues("invalid").Inc()
		}
		return err
	}
	if err := s.proxy.Update(snap); err != nil {
		s.log.Warn("some services could not be updated", "err", err)
	}
	if s.release.after(u) {
		releaseMemory()
		s.dropPages()
	}
	select {
	case s.updated <- struct{}{}:
	default:
	}
	return nil
}

// OutboundAddr returns the bound outbound proxy address.
func (s *Sidecar) OutboundAddr() string { return s.outbound.Addr().String() }

// InboundAddr returns the bound inbound address when Config.InboundAddr
// was set, else "".
func (s *Sidecar) InboundAddr() string {
	if s.inbound == nil {
		return ""
	}
	return s.inbound.Addr().String()
}

// AdminAddr returns the bound admin address, or "".
func (s *Sidecar) AdminAddr() string {
	if s.admin == nil {
		return ""
	}
	return s.admin.Addr().String()
}

// ReadyAddr returns the bound ready-probe address, or "".
func (s *Sidecar) ReadyAddr() string {
	if s.ready == nil {
		return ""
	}
	return s.ready.Addr().String()
}

// ServiceAddr returns where the service-port listener for port is bound,
// or "" when there is none.
func (s *Sidecar) ServiceAddr(port int32) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, m := range s.listeners {
		if key == portKey(port, true) || key == portKey(port, false) {
			return m.addr
		}
	}
	return ""
}

// QuotaDemand returns the demand this sidecar saw for each clusterset
// quota it enforces a share of: requests admitted and refused since it
// started, by quota ID "NAMESPACE/POLICY/QUOTA", sorted by ID. Counters
// are monotonic; a load report computes rates from two reads. Safe to
// call from any goroutine, at any time.
func (s *Sidecar) QuotaDemand() []ratelimit.QuotaDemand { return s.proxy.QuotaDemand() }

// Proxy returns the data plane, for tests and benchmarks.
func (s *Sidecar) Proxy() *proxy.Proxy { return s.proxy }

// XDS returns the xDS client.
func (s *Sidecar) XDS() *xdsclient.Client { return s.xds }

func (s *Sidecar) closeFixed() {
	for _, c := range []interface{ Close() error }{s.outbound, s.outbound6, s.inbound, s.admin, s.ready, s.dnsTCP, s.dnsTCP6} {
		if c != nil && !isNilListener(c) {
			_ = c.Close()
		}
	}
	for _, c := range []net.PacketConn{s.dnsUDP, s.dnsUDP6} {
		if c != nil {
			_ = c.Close()
		}
	}
}

func isNilListener(c interface{ Close() error }) bool {
	l, ok := c.(net.Listener)
	return ok && l == nil
}

// Run serves until ctx ends, then closes every listener and connection and
// returns nil. It returns early with an error only if a fixed listener
// fails.
func (s *Sidecar) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.audit != nil {
		// The audit trail outlives the listeners: it stops, writing what
		// is queued, once nothing can record any more.
		actx, acancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.audit.Run(actx)
		}()
		defer func() {
			acancel()
			<-done
		}()
	}
	if s.access != nil {
		// So does the access log.
		lctx, lcancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.access.Run(lctx)
		}()
		defer func() {
			lcancel()
			<-done
		}()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.xds.Run(gctx) })
	g.Go(func() error { return s.proxy.ServeOutbound(gctx, s.outbound) })
	if s.outbound6 != nil {
		g.Go(func() error { return s.proxy.ServeOutbound(gctx, s.outbound6) })
	}
	if s.inbound != nil {
		g.Go(func() error { return s.proxy.ServeInbound(gctx, s.inbound) })
	}
	if s.admin != nil {
		g.Go(func() error { return serveHTTP(gctx, s.admin, admin.Handler(s, s.gather)) })
	}
	if s.ready != nil {
		g.Go(func() error { return serveHTTP(gctx, s.ready, s.readyHandler(admin.ReadyHandler(s, s.gather))) })
	}
	if s.dns != nil {
		g.Go(func() error { return s.dns.Serve(gctx, s.dnsUDP, s.dnsTCP) })
		if s.dnsUDP6 != nil {
			g.Go(func() error { return s.dns.Serve(gctx, s.dnsUDP6, s.dnsTCP6) })
		}
	}
	g.Go(func() error {
		defer s.stopAll()
		// A listener that could not be bound (its port was taken) is
		// tried again every second.
		var retry <-chan time.Time
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-s.updated:
			case <-retry:
			}
			retry = nil
			if !s.reconcile(gctx) {
				retry = time.After(time.Second)
			}
		}
	})
	err := g.Wait()
	s.stopAll()
	s.proxy.Close()
	s.closeFixed()
	s.stopTracer()
	return err
}

// serveHTTP serves h on l until ctx ends (the admin and ready listeners).
func serveHTTP(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func portKey(port int32, http bool) string {
	return "port|" + strconv.Itoa(int(port)) + "|" + strconv.FormatBool(http)
}

// reconcile binds the listeners the current snapshot needs and stops the
// ones it no longer does. It reports whether every listener is bound. Only
// the listener goroutine of Run calls it.
func (s *Sidecar) reconcile(ctx context.Context) bool {
	want, serve := s.wanted()
	return s.apply(ctx, want, serve)
}

// serveFunc serves one listener until ctx ends, then closes it.
type serveFunc func(ctx context.Context, l net.Listener) error

// apply makes the listener set want (key -> address), each listener
// served by serve[key], and reports whether every listener is bound. The
// plan is made under mu, the stops and binds are done without it (a
// stopping listener waits for its connections to close), and the new
// listeners are recorded under it again, so that ServiceAddr and the admin
// pages never wait for the network. Only one goroutine at a time calls
// apply (Run's listener goroutine).
func (s *Sidecar) apply(ctx context.Context, want map[string]string, serve map[string]serveFunc) bool {
	s.mu.Lock()
	var stop []*managed
	for k, m := range s.listeners {
		if _, ok := want[k]; !ok {
			stop = append(stop, m)
			delete(s.listeners, k)
		}
	}
	var bind []string
	for k := range want {
		if s.listeners[k] == nil {
			bind = append(bind, k)
		}
	}
	s.mu.Unlock()

	// Stop before binding: a port whose protocol changed has a new key
	// and binds the same address again.
	stopListeners(stop)
	for k := range s.bindFailing {
		if _, ok := want[k]; !ok {
			delete(s.bindFailing, k)
		}
	}
	sort.Strings(bind)
	started := map[string]*managed{}
	for _, k := range bind {
		l, err := net.Listen("tcp", want[k])
		if err != nil {
			// Another process (the app itself, often) holds the port:
			// the HTTP proxy listener and CONNECT still reach the service.
			s.bindFailed(k, want[k], err)
			continue
		}
		if n := s.bindFailing[k]; n > 0 {
			s.log.Info("bound listener after failed attempts", "listener", k, "address", want[k], "failures", n)
			delete(s.bindFailing, k)
		}
		lctx, cancel := context.WithCancel(ctx)
		m := &managed{addr: l.Addr().String(), cancel: cancel, done: make(chan struct{})}
		fn := serve[k]
		go func() {
			defer close(m.done)
			_ = fn(lctx, l)
		}()
		started[k] = m
	}

	s.mu.Lock()
	maps.Copy(s.listeners, started)
	s.mu.Unlock()
	return len(started) == len(bind)
}

// wanted returns the address and the serve function of every listener
// the current snapshot needs, by key.
func (s *Sidecar) wanted() (map[string]string, map[string]serveFunc) {
	snap := s.proxy.Snapshot()
	want := map[string]string{} // key -> address
	serve := map[string]serveFunc{}
	if s.svcIP.IsValid() {
		for _, port := range snap.Ports() {
			isHTTP := false
			for _, svc := range snap.Port(port) {
				isHTTP = isHTTP || svc.Protocol.IsHTTP()
			}
			k := portKey(port, isHTTP)
			want[k] = net.JoinHostPort(s.svcIP.String(), strconv.Itoa(int(port)))
			serve[k] = func(ctx context.Context, l net.Listener) error { return s.proxy.ServePort(ctx, l, port) }
		}
	}
	if s.inbound == nil {
		for _, in := range snap.Inbound {
			k := "inbound|" + in.Address
			want[k] = in.Address
			serve[k] = s.proxy.ServeInbound
		}
	}
	return want, serve
}

// bindFailed counts a failed bind of listener key and logs it: a warning
// for the first failure in a row, debug for the retries after it.
func (s *Sidecar) bindFailed(key, addr string, err error) {
	s.bindErrors.WithLabelValues(bindErrorReason(err)).Inc()
	s.bindFailing[key]++
	n := s.bindFailing[key]
	log := s.log.Debug
	if n == 1 {
		log = s.log.Warn
	}
	log("cannot bind listener; retrying every second", "listener", key, "address", addr, "failures", n, "err", err)
}

// bindErrorReason is the reason label of a failed bind.
func bindErrorReason(err error) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "address_in_use"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "address_not_available"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "permission_denied"
	}
	return "other"
}

// stopAll stops every listener. Only the listener goroutine of Run, and
// Run after it has ended, call it.
func (s *Sidecar) stopAll() {
	s.mu.Lock()
	stop := make([]*managed, 0, len(s.listeners))
	for k, m := range s.listeners {
		stop = append(stop, m)
		delete(s.listeners, k)
	}
	s.mu.Unlock()
	stopListeners(stop)
}

// stopListeners cancels every listener of ms, then waits for all of them
// to end.
func stopListeners(ms []*managed) {
	for _, m := range ms {
		m.cancel()
	}
	for _, m := range ms {
		<-m.done
	}
}
