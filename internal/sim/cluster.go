package sim

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/federation"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/proof"
	"github.com/fedmesh/fedmesh/federation/replicate"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/topology"
)

// certTTL is the lifetime of a simulated control plane's certificates:
// longer than any run, so nothing is renewed meanwhile.
const certTTL = 24 * time.Hour

// exportsCreated is when every simulated export was created (cluster i's
// i minutes later, so the oldest export of a service is cluster 0's).
var exportsCreated = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// regions spread the clusters over a few regions and zones.
const regions = 4

func clusterName(i int) string { return fmt.Sprintf("c%04d", i) }

func serviceName(k int) string { return fmt.Sprintf("svc-%04d", k) }

// clusterIP is cluster i's own loopback address in block b.
func clusterIP(b, i int) string { return fmt.Sprintf("127.%d.%d.%d", b, i/250, i%250+1) }

// endpointAddr is the address of endpoint e of service k in cluster i.
func endpointAddr(cfg *hostConfig, i, k, e int) string {
	n := (i*cfg.Services+k)*cfg.Endpoints + e
	return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
}

func clusterLocality(i int) topology.Locality {
	return topology.Locality{Region: fmt.Sprintf("r%d", i%regions), Zone: fmt.Sprintf("z%d", i/regions%3), Cluster: clusterName(i)}
}

// cluster is one simulated cluster's control plane: the real store with
// its embedded etcd (mTLS, auth, peer grants), serf membership, the
// federation (replication, merge, fencing) and the xDS server that plans
// every view, exactly as controlplane.Server wires them; the source is
// synthetic.
type cluster struct {
	i    int
	name string
	ip   string
	cfg  *hostConfig
	log  *slog.Logger

	auth     *ca.Authority
	settings xds.Settings
	st       *store.Store
	meter    *catalogMeter
	gossip   *gossipMeter
	mem      *membership.Membership
	fed      *federation.Federation
	xs       *xds.Server

	// reg holds the control plane's metrics, as its /metrics would.
	reg *prometheus.Registry

	cancel context.CancelFunc
	wg     sync.WaitGroup
	dead   atomic.Bool

	views    atomic.Uint64
	planTime atomic.Int64

	mu      sync.Mutex // guards the following
	unready map[int]bool
}

