package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// closeTimeout bounds the lease revocation of a clean Close.
const closeTimeout = 3 * time.Second

// handshakeTimeout bounds a client's TLS handshake with the embedded etcd
// when the store serves the client listeners.
const handshakeTimeout = 10 * time.Second

// Store is a cluster's view of its etcd: the embedded server (or the
// client of an external cluster), the lease its exports live under, and the
// reads and writes of the key layout described in the package doc.
//
// A Store is safe for concurrent use. Writes of imports (SetImports,
// UpdateImports, DeleteImports) are serialized by the Store, and so are the
// other writes (SetExports, PutMember, the auth functions), the two kinds
// beside each other; reads and watches run concurrently with them and with
// each other.
type Store struct {
	cfg       Config
	log       *slog.Logger
	metrics   *Metrics
	etcd      *embed.Etcd // nil with an external etcd
	cli       *clientv3.Client
	clientURL string
	peerURL   string // the embedded etcd's raft peer listener

	// clientServer serves the embedded etcd's client listeners when client
	// certificates are required (see clientauth.go); nil otherwise, when
	// etcd serves them itself. serveWG waits for its Serve calls.
	clientServer *grpc.Server
	serveWG      sync.WaitGroup

	ctx    context.Context // canceled by Close; owns the keepalive goroutine
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// importMu serializes the writes of imports (SetImports,
	// UpdateImports, DeleteImports), apart from mu so that a large
	// imports write does not hold up the exports.
	importMu sync.Mutex

	mu sync.Mutex // guards the following, and serializes the other writes
	// lease is the lease this cluster's exports are written under.
	lease clientv3.LeaseID
	// desired is the export set of the last successful SetExports, by key;
	// nil before the first one. It is written again under a new lease when
	// the old one is lost.
	desired map[string][]byte
	// stored is what the exports prefix holds, as far as this store knows:
	// the value and lease of every key.
	stored map[string]storedKV
	// peerRoleReady is set once this store has written PeerReadRole and
	// its permission (GrantPeerRead).
	peerRoleReady bool
}

type storedKV struct {
	value []byte
	lease clientv3.LeaseID
}

// Open starts the embedded etcd (or connects to the external one), grants
// the exports lease and keeps it alive until Close. ctx bounds the start:
// the embedded server's readiness, the first connection and the lease grant.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := NewMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register store metrics: %w", err)
	}
	s := &Store{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "store", "cluster", cfg.Cluster),
		metrics: m,
	}
	endpoints := cfg.Endpoints
	if cfg.embedded() {
		if err := s.startEmbedded(ctx); err != nil {
			return nil, err
		}
		endpoints = []string{s.clientURL}
	} else {
		s.clientURL = cfg.Endpoints[0]
	}
	s.cli, err = newClient(endpoints, cfg.ClientTLS, cfg.DialTimeout, cfg.MaxRequestBytes, cfg.Logger)
	if err != nil {
		s.closeEmbedded()
		return nil, err
	}
	if err := s.grantLocked(ctx); err != nil {
		s.cli.Close()
		s.closeEmbedded()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.keepLease()
	s.log.Info("store open", "etcd", s.clientURL, "embedded", cfg.embedded(), "lease", int64(s.lease))
	return s, nil
}

// NewClient makes an etcd client for endpoints (a peer's ClientURL, say)
// with the settings the store uses for its own: tlsConfig for mTLS (nil
// for http), keepalives, no limit on received message size, and etcd's
// client logs routed to logger (nil: slog.Default()) as Config.Logger
// describes. The caller closes it.
func NewClient(endpoints []string, tlsConfig *tls.Config, logger *slog.Logger) (*clientv3.Client, error) {
	if logger == nil {
		logger = slog.Default()
	}
	return newClient(endpoints, tlsConfig, DefaultDialTimeout, DefaultMaxRequestBytes, logger)
}

func newClient(endpoints []string, tlsConfig *tls.Config, dialTimeout time.Duration, maxRequestBytes int, logger *slog.Logger) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsConfig,
		DialTimeout:          dialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		MaxCallSendMsgSize:   maxRequestBytes + 64<<10,
		MaxCallRecvMsgSize:   0, // unlimited, so that a list of a large prefix works
		Logger:               newZapLogger(logger).With(zap.String("part", "client")),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	return cli, nil
}

