package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/internal/httpjson"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/topology"
)

// Default ports of a control plane, on its bind address.
const (
	DefaultAdminPort = 15014
	DefaultEtcdPort  = 2379
	DefaultSerfPort  = 7946
	DefaultXDSPort   = 15010
)

// Config configures a control plane.
type Config struct {
	// Cluster is this cluster's name, a DNS-1123 label.
	Cluster string
	// Replica names this control plane among several replicas of its
	// cluster (the pod name), a DNS-1123 label: with Mesh it gossips as
	// member CLUSTER.REPLICA, and peers treat the replicas as one peer
	// (see package federation). A replica that stops leaves its exports
	// in its store (the lease expires by itself) instead of revoking
	// them, so peers reading it keep the cluster's exports until they
	// move to another replica. Empty: the cluster runs one control plane.
	Replica string
	// Locality is where the cluster runs; Locality.Cluster is set to
	// Cluster.
	Locality topology.Locality
	// BindAddress is the address every listener binds to by default. In
	// local mode each cluster has its own loopback address (127.0.0.11,
	// .12, ...), so default ports never collide. Default 127.0.0.1.
	BindAddress string
	// AdminAddress is host:port of the admin HTTP server. Default
	// BindAddress:15014; port 0 picks a free port. With Mesh it serves
	// TLS and its protected routes need an operator certificate (see
	// Admin).
	AdminAddress string
	// AdminHosts are further host names or addresses operators reach the
	// admin endpoint by (a Service's DNS name): protected requests must
	// name one of them, the bind, admin or advertised address, or
	// localhost in their Host header.
	AdminHosts []string
	// DataDir holds the embedded etcd's data and the cluster's state.
	DataDir string
	// Source produces this cluster's exports.
	Source source.Source
	// Store configures the etcd store. Cluster and, for the embedded etcd,
	// DataDir (DataDir/etcd) and the client URL (http://BindAddress:2379)
	// are filled in when empty; Logger and Registerer are always the
	// control plane's.
	Store store.Config
	// Mesh, when set, makes the control plane a federation member with
	// identity: mTLS etcd, serf gossip, replication and xDS.
	Mesh *MeshConfig
	// OnView, when set, receives every merged federation view (Mesh mode),
	// for example the Kubernetes sink that writes ServiceImports. Called
	// from one goroutine; it must not block for long.
	OnView func(*catalog.View)
	// Logger receives the control plane's logs. Default slog.Default().
	Logger *slog.Logger
	// Registry holds the control plane's metrics and serves /metrics. A
	// new registry with Go and process collectors when nil.
	Registry *prometheus.Registry
}

