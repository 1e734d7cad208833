package config

import (
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// The Builder and its snapshots share one copy of a cluster's endpoints,
// filled with the cluster's SNI, while a gateway entry keeps its own.
func TestEndpointsSharedWithSNI(t *testing.T) {
	b := NewBuilder(spiffeid.RequireTrustDomainFromString("fed.test"))
	sp := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	gwSNI := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}.SNI()
	apply := func(typ, version string, m proto.Message, name string) *Snapshot {
		t.Helper()
		snap, err := b.Apply(xdsclient.Update{TypeURL: typ, Version: version, Resources: map[string]proto.Message{name: m}, Incremental: true})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	c := meshtest.OutboundCluster(sp, meshtest.ClusterOpts{HTTP: true})
	apply(xdsclient.ClusterType, "1", c, c.GetName())
	cla := meshtest.Assignment(sp,
		meshtest.Endpoint{Addr: "127.0.0.1:9000", Cluster: "east-1", Healthy: true},
		meshtest.Endpoint{Addr: "127.0.0.2:15443", Cluster: "west-1", SNI: gwSNI, Healthy: true})
	snap1 := apply(xdsclient.EndpointType, "1", cla, c.GetName())
	svc1, _ := snap1.Cluster(c.GetName())
	if svc1 == nil || len(svc1.Endpoints) != 2 {
		t.Fatalf("snapshot service %+v", svc1)
	}
	for _, ep := range svc1.Endpoints {
		if ep.SNI != svc1.SNI && !ep.Remote {
			t.Errorf("local endpoint %s has SNI %q, want the cluster's %q", ep.Address, ep.SNI, svc1.SNI)
		}
		if ep.Remote && ep.SNI != gwSNI {
			t.Errorf("gateway entry %s has SNI %q, want its own %q", ep.Address, ep.SNI, gwSNI)
		}
	}
	if kept := b.state.endpoints[c.GetName()]; &kept[0] != &svc1.Endpoints[0] {
		t.Error("the Builder keeps its own copy of the endpoints besides the snapshot's")
	}
	// An unrelated update builds again with the same endpoints.
	other := meshtest.OutboundCluster(naming.ServicePort{Namespace: "demo", Name: "other", Port: 8080}, meshtest.ClusterOpts{HTTP: true})
	snap2 := apply(xdsclient.ClusterType, "2", other, other.GetName())
	svc2, _ := snap2.Cluster(c.GetName())
	if &svc2.Endpoints[0] != &svc1.Endpoints[0] {
		t.Error("a build with unchanged endpoints copied them again")
	}
}