// The embedded etcd's raft log bounds: see startEmbedded.
const (
	embeddedSnapshotCount  = 100
	embeddedCatchUpEntries = 10
)

func (s *Store) startEmbedded(ctx context.Context) error {
	cfg := s.cfg
	ec := embed.NewConfig()
	ec.Name = "fedmesh-" + cfg.Cluster
	ec.Dir = cfg.DataDir
	clientURLs, err := toURLs(cfg.ListenClientURLs)
	if err != nil {
		return err
	}
	var (
		auth      *clientAuth
		listeners []net.Listener
	)
	if cfg.ClientCAFile != "" {
		// The store serves the client listeners itself, with the identity
		// checks of clientauth.go in the TLS handshake; etcd gets none of
		// its own, so no connection reaches it any other way. It still
		// must know that client certificates name users.
		if auth, err = newClientAuth(cfg, s.log, s.metrics); err != nil {
			return err
		}
		if err := auth.checkOwnClient(cfg.ClientTLS); err != nil {
			return err
		}
		if listeners, clientURLs, err = listenClients(clientURLs); err != nil {
			return err
		}
		ec.ListenClientUrls = []url.URL{}
		ec.ClientTLSInfo = transport.TLSInfo{ClientCertAuth: true}
	} else {
		ec.ListenClientUrls = clientURLs
		ec.ClientTLSInfo = transport.TLSInfo{
			CertFile: cfg.ServerCertFile,
			KeyFile:  cfg.ServerKeyFile,
		}
	}
	closeListeners := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	ec.AdvertiseClientUrls = clientURLs
	if ec.ListenPeerUrls, err = toURLs([]string{cfg.ListenPeerURL}); err != nil {
		closeListeners()
		return err
	}
	ec.AdvertisePeerUrls = ec.ListenPeerUrls
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	if cfg.PeerCAFile != "" {
		ec.PeerTLSInfo = transport.TLSInfo{
			CertFile:       cfg.PeerCertFile,
			KeyFile:        cfg.PeerKeyFile,
			TrustedCAFile:  cfg.PeerCAFile,
			ClientCertAuth: true,
		}
	}
	// The embedded etcd is one member: no follower ever catches up from
	// the raft log, which etcd keeps in memory (10,000 entries to a
	// snapshot, 5,000 after it). With every peer's imports written as
	// large transactions it held a copy of each persisted import (0.4
	// KiB of heap per import); a snapshot every 100 entries keeping 10
	// bounds it to a few MiB.
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	ec.SnapshotCount = embeddedSnapshotCount
	ec.SnapshotCatchUpEntries = embeddedCatchUpEntries
	ec.MaxTxnOps = uint(cfg.MaxTxnOps)
	ec.MaxRequestBytes = uint(cfg.MaxRequestBytes)
	if cfg.CompactionRetention > 0 {
		ec.AutoCompactionMode = embed.CompactorModePeriodic
		ec.AutoCompactionRetention = cfg.CompactionRetention.String()
	}
	ec.EnableGRPCGateway = false
	ec.Logger = "zap"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(cfg.Logger))
	e, err := embed.StartEtcd(ec)
	if err != nil {
		closeListeners()
		return fmt.Errorf("start embedded etcd in %s: %w", cfg.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		closeListeners()
		e.Close()
		return fmt.Errorf("start embedded etcd in %s: %w", cfg.DataDir, err)
	case <-ctx.Done():
		closeListeners()
		e.Close()
		<-e.Server.StopNotify()
		return fmt.Errorf("embedded etcd in %s not ready: %w", cfg.DataDir, ctx.Err())
	}
	s.etcd = e
	s.peerURL = ec.ListenPeerUrls[0].Scheme + "://" + e.Peers[0].Addr().String()
	if auth == nil {
		scheme := "http"
		if cfg.ServerCertFile != "" {
			scheme = "https"
		}
		s.clientURL = scheme + "://" + e.Clients[0].Addr().String()
		return nil
	}
	s.clientServer = v3rpc.Server(e.Server, nil, nil, clientServerOptions(ec, auth)...)
	for _, l := range listeners {
		s.serveWG.Add(1)
		go func() {
			defer s.serveWG.Done()
			// Serve returns when closeEmbedded stops the server.
			_ = s.clientServer.Serve(l)
		}()
	}
	s.clientURL = clientURLs[0].String()
	return nil
}

