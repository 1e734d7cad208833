package controlplane

import (
	"cmp"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/federation"
	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/proof"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/store"
)

// MeshConfig turns a control plane into a member of a federation: with
// the cluster's CA it serves etcd over mTLS with per-peer read-only access,
// gossips with serf, replicates and merges peers' exports, and serves xDS
// with workload certificates.
type MeshConfig struct {
	// CADir is the cluster CA directory written by `fedmesh ca
	// issue-cluster`. Required.
	CADir string
	// SerfPort is the gossip port on the bind address. Default 7946; 0
	// after defaults are applied is not allowed (use -1 for a free port
	// in tests).
	SerfPort int
	// XDSAddress is host:port of the xDS server. Default
	// BindAddress:15010.
	XDSAddress string
	// GatewayAddress is this cluster's east-west gateway as announced to
	// peers. Default BindAddress:15443.
	GatewayAddress string
	// ClusterCIDRs are the address ranges this cluster's workloads and
	// nodes send from, announced to peers (membership.TagCIDRs), whose
	// gateways label connections from them with this cluster's name.
	// Each is canonical (membership.ParseCIDRs); at most
	// membership.MaxCIDRs. Optional.
	ClusterCIDRs []netip.Prefix
	// ImportScope, if not empty, is the services this cluster's
	// workloads consume: only their exports are replicated from peers
	// (federation.Config.ImportScope, scoped imports). Empty: every
	// export of the clusterset.
	ImportScope []catalog.ServiceKey
	// Profile selects gossip timings: WAN for real federations, LAN or
	// local for one machine. Default WAN.
	Profile membership.Profile
	// FencePeriod is how long a peer's catalog may be unreachable before
	// its control plane counts as gone. Default
	// federation.DefaultFencePeriod.
	FencePeriod time.Duration
	// GatewayProbes tunes the probes of peers' gateways, on whose
	// evidence peers are fenced or kept (federation/fence).
	GatewayProbes GatewayProbeConfig
	// XDS tunes the generated xDS resources; TrustDomain is taken from
	// the CA.
	XDS xds.Settings
	// CertTTL is the lifetime of the control plane's and workloads'
	// certificates, renewed at half life. Default 24h.
	CertTTL time.Duration
	// AdvertiseAddress is the address peers reach the gossip on, when it
	// differs from the bind address (a pod behind a Service). Default: the
	// bind address.
	AdvertiseAddress string
	// AdvertiseSerfPort is the gossip port peers reach, when it differs
	// from SerfPort (a NodePort). Default: the bound port.
	AdvertiseSerfPort int
	// AdvertiseEtcdURL is the etcd client URL peers replicate from, when
	// it differs from the listener (a NodePort or load balancer), e.g.
	// https://192.0.2.10:32379. Its host is added to the control plane's
	// certificate. Default: the etcd listener's URL.
	AdvertiseEtcdURL string
	// Authenticator proves xDS nodes' identities. Default: local-mode
	// bootstrap tokens signed by the cluster CA. Kubernetes mode passes
	// one that checks projected ServiceAccount tokens with TokenReview.
	Authenticator xds.Authenticator
	// GatewayIdentities are the proven identities that may connect to
	// xDS as role gateway. Default xds.DefaultGatewayIdentities (the local
	// demo's fedmesh-system/gateway and deploy/'s
	// fedmesh-system/fedmesh-gateway).
	GatewayIdentities []xds.Identity
	// XDSLimits bound the xDS server's connections (8192), streams per
	// connection (16) and the time a connection has to authenticate
	// (10s); zero fields take xds.DefaultLimits.
	XDSLimits xds.Limits
	// WebView configures the live picture on the admin port.
	WebView WebViewConfig
	// CAReloadInterval is how often CADir is read again for a CA
	// rotation (`fedmesh ca rotate`): a changed intermediate or trust
	// bundle is taken at once, the control plane's and every workload's
	// certificate re-issued from it and the bundle pushed over SDS.
	// Default DefaultCAReloadInterval.
	CAReloadInterval time.Duration
	// Quota tunes the split of clusterset quotas (quotas.go).
	Quota QuotaConfig
}

// DefaultCAReloadInterval is MeshConfig.CAReloadInterval's default.
const DefaultCAReloadInterval = 10 * time.Second

