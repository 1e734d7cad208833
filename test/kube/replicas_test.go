package kube

import (
	"context"
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