func (c Config) withDefaults() (Config, error) {
	if why := catalog.IsDNS1123Label(c.Cluster); why != "" {
		return c, fmt.Errorf("cluster name %q: %s", c.Cluster, why)
	}
	if why := catalog.IsDNS1123Label(c.Replica); c.Replica != "" && why != "" {
		return c, fmt.Errorf("replica name %q: %s", c.Replica, why)
	}
	if c.Source == nil {
		return c, errors.New("no source configured")
	}
	c.Locality.Cluster = c.Cluster
	if c.BindAddress == "" {
		c.BindAddress = "127.0.0.1"
	}
	if net.ParseIP(c.BindAddress) == nil {
		return c, fmt.Errorf("bind address %q is not an IP address", c.BindAddress)
	}
	if c.AdminAddress == "" {
		c.AdminAddress = net.JoinHostPort(c.BindAddress, strconv.Itoa(DefaultAdminPort))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
		c.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	st := &c.Store
	st.Cluster = c.Cluster
	if len(st.Endpoints) == 0 {
		if c.DataDir == "" {
			return c, errors.New("data dir is required with the embedded etcd")
		}
		if st.DataDir == "" {
			st.DataDir = filepath.Join(c.DataDir, "etcd")
		}
		if len(st.ListenClientURLs) == 0 {
			scheme := "http"
			if st.ServerCertFile != "" {
				scheme = "https"
			}
			st.ListenClientURLs = []string{scheme + "://" + net.JoinHostPort(c.BindAddress, strconv.Itoa(DefaultEtcdPort))}
		}
		// ListenPeerURL stays the store's default, loopback: the
		// single-member etcd has no raft peers to reach it.
	}
	st.Logger = c.Logger
	st.Registerer = c.Registry
	if c.Mesh != nil {
		m := *c.Mesh
		if err := m.withDefaults(c.BindAddress); err != nil {
			return c, err
		}
		c.Mesh = &m
	}
	return c, nil
}

// Server is a running control plane. Create it with New, run it with Run.
type Server struct {
	cfg   Config
	log   *slog.Logger
	admin *Admin

	exportsWritten prometheus.Counter
	exportErrors   prometheus.Counter
	exportsGauge   prometheus.Gauge
	// producers attaches the producer policies to the exports.
	producers *producers
	// quotas splits the clusterset quotas (quotas.go).
	quotas *quotaBalancer
	// view is the federation's view, once the mesh runs.
	view viewSource
	// joinAPI is the federation admin API, once the mesh runs (joinapi.go).
	joinAPI atomic.Pointer[adminapi.Handler]

	mu sync.Mutex // guards the following
	// store is set once Run has opened it.
	st *store.Store
	// adminAddr is the admin listener's address once listening, and
	// adminTLS whether it serves TLS.
	adminAddr string
	adminTLS  bool
	// xdsAddr is the xDS listener's address once listening (Mesh).
	xdsAddr string
	// exported is the last export set written to the store, and lastRev
	// the revision that wrote it; exportErr the last write error.
	exported  []catalog.Export
	lastRev   int64
	exportErr error
	synced    bool
}

// New validates the configuration and returns a Server that is not yet
// running.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("control plane config: %w", err)
	}
	log := cfg.Logger.With("component", "controlplane", "cluster", cfg.Cluster)
	hosts := append([]string{cfg.BindAddress}, cfg.AdminHosts...)
	if h, _, err := net.SplitHostPort(cfg.AdminAddress); err == nil {
		hosts = append(hosts, h)
	}
	if cfg.Mesh != nil {
		hosts = append(hosts, cfg.Mesh.AdvertiseAddress)
	}
	admin, err := NewAdmin(AdminConfig{Gatherer: cfg.Registry, Registerer: cfg.Registry, Hosts: hosts, Logger: log})
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:   cfg,
		log:   log,
		admin: admin,
		exportsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_controlplane_export_writes_total",
			Help: "Export sets written to the store.",
		}),
		exportErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_controlplane_export_write_errors_total",
			Help: "Export sets the store failed to write (retried).",
		}),
		exportsGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_controlplane_exported_services",
			Help: "Services this cluster exports.",
		}),
	}
	encodeErrs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fedmesh_controlplane_policy_encode_errors_total",
		Help: "Producer policies of a service that could not be encoded for its export (the export keeps the last good ones).",
	})
	if err := registerAll(cfg.Registry, s.exportsWritten, s.exportErrors, s.exportsGauge, encodeErrs); err != nil {
		return nil, err
	}
	_, hasTraffic := cfg.Source.(source.TrafficSource)
	s.producers = newProducers(log, encodeErrs, hasTraffic)
	var qc QuotaConfig
	if cfg.Mesh != nil {
		qc = cfg.Mesh.Quota
	}
	if qc, err = qc.withDefaults(); err != nil {
		return nil, fmt.Errorf("control plane config: %w", err)
	}
	s.quotas = newQuotaBalancer(cfg.Cluster, qc, log, time.Now)
	if err := s.quotas.register(cfg.Registry); err != nil {
		return nil, err
	}
	s.producers.quotaRecords = s.quotas.recordsFor
	s.admin.Handle(QuotaPath, http.HandlerFunc(s.quotas.serveQuotas))
	s.admin.AddReadyCheck("store", func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.st == nil {
			return errors.New("etcd store not open")
		}
		return nil
	})
	s.admin.AddReadyCheck("exports", func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.synced {
			if s.exportErr != nil {
				return fmt.Errorf("exports not written: %w", s.exportErr)
			}
			return errors.New("exports not written yet")
		}
		return nil
	})
	s.admin.Handle("GET /debug/exports", http.HandlerFunc(s.serveExports))
	s.admin.Handle("GET /debug/source", http.HandlerFunc(s.serveSource))
	s.admin.Handle("GET "+TrafficPath, http.HandlerFunc(s.serveTraffic))
	return s, nil
}