func (m *MeshConfig) withDefaults(bind string) error {
	if m.CADir == "" {
		return errors.New("mesh: CA dir is required")
	}
	switch {
	case m.SerfPort == 0:
		m.SerfPort = membership.DefaultBindPort
	case m.SerfPort < 0:
		m.SerfPort = 0
	}
	if m.XDSAddress == "" {
		m.XDSAddress = net.JoinHostPort(bind, strconv.Itoa(DefaultXDSPort))
	}
	if m.GatewayAddress == "" {
		m.GatewayAddress = net.JoinHostPort(bind, "15443")
	}
	cidrs := make([]string, len(m.ClusterCIDRs))
	for i, p := range m.ClusterCIDRs {
		cidrs[i] = p.String()
	}
	if _, err := membership.ParseCIDRs(cidrs); err != nil {
		return fmt.Errorf("mesh: cluster CIDRs: %w", err)
	}
	if m.Profile == "" {
		m.Profile = membership.ProfileWAN
	}
	if m.CertTTL == 0 {
		m.CertTTL = ca.DefaultWorkloadTTL
	}
	switch {
	case m.CAReloadInterval == 0:
		m.CAReloadInterval = DefaultCAReloadInterval
	case m.CAReloadInterval < 0:
		return fmt.Errorf("mesh: CA reload interval %s is negative", m.CAReloadInterval)
	}
	var err error
	if m.Quota, err = m.Quota.withDefaults(); err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	return m.WebView.withDefaults()
}

// mesh is the running identity, federation and xDS part of a control
// plane, built by Run when Config.Mesh is set.
type mesh struct {
	auth   *ca.Authority
	cpCert *identity.Rotator
	// renewCP issues the control plane's certificate and writes its
	// files; it serializes its callers (the rotator, a CA reload).
	renewCP func(context.Context) (*tls.Certificate, error)
	// etcdRoot is the store client's certificate ("root"), re-issued
	// when the CA changes.
	etcdRoot  atomic.Pointer[tls.Certificate]
	tlsDir    string
	storeTLS  *tls.Config
	peerTLS   *tls.Config
	xdsServer *xds.Server
	fed       *federation.Federation
	members   *membership.Membership
}

