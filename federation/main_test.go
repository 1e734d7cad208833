package federation

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/proof/prooftest"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
	"github.com/fedmesh/fedmesh/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded etcd's loggers start a package-level flush loop
		// that never stops.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		// memberlist's probe of a peer waits for its ack or its timer,
		// not for Shutdown; it ends on its own within the probe timeout.
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	)
}

var (
	t0      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	testKey = []byte("0123456789abcdef0123456789abcdef")
)

func testLogger(tb testing.TB) *slog.Logger {
	if os.Getenv("FEDMESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", tb.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func clusterName(i int) string { return fmt.Sprintf("c%02d", i) }

func locality(i int) topology.Locality {
	return topology.Locality{Region: fmt.Sprintf("r%d", i%3), Zone: "a", Cluster: clusterName(i)}
}

// node is one cluster's control plane in a test: a real embedded etcd
// store, real serf membership on loopback and a Federation.
type node struct {
	i    int
	name string
	scfg store.Config
	st   *store.Store
	mem  *membership.Membership
	fed  *Federation
	// views is subscribed before Run starts: its first view is the
	// first one published.
	views <-chan *catalog.View
	stop  context.CancelFunc
	done  chan error
	alive bool
}

// testOptions tunes the federations of a test.
type testOptions struct {
	fence time.Duration
	// bindPort is the gossip port; 0 picks a free one.
	bindPort int
	// cert, if set, is the node's control plane certificate in place of
	// the one its cluster's CA issues it.
	cert *tls.Certificate
	// gateway, if set, is the gateway address the node announces.
	gateway string
	// probes turns on the probes of peers' gateways.
	probes bool
	// replica, if set, makes the node one of several control plane
	// replicas of its cluster.
	replica string
	// membership, if set, wraps what the federation sees of the node's
	// real serf membership.
	membership func(Membership) Membership
	// importScope is the node's Config.ImportScope.
	importScope []catalog.ServiceKey
}

// cidrs are the address ranges node i declares.
func cidrs(i int) []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("127.0.%d.0/24", 100+i))}
}

func startNode(tb testing.TB, i int, scfg store.Config, o testOptions) *node {
	tb.Helper()
	n := &node{i: i, name: clusterName(i)}
	gateway := fmt.Sprintf("127.0.0.1:%d", 20000+i)
	if o.gateway != "" {
		gateway = o.gateway
	}
	var probeBundle identity.BundleSource
	if o.probes {
		probeBundle = identity.StaticBundle(prooftest.Default(tb).Bundle())
	}
	if scfg.ServerCertFile == "" {
		cert := prooftest.Default(tb).Cert(tb, n.name, cpID(n.name))
		if o.cert != nil {
			cert = *o.cert
		}
		scfg = prooftest.Default(tb).ControlPlaneWith(tb, cert).Store(tb, scfg)
	}
	n.scfg = scfg
	// The control plane presents to peers the certificate its etcd
	// serves; its store's own client is the etcd root user.
	cpCert, err := tls.LoadX509KeyPair(scfg.ServerCertFile, scfg.ServerKeyFile)
	if err != nil {
		tb.Fatal(err)
	}
	nt := prooftest.Default(tb).ControlPlaneWith(tb, cpCert)
	n.st = storetest.OpenConfig(tb, scfg)
	mem, err := membership.New(membership.Config{
		NodeName:          n.name,
		Replica:           o.replica,
		Locality:          locality(i),
		GatewayAddr:       gateway,
		CIDRs:             cidrs(i),
		CatalogAddr:       n.st.ClientURL(),
		BindAddr:          "127.0.0.1",
		BindPort:          o.bindPort,
		Keys:              [][]byte{testKey},
		Profile:           membership.ProfileLocal,
		ReconnectInterval: 500 * time.Millisecond,
		Logger:            testLogger(tb),
	})
	if err != nil {
		tb.Fatalf("membership of %s: %v", n.name, err)
	}
	n.mem = mem
	var fedMem Membership = mem
	if o.membership != nil {
		fedMem = o.membership(mem)
	}
	fed, err := New(Config{
		Cluster:        n.name,
		Locality:       locality(i),
		GatewayAddress: gateway,
		CIDRs:          cidrs(i),
		Store:          n.st,
		Membership:     fedMem,
		Prover:         nt.Prover,
		PeerTLS:        nt.PeerTLS,
		GrantPeerRead:  true,
		ImportScope:    o.importScope,
		FencePeriod:    o.fence,
		ProbeBundle:    probeBundle,
		// Probes every 100ms: a dead gateway is fenced after three.
		GatewayProbeInterval: 100 * time.Millisecond,
		ProbeInterval:        500 * time.Millisecond,
		MinBackoff:           20 * time.Millisecond,
		MaxBackoff:           500 * time.Millisecond,
		// Proofs of intruders are retried quickly, so that tests see
		// several attempts.
		MaxProofBackoff: 500 * time.Millisecond,
		Logger:          testLogger(tb),
	})
	if err != nil {
		tb.Fatal(err)
	}
	n.fed = fed
	views, unsubscribe := fed.Subscribe()
	tb.Cleanup(unsubscribe)
	n.views = views
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.done = make(chan error, 1)
	go func() { n.done <- fed.Run(ctx) }()
	n.alive = true
	tb.Cleanup(func() { n.kill(tb) })
	return n
}