// startCluster starts cluster i's control plane. root signs its
// cluster CA, as `fedmesh ca issue-cluster` does.
func startCluster(ctx context.Context, cfg *hostConfig, root *ca.Root, i int, log *slog.Logger) (_ *cluster, err error) {
	c := &cluster{i: i, name: clusterName(i), ip: clusterIP(cfg.Block, i), cfg: cfg, unready: map[int]bool{}, reg: prometheus.NewRegistry()}
	c.log = log.With("cluster", c.name)
	files, err := root.IssueCluster(c.name, 0)
	if err != nil {
		return nil, fmt.Errorf("cluster CA of %s: %w", c.name, err)
	}
	if c.auth, err = ca.NewAuthority(files); err != nil {
		return nil, fmt.Errorf("cluster CA of %s: %w", c.name, err)
	}
	c.settings = xds.Settings{TrustDomain: c.auth.TrustDomain().Name()}
	dir := filepath.Join(cfg.DataDir, c.name)
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return nil, err
	}
	cp, err := c.auth.IssueControlPlane(certTTL, c.ip)
	if err != nil {
		return nil, fmt.Errorf("control plane certificate of %s: %w", c.name, err)
	}
	etcdRoot, err := c.auth.IssueEtcdRoot(certTTL)
	if err != nil {
		return nil, fmt.Errorf("etcd root certificate of %s: %w", c.name, err)
	}
	for name, data := range map[string][]byte{"cp.crt": cp.CertPEM, "cp.key": cp.KeyPEM, "bundle.crt": c.auth.BundlePEM()} {
		if err := os.WriteFile(filepath.Join(tlsDir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	// The TLS configurations of controlplane/mesh.go: the store's own
	// client is the etcd root user of this cluster's etcd; peers'
	// catalogs are checked against the bundle and pinned by the prover.
	auth, cluster := c.auth, c.name
	storeTLS := &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*etcdRoot.TLS},
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := identity.VerifyControlPlaneOf(cs.PeerCertificates, auth.Bundle(), time.Now(), cluster)
			return err
		},
	}
	peerTLS := &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cp.TLS},
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := identity.VerifyPeerCertificates(cs.PeerCertificates, auth.Bundle(), time.Now())
			return err
		},
	}
	defer func() {
		if err != nil {
			c.kill()
		}
	}()
	c.st, err = store.Open(ctx, store.Config{
		Cluster:          c.name,
		DataDir:          filepath.Join(dir, "etcd"),
		ListenClientURLs: []string{"https://" + net.JoinHostPort(c.ip, "0")},
		ListenPeerURL:    "http://" + net.JoinHostPort(c.ip, "0"),
		ServerCertFile:   filepath.Join(tlsDir, "cp.crt"),
		ServerKeyFile:    filepath.Join(tlsDir, "cp.key"),
		ClientCAFile:     filepath.Join(tlsDir, "bundle.crt"),
		ClientTLS:        storeTLS,
		// N etcds share one disk here; each cluster's has its own.
		UnsafeNoFsync: true,
		LeaseTTL:      cfg.scaled(store.DefaultLeaseTTL),
		Logger:        c.log,
		Registerer:    c.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("store of %s: %w", c.name, err)
	}
	if err := c.st.EnableAuth(ctx); err != nil {
		return nil, fmt.Errorf("etcd auth of %s: %w", c.name, err)
	}
	if _, err := c.st.SetExports(ctx, c.exports()); err != nil {
		return nil, fmt.Errorf("exports of %s: %w", c.name, err)
	}
	target, err := hostOf(c.st.ClientURL())
	if err != nil {
		return nil, err
	}
	if c.meter, err = newCatalogMeter(net.JoinHostPort(c.ip, "0"), target); err != nil {
		return nil, fmt.Errorf("catalog relay of %s: %w", c.name, err)
	}
	c.mem, err = membership.New(membership.Config{
		NodeName:    c.name,
		Locality:    clusterLocality(i),
		GatewayAddr: net.JoinHostPort(c.ip, "15443"),
		CatalogAddr: "https://" + c.meter.Addr(),
		BindAddr:    c.ip,
		Keys:        [][]byte{cfg.GossipKey},
		Profile:     cfg.Profile,
		WrapTransport: func(t memberlist.Transport) memberlist.Transport {
			c.gossip = newGossipMeter(t)
			return c.gossip
		},
		Logger:     c.log,
		Registerer: c.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("membership of %s: %w", c.name, err)
	}
	prover, err := proof.New(proof.Config{Bundle: c.auth, Certs: identity.StaticCert(cp.TLS), DialTimeout: cfg.scaled(proof.DefaultDialTimeout)})
	if err != nil {
		return nil, err
	}
	c.fed, err = federation.New(federation.Config{
		Cluster:        c.name,
		Locality:       clusterLocality(i),
		GatewayAddress: net.JoinHostPort(c.ip, "15443"),
		Store:          c.st,
		Membership:     c.mem,
		Prover:         prover,
		PeerTLS:        peerTLS,
		GrantPeerRead:  true,
		ImportScope:    c.importScope(),
		FencePeriod:    cfg.FencePeriod,
		ProbeTimeout:   cfg.scaled(replicate.DefaultProbeTimeout),
		DialTimeout:    cfg.scaled(replicate.DefaultDialTimeout),
		IOTimeout:      cfg.scaled(federation.DefaultIOTimeout),
		Logger:         c.log,
		Registerer:     c.reg,
	})
	if err != nil {
		return nil, err
	}
	c.xs, err = xds.NewServer(xds.Config{
		Cluster:       c.name,
		Settings:      c.settings,
		Authenticator: xds.TokenAuthenticator(c.auth.VerifyBootstrapToken),
		Issuer:        c.auth,
		Logger:        c.log,
		Registerer:    c.reg,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func hostOf(u string) (string, error) {
	for _, p := range []string{"https://", "http://"} {
		if len(u) > len(p) && u[:len(p)] == p {
			return u[len(p):], nil
		}
	}
	return "", fmt.Errorf("etcd client URL %q: want http(s)://HOST:PORT", u)
}

// run starts the federation, the xDS server and the loop that plans
// every view and hands it to onView (from one goroutine).
func (c *cluster) run(onView func(*cluster, *catalog.View)) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	views, unsubscribe := c.fed.Subscribe()
	c.wg.Add(3)
	go func() {
		defer c.wg.Done()
		if err := c.fed.Run(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("federation stopped", "err", err)
		}
	}()
	go func() {
		defer c.wg.Done()
		_ = c.xs.Run(ctx)
	}()
	go func() {
		defer c.wg.Done()
		defer unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case v, ok := <-views:
				if !ok {
					return
				}
				start := time.Now()
				if err := c.xs.UpdateView(v); err != nil {
					c.log.Warn("view not planned", "err", err)
				}
				c.planTime.Add(int64(time.Since(start)))
				c.views.Add(1)
				onView(c, v)
			}
		}
	}()
}

// importScope is the services the cluster consumes, nil when it
// consumes every one.
func (c *cluster) importScope() []catalog.ServiceKey {
	if c.cfg.Consumed >= c.cfg.Services {
		return nil
	}
	var keys []catalog.ServiceKey
	for k := range c.cfg.Services {
		if consumes(c.cfg.Services, c.cfg.Consumed, c.i, k) {
			keys = append(keys, catalog.ServiceKey{Namespace: "sim", Name: serviceName(k)})
		}
	}
	return keys
}

// exports is the cluster's export set: every service, every endpoint
// ready but those turned unready.
func (c *cluster) exports() []catalog.Export {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]catalog.Export, c.cfg.Services)
	for k := range out {
		e := catalog.Export{Service: catalog.Service{
			Namespace: "sim", Name: serviceName(k), Type: catalog.ClusterSetIP, Cluster: c.name,
			Ports:         []catalog.Port{{Name: "http", Port: 8080, AppProtocol: catalog.AppHTTP}},
			ExportCreated: exportsCreated.Add(time.Duration(c.i) * time.Minute),
		}}
		for p := range c.cfg.Endpoints {
			ready := p != 0 || !c.unready[k]
			e.Endpoints = append(e.Endpoints, catalog.Endpoint{
				Address: endpointAddr(c.cfg, c.i, k, p), Port: 8080, PortName: "http",
				Ready: ready, Serving: ready,
				Locality: clusterLocality(c.i), ServiceAccount: "default",
			})
		}
		out[k] = e
	}
	return out
}

