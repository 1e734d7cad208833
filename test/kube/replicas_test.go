package kube

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/topology"
)

// sinkWrites sums fedmesh_kube_sink_writes_total in reg.
func sinkWrites(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "fedmesh_kube_sink_writes_total" {
			continue
		}
		for _, m := range mf.Metric {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// TestTwoReplicasOneWriter runs two control plane replicas' sinks in one
// cluster, with leader election, fed the same views: only the leader
// writes; when it stops, the other takes over and writes what changed.
func TestTwoReplicasOneWriter(t *testing.T) {
	c, _ := clusters(t)
	clients, err := kube.NewClients(asControlPlane(c))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kube.NewClients(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "replicas"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	view := func(names ...string) *catalog.View {
		v := &catalog.View{Local: "east-1"}
		for _, n := range names {
			v.Services = append(v.Services, catalog.ImportedService{
				Namespace: "replicas", Name: n, Type: catalog.ClusterSetIP, Clusters: []string{"west-1"},
				Ports: []catalog.Port{{Name: "http", Port: 80}},
			})
		}
		return v
	}

	type replica struct {
		id     string
		sink   *kube.Sink
		reg    *prometheus.Registry
		el     *kube.Elector
		cancel context.CancelFunc
		done   chan error
	}
	start := func(id string) *replica {
		r := &replica{id: id, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
		r.el, err = kube.NewElector(kube.ElectorConfig{
			Client: clients.Kube, Namespace: "fedmesh-system", Name: "fedmesh-controlplane", Identity: id,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
			Logger: testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		r.sink, err = kube.NewSink(kube.SinkConfig{
			Clients: clients, Cluster: "east-1", Namespace: "replicas", Elector: r.el,
			MinRetry: 20 * time.Millisecond, MaxRetry: time.Second, Logger: testLogger(t), Registerer: r.reg,
		})
		if err != nil {
			t.Fatal(err)
		}
		r.sink.Update(view("one"))
		var rctx context.Context
		rctx, r.cancel = context.WithCancel(context.Background())
		go func() { r.done <- r.sink.Run(rctx) }()
		t.Cleanup(func() {
			r.cancel()
			if err := <-r.done; err != nil {
				t.Errorf("sink %s: %v", id, err)
			}
		})
		return r
	}
	r1, r2 := start("cp-0"), start("cp-1")
	imported := func(name string) func() error {
		return func() error {
			_, err := admin.MCS.MulticlusterV1alpha1().ServiceImports("replicas").Get(ctx, name, metav1.GetOptions{})
			return err
		}
	}
	poll.Until(t, 30*time.Second, "ServiceImport one", imported("one"))

	var leader, follower *replica
	poll.Until(t, 10*time.Second, "one leader", func() error {
		switch {
		case r1.el.IsLeader() && !r2.el.IsLeader():
			leader, follower = r1, r2
		case r2.el.IsLeader() && !r1.el.IsLeader():
			leader, follower = r2, r1
		default:
			return fmt.Errorf("cp-0 leads %t, cp-1 leads %t", r1.el.IsLeader(), r2.el.IsLeader())
		}
		return nil
	})
	if n := sinkWrites(t, follower.reg); n != 0 {
		t.Errorf("the follower %s wrote %v times", follower.id, n)
	}
	if n := sinkWrites(t, leader.reg); n == 0 {
		t.Errorf("the leader %s wrote nothing", leader.id)
	}

	// The leader stops (and releases the Lease); the follower takes over
	// and writes the next view.
	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Errorf("sink %s: %v", leader.id, err)
	}
	leader.done <- nil // for its cleanup
	follower.sink.Update(view("one", "two"))
	poll.Until(t, 30*time.Second, "ServiceImport two written by "+follower.id, imported("two"))
	if !follower.el.IsLeader() {
		t.Errorf("%s wrote but does not lead", follower.id)
	}
}

// TestLeaderKilledUnderLoad runs east-1 as two control plane replicas
// against a real kube-apiserver, with leader election, beside west-1.
// The leader, also the replica west-1 replicates east-1 from, is killed
// (gossip sees it fail) while west-1 is asked for east-1's endpoints in
// a bounded loop: every answer has east-1's endpoints healthy and east-1
// never fenced; the other replica takes the Lease and writes, and west-1
// follows it.
func TestLeaderKilledUnderLoad(t *testing.T) {
	apiA, apiB := clusters(t)
	east := topology.Locality{Region: "us-east", Zone: "us-east-1z", Cluster: "east-1"}
	west := topology.Locality{Region: "us-west", Zone: "us-west-1z", Cluster: "west-1"}
	const fence = 5 * time.Second
	r0 := startControlPlaneWith(t, apiA, east, cpOptions{replica: "cp-0", fence: fence})
	poll.Until(t, 30*time.Second, "cp-0 leads", func() error {
		if !r0.el.IsLeader() {
			return errors.New("cp-0 does not lead yet")
		}
		return nil
	})
	w := startControlPlaneWith(t, apiB, west, cpOptions{fence: fence})
	w.join(t, r0)

	a := objects{t: t, c: r0.admin}
	b := objects{t: t, c: w.admin}
	a.namespace(ns)
	b.namespace(ns)
	a.node("node-a1", "us-east", "us-east-1a")
	a.pod("rep-echo-1", "echo", "node-a1")
	a.service("rep-echo", 8080, 9080)
	a.slice("rep-echo", 9080, "node-a1", map[string]string{"10.1.7.5": "rep-echo-1"})
	a.export("rep-echo")

	// healthyEast answers a request of a west-1 client for rep-echo: the
	// endpoints west-1's control plane gives it, which must include a
	// healthy one of east-1, and east-1 must not be fenced.
	healthyEast := func() error {
		v := w.fed.View()
		if v == nil {
			return errors.New("west-1 has no view")
		}
		if ci := v.Clusters["east-1"]; ci.Fenced {
			return fmt.Errorf("west-1 fences east-1: %s", ci.FenceReason)
		}
		for _, s := range v.Services {
			if s.Namespace != ns || s.Name != "rep-echo" {
				continue
			}
			for _, ep := range s.Endpoints {
				if ep.Locality.Cluster == "east-1" && ep.Healthy {
					return nil
				}
			}
			return fmt.Errorf("west-1 has no healthy endpoint of east-1's rep-echo: %+v", s.Endpoints)
		}
		return errors.New("west-1 does not import rep-echo")
	}
	// west-1 follows the replica it proved first, cp-0, as long as it
	// is alive: cp-1 starts once west-1 replicates cp-0.
	followsAt := func(url string, replicas int) func() error {
		return func() error {
			st, err := w.fed.Status(context.Background())
			if err != nil {
				return err
			}
			for _, m := range st.Members {
				if m.Name == "east-1" {
					if m.CatalogAddress != url || len(m.Replicas) != replicas || !m.Connected {
						return fmt.Errorf("west-1 follows east-1 at %s (connected %t) with replicas %v, want %s and %d replicas", m.CatalogAddress, m.Connected, m.Replicas, url, replicas)
					}
					return nil
				}
			}
			return errors.New("east-1 is no member of west-1")
		}
	}
	poll.Until(t, convergence, "west-1 follows cp-0", followsAt(r0.st.ClientURL(), 1))
	r1 := startControlPlaneWith(t, apiA, east, cpOptions{replica: "cp-1", fence: fence})
	r1.join(t, r0)
	poll.Until(t, convergence, "west-1 imports rep-echo from east-1's leader cp-0", func() error {
		if err := healthyEast(); err != nil {
			return err
		}
		return followsAt(r0.st.ClientURL(), 2)()
	})
	for _, r := range []*controlPlane{r0, r1} {
		poll.Until(t, convergence, r.name+" imports west-1's view", func() error {
			if v := r.fed.View(); v == nil || v.Clusters["west-1"].GatewayAddress == "" {
				return errors.New("no west-1 in the view")
			}
			return nil
		})
	}
	if r1.el.IsLeader() {
		t.Fatal("cp-1 leads beside cp-0")
	}

	// The load: west-1's clients ask for rep-echo every 20ms, bounded in
	// count and time, while the leader is killed and east-1 changes.
	type result struct {
		ok, failed int
		first      error
	}
	done := make(chan result)
	stop := make(chan struct{})
	go func() {
		var r result
		deadline := time.Now().Add(2 * time.Minute)
		for i := 0; i < 6000 && time.Now().Before(deadline); i++ {
			if err := healthyEast(); err != nil {
				r.failed++
				if r.first == nil {
					r.first = err
				}
			} else {
				r.ok++
			}
			select {
			case <-stop:
				done <- r
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		done <- r
	}()

	r0.shutdown(t)()
	a.pod("rep-echo-2", "echo", "node-a1")
	a.service("rep-two", 8080, 9080)
	a.slice("rep-two", 9080, "node-a1", map[string]string{"10.1.7.6": "rep-echo-2"})
	a.export("rep-two")
	poll.Until(t, convergence, "cp-1 leads and writes rep-two's ServiceImport in east-1", func() error {
		if !r1.el.IsLeader() {
			return errors.New("cp-1 does not lead")
		}
		_, _, err := a.importOf("rep-two")
		return err
	})
	poll.Until(t, convergence, "west-1 imports rep-two from cp-1", func() error {
		if err := followsAt(r1.st.ClientURL(), 1)(); err != nil {
			return err
		}
		_, _, err := b.importOf("rep-two")
		return err
	})
	// The load goes on for a fence period after the kill and the
	// takeover, so that a fence of east-1 would show in it.
	<-time.After(fence + time.Second)
	close(stop)
	r := <-done
	t.Logf("west-1 answered %d requests for east-1's rep-echo, %d failed", r.ok, r.failed)
	if r.failed != 0 {
		t.Errorf("%d of %d requests failed; first: %v", r.failed, r.ok+r.failed, r.first)
	}
	if r.ok == 0 {
		t.Error("no request answered")
	}
}