// listenClients binds the client URLs (port 0 picks a free port) and
// returns the listeners and the URLs with the ports they really got.
func listenClients(urls []url.URL) ([]net.Listener, []url.URL, error) {
	ls := make([]net.Listener, 0, len(urls))
	bound := make([]url.URL, 0, len(urls))
	for _, u := range urls {
		l, err := net.Listen("tcp", u.Host)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, nil, fmt.Errorf("listen on etcd client URL %s: %w", u.String(), err)
		}
		ls = append(ls, l)
		b := u
		b.Host = l.Addr().String()
		bound = append(bound, b)
	}
	return ls, bound, nil
}

// clientServerOptions are the gRPC options etcd's own client listeners
// would get (keepalive enforcement and pings, see embed's serveClients),
// with auth's credentials and a bound on the TLS handshake.
func clientServerOptions(ec *embed.Config, auth *clientAuth) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.Creds(clientCreds{auth}),
		grpc.ConnectionTimeout(handshakeTimeout),
		// No 32 KiB read buffer per connection: a federation of N holds
		// N-1 peers' connections here, idle but for their watches, and
		// TLS already buffers the record.
		grpc.ReadBufferSize(0),
	}
	if ec.GRPCKeepAliveMinTime > 0 {
		opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: ec.GRPCKeepAliveMinTime}))
	}
	if ec.GRPCKeepAliveInterval > 0 && ec.GRPCKeepAliveTimeout > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{Time: ec.GRPCKeepAliveInterval, Timeout: ec.GRPCKeepAliveTimeout}))
	}
	return opts
}

func toURLs(ss []string) ([]url.URL, error) {
	us := make([]url.URL, 0, len(ss))
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrConfig, s, err)
		}
		us = append(us, *u)
	}
	return us, nil
}

// PeerURL is the embedded etcd's raft peer URL, with the port it really
// got; "" with an external etcd.
func (s *Store) PeerURL() string { return s.peerURL }

// ClientURL is the URL of the etcd this store uses: the embedded server's
// first client listener, with the port it really got, or the first
// external endpoint. Peers replicate from it.
func (s *Store) ClientURL() string { return s.clientURL }

// Client is the store's etcd client. It is closed by Close.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Cluster is the cluster this store writes for.
func (s *Store) Cluster() string { return s.cfg.Cluster }

// Metrics are the store's collectors, to share with watches of peers.
func (s *Store) Metrics() *Metrics { return s.metrics }

// LeaseID is the lease this cluster's exports are currently written under.
func (s *Store) LeaseID() clientv3.LeaseID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease
}

// Close revokes the exports lease, so that this cluster's exports vanish
// at once, stops the keepalive, closes the client and stops the embedded
// etcd, waiting for it. It is idempotent; later calls return the first
// call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close(true) })
	return s.closeErr
}

// Abandon closes the store like Close but leaves the exports lease to
// expire on its own, as a crash would: peers keep seeing this cluster's
// exports for up to the lease TTL. Tests use it to simulate a crash. After
// Close or Abandon, both return the first call's result.
func (s *Store) Abandon() error {
	s.closeOnce.Do(func() { s.closeErr = s.close(false) })
	return s.closeErr
}

func (s *Store) close(revoke bool) error {
	s.cancel()
	s.wg.Wait()
	var errs []error
	if revoke {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		s.mu.Lock()
		lease := s.lease
		s.mu.Unlock()
		if _, err := s.cli.Revoke(ctx, lease); err != nil {
			errs = append(errs, fmt.Errorf("revoke exports lease %x: %w", int64(lease), err))
		}
		cancel()
	}
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, fmt.Errorf("close etcd client: %w", err))
	}
	s.closeEmbedded()
	s.log.Info("store closed", "revoked", revoke)
	return errors.Join(errs...)
}