// problemReporter is implemented by sources that can list the files and
// objects they rejected (the file source does). Problems is called from the
// admin server's goroutines.
type problemReporter interface {
	Problems() []source.Problem
}

// sourcePage is the JSON of /debug/source.
type sourcePage struct {
	Cluster  string           `json:"cluster"`
	Problems []source.Problem `json:"problems"`
}

// serveSource lists what the source rejected: each file or object with the
// reason. The exports built from what was good are unaffected.
func (s *Server) serveSource(w http.ResponseWriter, _ *http.Request) {
	page := sourcePage{Cluster: s.cfg.Cluster, Problems: []source.Problem{}}
	if pr, ok := s.cfg.Source.(problemReporter); ok {
		page.Problems = append(page.Problems, pr.Problems()...)
	}
	httpjson.Write(w, http.StatusOK, page)
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// Admin returns the admin surface, so that other parts can mount handlers
// and readiness checks before Run.
func (s *Server) Admin() *Admin { return s.admin }

// Store returns the etcd store once Run has opened it, else nil.
func (s *Server) Store() *store.Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// AdminAddr returns the admin listener's address once Run listens, else "".
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminAddr
}

// XDSAddr returns the xDS listener's address once Run listens (with
// Mesh), else "".
func (s *Server) XDSAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.xdsAddr
}

// AdminURL returns the admin endpoint's URL once Run listens
// (https://ADDR with Mesh, else http://ADDR), else "".
func (s *Server) AdminURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminAddr == "" {
		return ""
	}
	if s.adminTLS {
		return "https://" + s.adminAddr
	}
	return "http://" + s.adminAddr
}

// Run runs the control plane until ctx is done or a part fails, then shuts
// every part down (the admin server, the source, the store with its
// embedded etcd) and returns. A canceled ctx is a clean stop: Run returns
// nil.
func (s *Server) Run(ctx context.Context) error {
	// With Mesh, the CA and the control plane's certificate come first:
	// the admin listener serves TLS with that certificate and checks
	// operators against that CA from its first connection.
	var m *mesh
	if s.cfg.Mesh != nil {
		var err error
		if m, err = s.prepareMesh(ctx); err != nil {
			return err
		}
	}
	ln, err := s.listenAdmin(m)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler: s.admin, ReadHeaderTimeout: 10 * time.Second,
		// Refused handshakes are counted by reason; their log lines
		// would repeat per connection.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
	g.Go(func() error { return s.runCatalog(gctx, m) })
	s.log.Info("control plane started", "admin", s.AdminAddr(), "locality", s.cfg.Locality.String())
	err = g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = nil
	}
	s.log.Info("control plane stopped", "err", err)
	return err
}

// listenAdmin binds the admin listener: plain HTTP without Mesh, else
// TLS with the control plane's certificate, a client certificate
// requested but optional (kubelet probes and Prometheus have none and
// read only the open routes), verified against the federation's bundle
// when given, and protected routes authorized by operatorAuth.
func (s *Server) listenAdmin(m *mesh) (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.AdminAddress)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	if m != nil {
		cfg := identity.ServerConfigOptionalClient(m.cpCert, m.auth, nil)
		cfg.NextProtos = []string{"http/1.1"}
		identity.OnRefuse(cfg, func(err error) { s.admin.refuseTLS(identity.Reason(err)) })
		ln = tls.NewListener(ln, cfg)
		s.admin.SetAuth(operatorAuth(m.auth))
	}
	s.mu.Lock()
	s.adminAddr = ln.Addr().String()
	s.adminTLS = m != nil
	s.mu.Unlock()
	return ln, nil
}