// prepareMesh loads the CA, issues the control plane's certificates and
// fills the store's TLS settings. It runs before the store opens.
func (s *Server) prepareMesh(ctx context.Context) (*mesh, error) {
	mc := s.cfg.Mesh
	auth, err := ca.AuthorityConfig{Registerer: s.cfg.Registry}.Load(mc.CADir)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	if auth.Cluster() != s.cfg.Cluster {
		return nil, fmt.Errorf("cluster CA in %s is for cluster %q, not %q", mc.CADir, auth.Cluster(), s.cfg.Cluster)
	}
	m := &mesh{auth: auth, tlsDir: filepath.Join(s.cfg.DataDir, "tls")}
	if err := os.MkdirAll(m.tlsDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(m.tlsDir, "bundle.crt"), auth.BundlePEM(), 0o644); err != nil {
		return nil, err
	}
	// The control plane's SVID serves etcd and xDS and authenticates it to
	// peers' etcd (its common name is its etcd user there). It is renewed
	// at half life; etcd reads its files on every handshake.
	hosts := []string{s.cfg.BindAddress}
	addHost := func(h string) {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if h, _, err := net.SplitHostPort(mc.XDSAddress); err == nil {
		addHost(h)
	}
	addHost(mc.AdvertiseAddress)
	if mc.AdvertiseEtcdURL != "" {
		u, err := url.Parse(mc.AdvertiseEtcdURL)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("advertised etcd URL %q: want https://HOST:PORT", mc.AdvertiseEtcdURL)
		}
		addHost(u.Hostname())
	}
	var renewMu sync.Mutex
	renew := func(context.Context) (*tls.Certificate, error) {
		renewMu.Lock()
		defer renewMu.Unlock()
		is, err := auth.IssueControlPlane(mc.CertTTL, hosts...)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(m.tlsDir, "cp.key"), is.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(m.tlsDir, "cp.crt"), is.CertPEM, 0o644); err != nil {
			return nil, err
		}
		return is.TLS, nil
	}
	m.renewCP = renew
	first, err := renew(ctx)
	if err != nil {
		return nil, fmt.Errorf("issue control plane certificate: %w", err)
	}
	m.cpCert, err = identity.NewRotator(identity.RotatorConfig{
		Renew: renew, Logger: s.log, Registerer: s.cfg.Registry,
		ConstLabels: map[string]string{"identity": "controlplane"},
	})
	if err != nil {
		return nil, err
	}
	if err := m.cpCert.SetCertificate(first); err != nil {
		return nil, err
	}
	if err := m.renewEtcdRoot(); err != nil {
		return nil, err
	}
	// Both configs check the server against the CA's current bundle at
	// each handshake (not a pool fixed at start), so a root rotation
	// needs no restart; the SPIFFE check replaces the host name check.
	cluster := s.cfg.Cluster
	m.storeTLS = &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*m.etcdRoot.Load()},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return m.etcdRoot.Load(), nil },
		InsecureSkipVerify:   true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := identity.VerifyControlPlaneOf(cs.PeerCertificates, auth.Bundle(), time.Now(), cluster)
			return err
		},
	}
	m.peerTLS = &tls.Config{
		MinVersion: tls.VersionTLS12, GetClientCertificate: m.cpCert.GetClientCertificate,
		InsecureSkipVerify: true, // checked below and pinned by federation/proof
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := identity.VerifyPeerCertificates(cs.PeerCertificates, auth.Bundle(), time.Now())
			return err
		},
	}
	st := &s.cfg.Store
	if len(st.Endpoints) == 0 {
		st.ServerCertFile = filepath.Join(m.tlsDir, "cp.crt")
		st.ServerKeyFile = filepath.Join(m.tlsDir, "cp.key")
		st.ClientCAFile = filepath.Join(m.tlsDir, "bundle.crt")
		for i, u := range st.ListenClientURLs {
			if len(u) > 7 && u[:7] == "http://" {
				st.ListenClientURLs[i] = "https://" + u[7:]
			}
		}
		st.ClientTLS = m.storeTLS
	}
	return m, nil
}

