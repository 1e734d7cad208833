package kube

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/controlplane"
	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/federation"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/proof/prooftest"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
	"github.com/fedmesh/fedmesh/topology"
)

var gossipKey = []byte("0123456789abcdef0123456789abcdef")

// controlPlane is one cluster's fedmesh control plane in a test: the
// Kubernetes source feeding a control plane server (with its embedded
// etcd), serf membership, federation, and the sink writing the merged view
// back into the cluster.
type controlPlane struct {
	name    string
	api     *apiCluster
	clients kube.Clients
	admin   kube.Clients
	src     *kube.Source
	srv     *controlplane.Server
	st      *store.Store
	mem     *membership.Membership
	fed     *federation.Federation
	sink    *kube.Sink
	el      *kube.Elector // nil without cpOptions.replica
	stop    context.CancelFunc
	once    sync.Once
	wg      sync.WaitGroup
	errs    chan error
}

// cpOptions tunes a control plane of a test.
type cpOptions struct {
	// replica, if set, makes it one of several replicas of its cluster:
	// it gossips as CLUSTER.REPLICA and its sink writes only while it
	// holds the Lease.
	replica string
	// fence is the federation's fence period; zero takes the default.
	fence time.Duration
}

func startControlPlane(t *testing.T, api *apiCluster, loc topology.Locality) *controlPlane {
	t.Helper()
	return startControlPlaneWith(t, api, loc, cpOptions{})
}

func startControlPlaneWith(t *testing.T, api *apiCluster, loc topology.Locality, o cpOptions) *controlPlane {
	t.Helper()
	cp := &controlPlane{name: membership.MemberName(loc.Cluster, o.replica), api: api, errs: make(chan error, 4)}
	var err error
	// The control plane runs as its ServiceAccount, with deploy/'s RBAC;
	// the test itself acts as an administrator (cp.admin).
	if cp.admin, err = kube.NewClients(api.cfg); err != nil {
		t.Fatal(err)
	}
	if cp.clients, err = kube.NewClients(asControlPlane(api)); err != nil {
		t.Fatal(err)
	}
	log := testLogger(t).With("cp", cp.name)
	if o.replica != "" {
		if cp.el, err = kube.NewElector(kube.ElectorConfig{
			Client: cp.clients.Kube, Namespace: "fedmesh-system", Identity: o.replica,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
			Logger: log,
		}); err != nil {
			t.Fatal(err)
		}
	}
	cp.src, err = kube.NewSource(kube.SourceConfig{
		Clients: cp.clients, Cluster: loc.Cluster, Region: loc.Region, Zone: loc.Zone,
		Debounce: 20 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Control planes prove their identities to each other with real
	// certificates, over https catalogs.
	tlsCP := prooftest.Default(t).ControlPlane(t, loc.Cluster)
	cp.srv, err = controlplane.New(controlplane.Config{
		Cluster:      loc.Cluster,
		Replica:      o.replica,
		Locality:     loc,
		AdminAddress: "127.0.0.1:0",
		DataDir:      t.TempDir(),
		Source:       cp.src,
		Store:        tlsCP.Store(t, storetest.Config(t, loc.Cluster)),
		Logger:       log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp.stop = cancel
	t.Cleanup(cp.shutdown(t))
	cp.goRun("control plane", func() error { return cp.srv.Run(ctx) })
	poll.Until(t, 30*time.Second, cp.name+" store open", func() error {
		if cp.st = cp.srv.Store(); cp.st == nil {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	cp.mem, err = membership.New(membership.Config{
		NodeName:          loc.Cluster,
		Replica:           o.replica,
		Locality:          loc,
		GatewayAddr:       "127.0.0.1:15443",
		CatalogAddr:       cp.st.ClientURL(),
		BindAddr:          "127.0.0.1",
		Keys:              [][]byte{gossipKey},
		Profile:           membership.ProfileLocal,
		ReconnectInterval: 500 * time.Millisecond,
		Logger:            log,
	})
	if err != nil {
		t.Fatal(err)
	}
	cp.fed, err = federation.New(federation.Config{
		Cluster:        loc.Cluster,
		Locality:       loc,
		GatewayAddress: "127.0.0.1:15443",
		Store:          cp.st,
		Membership:     cp.mem,
		Prover:         tlsCP.Prover,
		PeerTLS:        tlsCP.PeerTLS,
		FencePeriod:    o.fence,
		ProbeInterval:  200 * time.Millisecond,
		MinBackoff:     20 * time.Millisecond,
		MaxBackoff:     500 * time.Millisecond,
		Logger:         log,
	})
	if err != nil {
		t.Fatal(err)
	}
	cp.goRun("federation", func() error { return cp.fed.Run(ctx) })

	cp.sink, err = kube.NewSink(kube.SinkConfig{
		Clients:  cp.clients,
		Cluster:  loc.Cluster,
		Validity: cp.src,
		Elector:  cp.el,
		MinRetry: 20 * time.Millisecond,
		MaxRetry: time.Second,
		Logger:   log,
	})
	if err != nil {
		t.Fatal(err)
	}
	views, unsubscribe := cp.fed.Subscribe()
	cp.goRun("follow", func() error { defer unsubscribe(); cp.sink.Follow(ctx, views); return nil })
	cp.goRun("sink", func() error { return cp.sink.Run(ctx) })
	return cp
}

func (cp *controlPlane) goRun(what string, f func() error) {
	cp.wg.Add(1)
	go func() {
		defer cp.wg.Done()
		if err := f(); err != nil && err != context.Canceled {
			cp.errs <- fmt.Errorf("%s of %s: %w", what, cp.name, err)
		}
	}()
}

// shutdown stops the control plane abruptly, as a killed process stops:
// its membership shuts down without a leave, so peers see it fail. It
// runs once; the test's cleanup calls it again.
func (cp *controlPlane) shutdown(t *testing.T) func() {
	return func() { cp.once.Do(func() { cp.shutdownOnce(t) }) }
}

func (cp *controlPlane) shutdownOnce(t *testing.T) {
	cp.stop()
	cp.wg.Wait()
	if cp.mem != nil {
		if err := cp.mem.Shutdown(); err != nil {
			t.Errorf("membership of %s: %v", cp.name, err)
		}
	}
	close(cp.errs)
	for err := range cp.errs {
		t.Error(err)
	}
}

func (cp *controlPlane) join(t *testing.T, to *controlPlane) {
	t.Helper()
	if _, err := cp.mem.Join([]string{to.mem.Local().Addr}); err != nil {
		t.Fatalf("%s joins %s: %v", cp.name, to.name, err)
	}
}