// apply turns endpoint 0 of service k unready and writes the exports,
// as the control plane does with every source update.
func (c *cluster) apply(ctx context.Context, k int) error {
	c.mu.Lock()
	c.unready[k] = true
	c.mu.Unlock()
	_, err := c.st.SetExports(ctx, c.exports())
	return err
}

// buildSidecar times one sidecar's full xDS build from the current view.
func (c *cluster) buildSidecar() time.Duration {
	v := c.fed.View()
	if v == nil {
		return 0
	}
	start := time.Now()
	g, err := xds.NewGenerator(c.settings, v)
	if err != nil {
		return 0
	}
	n := xds.Node{ID: "sim-sidecar." + c.name, Role: naming.RoleSidecar, Cluster: c.name,
		Namespace: "sim", ServiceAccount: "default", Locality: clusterLocality(c.i)}
	if _, err := g.Build(n, nil); err != nil {
		c.log.Warn("sidecar build failed", "err", err)
		return 0
	}
	return time.Since(start)
}

// counters adds the control plane's counters of interest (summed over
// their labels) to sum, and those of labelledCounters also by label as
// NAME{LABEL=VALUE}.
func (c *cluster) counters(sum map[string]float64) {
	mfs, err := c.reg.Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		if !slices.Contains(reportedCounters, mf.GetName()) {
			continue
		}
		byLabel := slices.Contains(labelledCounters, mf.GetName())
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			sum[mf.GetName()] += v
			if byLabel {
				for _, l := range m.GetLabel() {
					sum[fmt.Sprintf("%s{%s=%s}", mf.GetName(), l.GetName(), l.GetValue())] += v
				}
			}
		}
	}
}

// labelledCounters are the reported counters also counted by label: why
// proofs fail and replicators restart tells what a forming federation
// waits for.
var labelledCounters = []string{
	"fedmesh_federation_member_proofs_total",
	"fedmesh_replicate_restarts_total",
	"fedmesh_store_txn_failures_total",
}

// reportedCounters are the control planes' counters a run reports: the
// signs of a federation under strain.
var reportedCounters = []string{
	"fedmesh_replicate_updates_total",
	"fedmesh_replicate_resyncs_total",
	"fedmesh_replicate_restarts_total",
	"fedmesh_replicate_probe_failures_total",
	"fedmesh_federation_view_publishes_total",
	"fedmesh_federation_fence_changes_total",
	"fedmesh_federation_store_errors_total",
	"fedmesh_federation_member_proofs_total",
	"fedmesh_store_lease_keepalive_failures_total",
	"fedmesh_store_txn_failures_total",
	"fedmesh_store_watch_restarts_total",
	"fedmesh_store_watch_relists_total",
}

// kill stops the control plane abruptly: no gossip leave, no lease
// revocation, its catalog connections cut. Safe to call more than once.
func (c *cluster) kill() {
	if c.dead.Swap(true) {
		return
	}
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.mem != nil {
		_ = c.mem.Shutdown()
	}
	if c.meter != nil {
		c.meter.Close()
	}
	if c.st != nil {
		_ = c.st.Abandon()
	}
}

// stop stops the control plane; a federation being torn down needs no
// goodbyes either.
func (c *cluster) stop() { c.kill() }