// stopRun stops the node's Federation (and so its replicators).
func (n *node) stopRun(tb testing.TB) {
	tb.Helper()
	if n.done == nil {
		return
	}
	n.stop()
	if err := <-n.done; err != context.Canceled {
		tb.Errorf("Run of %s returned %v, want context.Canceled", n.name, err)
	}
	n.done = nil
}

// kill stops the node abruptly: no leave, no lease revocation.
func (n *node) kill(tb testing.TB) {
	tb.Helper()
	if !n.alive {
		return
	}
	n.alive = false
	n.stopRun(tb)
	if err := n.mem.Shutdown(); err != nil {
		tb.Errorf("membership shutdown of %s: %v", n.name, err)
	}
	if err := n.st.Abandon(); err != nil {
		tb.Errorf("store of %s: %v", n.name, err)
	}
}

func (n *node) join(tb testing.TB, to *node) {
	tb.Helper()
	if _, err := n.mem.Join([]string{to.mem.Local().Addr}); err != nil {
		tb.Fatalf("%s joins %s: %v", n.name, to.name, err)
	}
}

func (n *node) setExports(tb testing.TB, exports []catalog.Export) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rev, err := n.st.SetExports(ctx, exports)
	if err != nil {
		tb.Fatalf("SetExports in %s: %v", n.name, err)
	}
	return rev
}

// startCluster starts n nodes and joins them all to the first.
func startCluster(tb testing.TB, count int, o testOptions) []*node {
	tb.Helper()
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = startNode(tb, i, storetest.Config(tb, clusterName(i)), o)
		if i > 0 {
			nodes[i].join(tb, nodes[0])
		}
	}
	// Stop every federation before any store: an etcd server closes
	// slowly while peers still watch it.
	tb.Cleanup(func() {
		for _, n := range nodes {
			n.stopRun(tb)
		}
	})
	return nodes
}

// export builds a valid export of service name by cluster, with one
// endpoint per address.
func export(cluster, name string, created time.Time, port int32, addrs ...string) catalog.Export {
	e := catalog.Export{Service: catalog.Service{
		Namespace: "demo", Name: name, Type: catalog.ClusterSetIP, Cluster: cluster,
		Ports:         []catalog.Port{{Name: "http", Port: port, AppProtocol: catalog.AppHTTP}},
		ExportCreated: created,
	}}
	for _, a := range addrs {
		e.Endpoints = append(e.Endpoints, catalog.Endpoint{
			Address: a, Port: 15006, PortName: "http", Ready: true, Serving: true,
			Locality: topology.Locality{Region: "x", Cluster: cluster}, ServiceAccount: "default",
		})
	}
	return e
}

// baseExports is what cluster i exports: its share of the shared service
// echo, and a service of its own.
func baseExports(i int) []catalog.Export {
	c := clusterName(i)
	return []catalog.Export{
		export(c, "echo", t0.Add(time.Duration(i)*time.Minute), 8080, fmt.Sprintf("127.0.%d.1", i+1), fmt.Sprintf("127.0.%d.2", i+1)),
		export(c, "own-"+c, t0, 9090, fmt.Sprintf("127.0.%d.3", i+1)),
	}
}

func service(v *catalog.View, name string) *catalog.ImportedService {
	if v == nil {
		return nil
	}
	for i := range v.Services {
		if v.Services[i].Name == name {
			return &v.Services[i]
		}
	}
	return nil
}

func statusOf(tb testing.TB, n *node) Status {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := n.fed.Status(ctx)
	if err != nil {
		tb.Fatalf("status of %s: %v", n.name, err)
	}
	return st
}

func cpID(cluster string) string { return prooftest.ControlPlaneID(cluster) }

// startPair starts c00 and c01 with their options and base exports, and
// joins c01 to c00; both stop when the test ends.
func startPair(t *testing.T, o0, o1 testOptions) (*node, *node) {
	t.Helper()
	c00 := startNode(t, 0, storetest.Config(t, clusterName(0)), o0)
	c01 := startNode(t, 1, storetest.Config(t, clusterName(1)), o1)
	t.Cleanup(func() {
		c01.stopRun(t)
		c00.stopRun(t)
	})
	c00.setExports(t, baseExports(0))
	c01.setExports(t, baseExports(1))
	c01.join(t, c00)
	return c00, c01
}
