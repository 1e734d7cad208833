package proxy

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// An upstream whose service is unchanged in a new snapshot holds the new
// snapshot's Service, not the old one's: the proxy keeps no snapshot
// alive but the current.
func TestUpdateHoldsTheNewSnapshotsService(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Cluster: "east-1", Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	b := config.NewBuilder(spiffeid.RequireTrustDomainFromString("fed.test"))
	cluster := func(name string) map[string]proto.Message {
		c := meshtest.OutboundCluster(naming.ServicePort{Namespace: "demo", Name: name, Port: 8080}, meshtest.ClusterOpts{HTTP: true})
		return map[string]proto.Message{c.GetName(): c}
	}
	snap1, err := b.Apply(xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "1", Resources: cluster("a")})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(snap1); err != nil {
		t.Fatal(err)
	}
	name := naming.ServicePort{Namespace: "demo", Name: "a", Port: 8080}.OutboundCluster()
	if p.upstream(name) == nil { // made on first use
		t.Fatalf("no upstream for %s", name)
	}
	// Another service arrives: a is built again, unchanged.
	snap2, err := b.Apply(xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "2", Resources: cluster("b"), Incremental: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(snap2); err != nil {
		t.Fatal(err)
	}
	s1, _ := snap1.Cluster(name)
	s2, _ := snap2.Cluster(name)
	if s1 == nil || s2 == nil || s1 == s2 || s1.Version != s2.Version {
		t.Fatalf("the test needs two copies of one unchanged service: %p %p", s1, s2)
	}
	u := p.upstream(name)
	if u == nil {
		t.Fatalf("no upstream for %s", name)
	}
	if got := u.svc.Load(); got != s2 {
		t.Errorf("the upstream holds %p, the old snapshot's %p; want the new snapshot's %p", got, s1, s2)
	}
}

// A service's upstream is made on its first request, once however many
// requests come first at the same time, and a snapshot without the
// service retires it.
func TestUpstreamMadeOnFirstUse(t *testing.T) {
	p, err := New(Config{Cluster: "east-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	b := config.NewBuilder(spiffeid.RequireTrustDomainFromString("fed.test"))
	res := map[string]proto.Message{}
	for _, name := range []string{"a", "b", "c"} {
		c := meshtest.OutboundCluster(naming.ServicePort{Namespace: "demo", Name: name, Port: 8080}, meshtest.ClusterOpts{HTTP: true})
		res[c.GetName()] = c
	}
	snap1, err := b.Apply(xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "1", Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(snap1); err != nil {
		t.Fatal(err)
	}
	if n := len(*p.cur.Load()); n != 0 {
		t.Fatalf("%d upstreams before any request, want 0", n)
	}
	if n := len(p.Balancers()); n != 3 {
		t.Errorf("Balancers() has %d services, want 3 (made or not)", n)
	}
	name := naming.ServicePort{Namespace: "demo", Name: "a", Port: 8080}.OutboundCluster()
	got := make([]*upstream, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i] = p.upstream(name) })
	}
	wg.Wait()
	for i, u := range got {
		if u == nil || u != got[0] {
			t.Fatalf("first requests got upstreams %p and %p (request %d), want one", got[0], u, i)
		}
	}
	if n := len(*p.cur.Load()); n != 1 {
		t.Errorf("%d upstreams after requests to one service, want 1", n)
	}
	if u := p.upstream("outbound|8080||nope.demo.svc.clusterset.local"); u != nil {
		t.Errorf("an unknown cluster has an upstream")
	}
	delete(res, name)
	snap2, err := b.Apply(xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "2", Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(snap2); err != nil {
		t.Fatal(err)
	}
	if u := p.upstream(name); u != nil {
		t.Errorf("a service gone from the snapshot still has an upstream")
	}
	if n := len(*p.cur.Load()); n != 0 {
		t.Errorf("%d upstreams after the service went, want 0", n)
	}
}