// runCatalog opens the store, then feeds it the source's export sets until
// ctx is done. Writes happen on their own goroutine so that the source is
// never blocked by etcd: when sets arrive faster than they are written,
// only the newest is written. m is the prepared mesh, or nil.
func (s *Server) runCatalog(ctx context.Context, m *mesh) error {
	st, err := store.Open(ctx, s.cfg.Store)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() {
		closeStore := st.Close
		if s.cfg.Replica != "" {
			// The other replicas still serve the cluster's exports.
			closeStore = st.Abandon
		}
		if err := closeStore(); err != nil {
			s.log.Warn("closing store", "err", err)
		}
	}()
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
	s.log.Info("store open", "etcd", st.ClientURL())

	// The source's export sets, with the producer policies of its
	// traffic attached; only the newest waiting set is written.
	latest := s.producers.out
	g, gctx := errgroup.WithContext(ctx)
	if m != nil {
		g.Go(func() error { return s.runMesh(gctx, m, st) })
	}
	if ts, ok := s.cfg.Source.(source.TrafficSource); ok {
		g.Go(func() error { s.producers.followTraffic(gctx, ts); return nil })
		g.Go(func() error { s.producers.waitTraffic(gctx); return nil })
	}
	g.Go(func() error { return s.cfg.Source.Run(gctx, s.producers.setExports) })
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case exports := <-latest:
				s.writeExports(gctx, st, exports)
			}
		}
	})
	return g.Wait()
}

// writeExports writes one export set, retrying with a capped backoff until
// it succeeds, a newer set is waiting, or ctx is done.
func (s *Server) writeExports(ctx context.Context, st *store.Store, exports []catalog.Export) {
	// 100ms, doubling up to 5s, without jitter.
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0),
	)
	for {
		rev, err := st.SetExports(ctx, exports)
		s.mu.Lock()
		s.exportErr = err
		if err == nil {
			s.exported, s.lastRev, s.synced = exports, rev, true
		}
		s.mu.Unlock()
		if err == nil {
			s.exportsWritten.Inc()
			s.exportsGauge.Set(float64(len(exports)))
			s.log.Info("exports written", "services", len(exports), "revision", rev)
			return
		}
		s.exportErrors.Inc()
		if ctx.Err() != nil {
			return
		}
		delay := bo.NextBackOff()
		s.log.Warn("writing exports failed; retrying", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// exportsPage is the JSON of /debug/exports.
type exportsPage struct {
	Cluster string        `json:"cluster"`
	Prefix  string        `json:"prefix"`
	Items   []exportsItem `json:"items"`
	// Revision is the etcd revision the list was read at.
	Revision int64 `json:"revision"`
}

type exportsItem struct {
	Key    string         `json:"key"`
	Export catalog.Export `json:"export"`
}

// serveExports lists this cluster's exports as they are in etcd, with their
// keys.
func (s *Server) serveExports(w http.ResponseWriter, r *http.Request) {
	st := s.Store()
	if st == nil {
		http.Error(w, "store not open", http.StatusServiceUnavailable)
		return
	}
	cluster := r.URL.Query().Get("cluster")
	if cluster == "" {
		cluster = s.cfg.Cluster
	}
	exports, rev, err := st.ListExports(r.Context(), cluster)
	if err != nil {
		http.Error(w, "list exports: "+err.Error(), http.StatusInternalServerError)
		return
	}
	page := exportsPage{Cluster: cluster, Prefix: store.ExportsPrefix(cluster), Revision: rev, Items: []exportsItem{}}
	for _, e := range exports {
		page.Items = append(page.Items, exportsItem{Key: store.ExportKey(cluster, e.Service.Key()), Export: e})
	}
	httpjson.Write(w, http.StatusOK, page)
}