func (s *Store) closeEmbedded() {
	if s.etcd == nil {
		return
	}
	if s.clientServer != nil {
		s.clientServer.Stop()
		s.serveWG.Wait()
	}
	s.etcd.Close()
	<-s.etcd.Server.StopNotify()
}

// keepLease keeps the exports lease alive until Close. When the lease is
// lost (it expired while this control plane could not reach etcd, or was
// revoked), it grants a new one and writes the exports again.
func (s *Store) keepLease() {
	defer s.wg.Done()
	for {
		lease := s.LeaseID()
		ch, err := s.cli.KeepAlive(s.ctx, lease)
		if err == nil {
			for range ch {
			}
		}
		if s.ctx.Err() != nil {
			return
		}
		if s.LeaseID() != lease {
			continue // a writer already replaced the lease
		}
		if s.leaseAlive(lease) {
			// The keepalive gave up waiting for an answer (etcd or this
			// process was starved for the lease's TTL), but etcd still
			// holds the lease and the exports under it: keep it, so
			// that peers' watches see no rewrite of every export.
			s.metrics.LeaseKeepaliveResumes.Inc()
			s.log.Info("exports lease keepalive ended but the lease is alive; keeping it", "lease", int64(lease), "err", err)
			continue
		}
		s.metrics.LeaseKeepaliveFailures.Inc()
		s.log.Warn("exports lease lost; granting a new one and writing the exports again", "lease", int64(lease), "err", err)
		bo := newBackoff()
		for {
			// Bounded, so that writers waiting for the mutex are not held
			// for longer than one attempt while etcd is away.
			ctx, cancel := context.WithTimeout(s.ctx, max(s.cfg.LeaseTTL, 5*time.Second))
			s.mu.Lock()
			err := s.regrantLocked(ctx, lease)
			s.mu.Unlock()
			cancel()
			if err == nil {
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			s.metrics.LeaseKeepaliveFailures.Inc()
			s.log.Warn("granting a new exports lease failed; retrying", "err", err)
			if !sleepCtx(s.ctx, bo.NextBackOff()) {
				return
			}
		}
	}
}

// leaseAlive asks etcd whether lease still has time to live.
func (s *Store) leaseAlive(lease clientv3.LeaseID) bool {
	ctx, cancel := context.WithTimeout(s.ctx, max(s.cfg.LeaseTTL, 5*time.Second))
	defer cancel()
	ttl, err := s.cli.TimeToLive(ctx, lease)
	return err == nil && ttl.TTL > 0
}

// grantLocked grants a new lease and reads what the exports prefix holds.
func (s *Store) grantLocked(ctx context.Context) error {
	resp, err := s.cli.Grant(ctx, int64((s.cfg.LeaseTTL+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("grant exports lease: %w", err)
	}
	s.lease = resp.ID
	return s.readStoredLocked(ctx)
}

// readStoredLocked reads what the exports prefix holds.
func (s *Store) readStoredLocked(ctx context.Context) error {
	s.stored = nil
	get, err := s.cli.Get(ctx, ExportsPrefix(s.cfg.Cluster), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("read exports: %w", err)
	}
	stored := make(map[string]storedKV, len(get.Kvs))
	for _, kv := range get.Kvs {
		stored[string(kv.Key)] = storedKV{value: kv.Value, lease: clientv3.LeaseID(kv.Lease)}
	}
	s.stored = stored
	return nil
}

// regrantLocked replaces the lost lease old with a new one, unless that
// was done already, and makes sure the last export set is written under
// the current lease. A lease granted by an earlier attempt whose write
// then failed is not enough: the write is tried again (it writes nothing
// when the exports are already there).
func (s *Store) regrantLocked(ctx context.Context, old clientv3.LeaseID) error {
	if s.lease == old {
		if err := s.grantLocked(ctx); err != nil {
			return err
		}
	}
	if s.desired == nil {
		return nil
	}
	_, err := s.writeExportsLocked(ctx, s.desired, "lease_rewrite")
	return err
}

func newBackoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 10 * time.Second
	bo.RandomizationFactor = 0.5
	bo.MaxElapsedTime = 0 // never give up; the context ends the retries
	bo.Reset()
	return bo
}

// sleepCtx waits d, or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