// GatewayProbeConfig tunes the probes of peers' gateways (see
// federation.Config). Zero fields take the federation's defaults.
type GatewayProbeConfig struct {
	// Interval is the mean time between probes of a peer's gateway;
	// negative turns probes off (fencing then follows peers' control
	// planes alone).
	Interval time.Duration
	// Timeout bounds one probe.
	Timeout time.Duration
	// Failures is how many probes in a row must fail to fence a peer.
	Failures int
	// StaleAfter bounds how old a peer's last confirmed state may grow
	// while only its gateway vouches for it.
	StaleAfter time.Duration
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// runMesh runs membership, federation and xDS until ctx is done. st is
// open; views published by the federation are pushed to xDS.
func (s *Server) runMesh(ctx context.Context, m *mesh, st *store.Store) error {
	mc := s.cfg.Mesh
	if len(s.cfg.Store.Endpoints) == 0 {
		if err := st.EnableAuth(ctx); err != nil {
			return fmt.Errorf("enable etcd auth: %w", err)
		}
	}
	serfDir := filepath.Join(s.cfg.DataDir, "serf")
	if err := os.MkdirAll(serfDir, 0o700); err != nil {
		return err
	}
	mem, err := membership.New(membership.Config{
		NodeName:      s.cfg.Cluster,
		Replica:       s.cfg.Replica,
		Locality:      s.cfg.Locality,
		GatewayAddr:   mc.GatewayAddress,
		CIDRs:         mc.ClusterCIDRs,
		CatalogAddr:   cmp.Or(mc.AdvertiseEtcdURL, st.ClientURL()),
		BindAddr:      s.cfg.BindAddress,
		BindPort:      mc.SerfPort,
		AdvertiseAddr: mc.AdvertiseAddress,
		AdvertisePort: mc.AdvertiseSerfPort,
		KeyringFile:   filepath.Join(serfDir, "keyring"),
		SnapshotPath:  filepath.Join(serfDir, "snapshot"),
		Profile:       mc.Profile,
		KnownMembers:  &membership.FileKnownMembers{Path: filepath.Join(serfDir, "known-members.json")},
		Logger:        s.log,
		Registerer:    s.cfg.Registry,
	})
	if err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	defer func() {
		mem.Leave()
		mem.Shutdown()
	}()
	m.members = mem

	// A gossip member is trusted only once its catalog presents its
	// cluster's control plane identity.
	var probeBundle identity.BundleSource
	var probeCert identity.CertSource
	if mc.GatewayProbes.Interval >= 0 {
		// The current bundle and certificate: probes follow a CA
		// rotation as the rest do.
		probeBundle, probeCert = m.auth, m.cpCert
	}
	prover, err := proof.New(proof.Config{Bundle: m.auth, Certs: m.cpCert})
	if err != nil {
		return err
	}
	fed, err := federation.New(federation.Config{
		Cluster:              s.cfg.Cluster,
		Locality:             s.cfg.Locality,
		GatewayAddress:       mc.GatewayAddress,
		CIDRs:                mc.ClusterCIDRs,
		ImportScope:          mc.ImportScope,
		Store:                st,
		Membership:           mem,
		Prover:               prover,
		PeerTLS:              m.peerTLS,
		GrantPeerRead:        len(s.cfg.Store.Endpoints) == 0,
		FencePeriod:          mc.FencePeriod,
		ProbeBundle:          probeBundle,
		ProbeCertificate:     probeCert,
		GatewayProbeInterval: max(mc.GatewayProbes.Interval, 0),
		GatewayProbeTimeout:  mc.GatewayProbes.Timeout,
		GatewayProbeFailures: mc.GatewayProbes.Failures,
		StaleAfter:           mc.GatewayProbes.StaleAfter,
		Logger:               s.log,
		Registerer:           s.cfg.Registry,
	})
	if err != nil {
		return err
	}
	m.fed = fed

	settings := mc.XDS
	settings.TrustDomain = m.auth.TrustDomain().Name()
	settings.QuotaShares = s.quotas.shareOf
	authn := mc.Authenticator
	if authn == nil {
		authn = xds.TokenAuthenticator(m.auth.VerifyBootstrapToken)
	}
	policies, hasPolicies := s.cfg.Source.(source.PolicySource)
	xs, err := xds.NewServer(xds.Config{
		Cluster:         s.cfg.Cluster,
		Settings:        settings,
		Authenticator:   authn,
		Issuer:          m.auth,
		CertTTL:         mc.CertTTL,
		Logger:          s.log,
		Registerer:      s.cfg.Registry,
		WaitForPolicies: hasPolicies,
		Limits:          mc.XDSLimits,

		GatewayIdentities: mc.GatewayIdentities,
	})
	if err != nil {
		return err
	}
	m.xdsServer = xs

	// Workloads have no certificate before SDS gives them one: client
	// certificates are optional on xDS and nodes prove themselves with
	// their bootstrap tokens.
	serverTLS := identity.ServerConfigOptionalClient(m.cpCert, m.auth, identity.AuthorizeWorkloads())
	// xs.ServerOptions and xs.Listener enforce the stream and connection
	// caps and close connections that do not authenticate in time.
	gs := grpc.NewServer(append(xs.ServerOptions(),
		grpc.Creds(credentials.NewTLS(serverTLS)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)...)
	xs.Register(gs)
	lrs, err := s.newLRS(authn, mc)
	if err != nil {
		return err
	}
	lrs.Register(gs)
	rawXln, err := net.Listen("tcp", mc.XDSAddress)
	if err != nil {
		return fmt.Errorf("xds listener: %w", err)
	}
	xln := xs.Listener(rawXln)
	s.mu.Lock()
	s.xdsAddr = xln.Addr().String()
	s.mu.Unlock()

	s.mountMesh(m)
	coll, err := s.startWebView(m)
	if err != nil {
		return err
	}
	s.log.Info("federation member started", "serf", mem.Local().Addr, "xds", xln.Addr().String(), "etcd", st.ClientURL(), "trust_domain", settings.TrustDomain)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return m.cpCert.Run(gctx) })
	g.Go(func() error { return s.followCA(gctx, m) })
	g.Go(func() error { return fed.Run(gctx) })
	g.Go(func() error { return xs.Run(gctx) })
	if coll != nil {
		g.Go(func() error { return coll.Run(gctx) })
	}
	g.Go(func() error {
		if err := gs.Serve(xln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("xds server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(3 * time.Second):
			gs.Stop()
		}
		return nil
	})
	g.Go(func() error {
		views, cancel := fed.Subscribe()
		defer cancel()
		if v := fed.View(); v != nil {
			s.pushView(xs, v)
		}
		for {
			select {
			case <-gctx.Done():
				return nil
			case v := <-views:
				s.pushView(xs, v)
			}
		}
	})
	if hasPolicies {
		g.Go(func() error { return s.feedPolicies(gctx, policies, xs) })
	}
	if traffic, ok := s.cfg.Source.(source.TrafficSource); ok {
		g.Go(func() error { return s.feedTraffic(gctx, traffic, xs) })
		g.Go(func() error { s.quotas.followTraffic(gctx, traffic); return nil })
	}
	g.Go(func() error { s.quotas.run(gctx, fed.View, s.producers.refresh, xs.RefreshQuotaShares); return nil })
	return g.Wait()
}

// feedTraffic hands the source's traffic objects to xDS whenever they
// change, until ctx is done: the cluster's consumer routes are routed
// from them (producer routes arrive with the view).
func (s *Server) feedTraffic(ctx context.Context, src source.TrafficSource, xs *xds.Server) error {
	for {
		t, ready, changed := src.Traffic()
		if ready {
			if err := xs.UpdateTraffic(t); err != nil {
				s.log.Warn("traffic objects not applied to xDS; the last good set stays", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// feedPolicies hands the source's AuthorizationPolicies to xDS whenever
// they change, until ctx is done. They go nowhere else: policies stay in
// the cluster, enforced by its own sidecars.
func (s *Server) feedPolicies(ctx context.Context, src source.PolicySource, xs *xds.Server) error {
	for {
		ps, ready, changed := src.AuthorizationPolicies()
		if ready {
			if err := xs.UpdatePolicies(ps); err != nil {
				s.log.Warn("authorization policies not applied to xDS; the last good set stays", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

func (s *Server) pushView(xs *xds.Server, v *catalog.View) {
	if err := xs.UpdateView(v); err != nil {
		s.log.Warn("view not applied to xDS", "revision", v.Revision, "err", err)
	}
	if s.cfg.OnView != nil {
		s.cfg.OnView(v)
	}
}

// mountMesh puts the federation, join and xDS debug handlers on the admin
// port, and their readiness checks.
func (s *Server) mountMesh(m *mesh) {
	td := m.auth.TrustDomain()
	api, err := adminapi.NewHandler(adminapi.Config{
		Federation: m.members,
		Issuer: func() (adminapi.Issuer, error) {
			c, err := m.cpCert.Certificate()
			if err != nil {
				return adminapi.Issuer{}, err
			}
			signer, ok := c.PrivateKey.(crypto.Signer)
			if !ok {
				return adminapi.Issuer{}, errors.New("control plane key cannot sign")
			}
			chain := make([]*x509.Certificate, 0, len(c.Certificate))
			for _, der := range c.Certificate {
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					return adminapi.Issuer{}, err
				}
				chain = append(chain, cert)
			}
			return adminapi.Issuer{Signer: signer, Chain: chain, RootBundle: m.auth.BundlePEM(), TrustDomain: td.Name()}, nil
		},
		TrustedRoots: func() ([]*x509.Certificate, error) { return m.auth.TrustBundle(), nil },
		Logger:       s.log,
		Registerer:   s.cfg.Registry,
	})
	if err != nil {
		s.log.Error("federation admin API not mounted", "err", err)
	} else {
		s.admin.Handle("/federation/v1/", api)
		s.joinAPI.Store(api)
	}
	s.view.set(m.fed.View)
	fh := m.fed.Handler()
	s.admin.Handle(federation.StatusPath, fh)
	s.admin.Handle(federation.ViewPath, fh)
	xh := m.xdsServer.Handler()
	s.admin.Handle(xds.DebugXDSPath, xh)
	s.admin.Handle(xds.DebugEndpointsPath, xh)
	s.admin.Handle(xds.DebugAuthzPath, xh)
	s.admin.AddReadyCheck("federation", func() error {
		if m.fed.View() == nil {
			return errors.New("no federation view yet")
		}
		return nil
	})
}
