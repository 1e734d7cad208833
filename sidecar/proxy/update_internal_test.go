package proxy

import (
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
	// Another service arrives: a is built again, unchanged.
	snap2, err := b.Apply(xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "2", Resources: cluster("b"), Incremental: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(snap2); err != nil {
		t.Fatal(err)
	}
	name := naming.ServicePort{Namespace: "demo", Name: "a", Port: 8080}.OutboundCluster()
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
