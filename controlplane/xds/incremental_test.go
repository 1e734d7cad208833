package xds

import (
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/topology"
)

// incrementalNodes are one node of every role, the sidecar serving echo
// so that it has an inbound side.
func incrementalNodes() []Node {
	side := sidecarNode("east-1", locEast1)
	side.Workload = "echo-127.0.1.1"
	side.ServiceAccount = "echo"
	return []Node{
		side,
		{ID: "sidecar~east-1~zone-b", Role: naming.RoleSidecar, Cluster: "east-1", Namespace: "demo", ServiceAccount: "client",
			Workload: "client", Locality: topology.Locality{Region: "us-east", Zone: "b", Cluster: "east-1"}},
		{ID: "gateway~east-1", Role: naming.RoleGateway, Cluster: "east-1", Locality: locEast1},
		{ID: "grpc", Role: naming.RoleProxyless, Cluster: "east-1", Namespace: "demo", ServiceAccount: "client", Locality: locEast1},
	}
}

// TestIncrementalBuildMatchesFresh builds a view, then a changed view
// from the first generator (reusing unchanged services) and from
// scratch: every node must get the same resources, versions and reports.
func TestIncrementalBuildMatchesFresh(t *testing.T) {
	tests := []struct {
		name   string
		change func(*catalog.View)
	}{
		{name: "no change", change: func(*catalog.View) {}},
		{name: "endpoint health", change: func(v *catalog.View) { v.Services[0].Endpoints[1].Healthy = true }},
		{name: "endpoint removed", change: func(v *catalog.View) { v.Services[0].Endpoints = v.Services[0].Endpoints[1:] }},
		{name: "identity changed", change: func(v *catalog.View) { v.Services[0].Endpoints[3].ServiceAccount = "other" }},
		{name: "port added", change: func(v *catalog.View) {
			v.Services[1].Ports = append(v.Services[1].Ports, catalog.Port{Name: "admin", Port: 9090, AppProtocol: catalog.AppHTTP})
		}},
		{name: "service added", change: func(v *catalog.View) {
			s := v.Services[0]
			s.Name = "echo2"
			v.Services = append(v.Services, s)
		}},
		{name: "service removed", change: func(v *catalog.View) { v.Services = v.Services[:1] }},
		{name: "gateway moved", change: func(v *catalog.View) {
			c := v.Clusters["west-1"]
			c.GatewayAddress = "127.0.0.23:15443"
			v.Clusters["west-1"] = c
		}},
		{name: "rtt measured", change: func(v *catalog.View) {
			c := v.Clusters["east-2"]
			c.RTT = 30 * time.Millisecond
			v.Clusters["east-2"] = c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g0, err := NewGenerator(DefaultSettings(testTD), testView("east-1"))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range incrementalNodes() {
				if _, err := g0.Build(n, nil); err != nil {
					t.Fatal(err)
				}
			}
			v1 := testView("east-1", tt.change)
			inc, err := g0.next(v1)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := NewGenerator(DefaultSettings(testTD), testView("east-1", tt.change))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range incrementalNodes() {
				want, err := fresh.Build(n, nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := inc.Build(n, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, typ := range typeURLs {
					if diff := cmp.Diff(want.Snapshot.GetVersion(typ), got.Snapshot.GetVersion(typ)); diff != "" {
						t.Errorf("%s %s version (-fresh +incremental):\n%s", n.ID, typ, diff)
					}
					if diff := cmp.Diff(want.Snapshot.GetResources(typ), got.Snapshot.GetResources(typ), protocmp.Transform()); diff != "" {
						t.Errorf("%s %s resources (-fresh +incremental):\n%s", n.ID, typ, diff)
					}
				}
				if diff := cmp.Diff(want.Clusters, got.Clusters); diff != "" {
					t.Errorf("%s reports (-fresh +incremental):\n%s", n.ID, diff)
				}
			}
		})
	}
}

// TestUnchangedServicesShared checks what the incremental build and the
// grouping share: an unchanged service keeps its marshalled assignment
// across views, and two nodes of one locality hold the same bytes.
func TestUnchangedServicesShared(t *testing.T) {
	nodes := incrementalNodes()
	g0, err := NewGenerator(DefaultSettings(testTD), testView("east-1"))
	if err != nil {
		t.Fatal(err)
	}
	b0, err := g0.Build(nodes[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	g1, err := g0.next(testView("east-1", func(v *catalog.View) { v.Services[0].Endpoints[1].Healthy = true }))
	if err != nil {
		t.Fatal(err)
	}
	b1, err := g1.Build(nodes[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	other := nodes[0]
	other.ID, other.Workload = "sidecar~east-1~other", "client"
	b2, err := g1.Build(other, nil)
	if err != nil {
		t.Fatal(err)
	}
	const store = "outbound|5432||store.demo.svc.clusterset.local"
	eds := func(b *Built, name string) *resource { return b.Snapshot.sets[typeEndpoint].lookup(name) }
	cds := func(b *Built, name string) *resource { return b.Snapshot.sets[typeCluster].lookup(name) }
	got := map[string]bool{
		"unchanged service keeps its assignment":  eds(b0, store) == eds(b1, store),
		"changed service gets a new assignment":   eds(b0, echoCluster) != eds(b1, echoCluster),
		"clusters kept when only health changed":  cds(b0, echoCluster) == cds(b1, echoCluster),
		"nodes of one locality share assignments": eds(b1, echoCluster).any == eds(b2, echoCluster).any,
		"nodes share outbound clusters":           cds(b1, echoCluster).any == cds(b2, echoCluster).any,
	}
	want := map[string]bool{}
	for k := range got {
		want[k] = true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sharing (-want +got):\n%s", diff)
	}
	if b0.Snapshot.GetVersion(resourcev3.ClusterType) != b1.Snapshot.GetVersion(resourcev3.ClusterType) {
		t.Error("cluster version changed with an endpoint's health")
	}
}
