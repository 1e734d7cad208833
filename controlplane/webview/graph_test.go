package webview

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation"
	"github.com/fedmesh/fedmesh/topology"
)

func TestBuild(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p99 := 0.004
	in := Input{
		Now: now,
		Status: federation.Status{Cluster: "east-1", Members: []federation.MemberStatus{
			{Name: "east-1", Local: true, State: "alive", Region: "us-east", Zone: "a", Connected: true, Exports: 1},
			{Name: "east-2", State: "alive", Region: "us-east", Zone: "b", Connected: true, RTT: federation.Duration(2 * time.Millisecond), Exports: 1},
			{Name: "west-1", State: "failed", Region: "us-west", Zone: "a", Fenced: true, FenceReason: "serf reports the control plane failed"},
		}},
		View: &catalog.View{Revision: 7, Local: "east-1",
			Clusters: map[string]catalog.ClusterInfo{
				"east-1": {Name: "east-1", GatewayAddress: "127.0.0.11:15443"},
				"east-2": {Name: "east-2", GatewayAddress: "127.0.0.12:15443"},
			},
			Services: []catalog.ImportedService{{Namespace: "demo", Name: "echo", Clusters: []string{"east-1", "east-2", "west-1"},
				Endpoints: []catalog.ViewEndpoint{
					{Endpoint: catalog.Endpoint{Locality: topology.Locality{Cluster: "east-1"}}, Healthy: false},
					{Endpoint: catalog.Endpoint{Locality: topology.Locality{Cluster: "east-2"}}, Healthy: true},
					{Endpoint: catalog.Endpoint{Locality: topology.Locality{Cluster: "east-2"}}, Healthy: true},
					{Endpoint: catalog.Endpoint{Locality: topology.Locality{Cluster: "west-1"}}, Healthy: false},
				}}},
		},
		Traffic: Traffic{WindowSeconds: 10,
			Edges: map[EdgeKey]EdgeRate{
				{"east-1", "east-2"}: {EdgeKey: EdgeKey{"east-1", "east-2"}, Requests: 90, RequestRate: 9, P99: p99},
				{"east-1", "east-1"}: {EdgeKey: EdgeKey{"east-1", "east-1"}, Requests: 10, RequestRate: 1, ErrorRate: 1, ErrorRatio: 1, P99: math.NaN()},
			},
			Gateway: GatewayTraffic{Targets: 1, Up: 1, Scraped: true, Active: 3, ConnectionRate: 0.5},
			Targets: []TargetState{{Target: Target{Kind: KindGateway, Node: "gw", Address: "127.0.0.11:15021"}, Up: true}},
		},
		Proxies: []ProxyNode{{ID: "sidecar~127.0.1.100~client.demo", Role: "sidecar", Workload: "client", Namespace: "demo"}},
	}
	want := Graph{
		Cluster: "east-1", Time: now, WindowSeconds: 10, ViewRevision: 7,
		Clusters: []ClusterNode{
			{Name: "east-1", Local: true, Region: "us-east", Zone: "a", State: "alive", Connected: true, Exports: 1,
				Gateway:  Gateway{Address: "127.0.0.11:15443", Observed: true, Up: true, ActiveConnections: 3, ConnectionRate: 0.5},
				Failover: &Failover{State: FailoverActive, LocalShare: 0.1, ServedBy: []Share{{"east-2", 0.9}, {"east-1", 0.1}}}},
			{Name: "east-2", Region: "us-east", Zone: "b", State: "alive", Connected: true, RTTSeconds: 0.002, Exports: 1,
				Gateway: Gateway{Address: "127.0.0.12:15443"}},
			{Name: "west-1", Region: "us-west", Zone: "a", State: "failed", Fenced: true, FenceReason: "serf reports the control plane failed"},
		},
		Edges: []Edge{
			{From: "east-1", To: "east-1", Requests: 10, RequestRate: 1, ErrorRate: 1, ErrorRatio: 1},
			{From: "east-1", To: "east-2", Requests: 90, RequestRate: 9, P99Seconds: &p99},
		},
		Services: []Service{{Name: "demo/echo", Clusters: []string{"east-1", "east-2", "west-1"}, Healthy: map[string]int{"east-1": 0, "east-2": 2, "west-1": 0}}},
		Proxies:  in.Proxies,
		Targets:  in.Traffic.Targets,
	}
	if d := cmp.Diff(want, Build(in)); d != "" {
		t.Errorf("Build (-want +got):\n%s", d)
	}
}

func TestFailover(t *testing.T) {
	tests := []struct {
		name  string
		edges []Edge
		want  *Failover
	}{
		{name: "no traffic", want: &Failover{State: FailoverIdle}},
		{name: "all local", edges: []Edge{{From: "a", To: "a", Requests: 50}, {From: "b", To: "c", Requests: 9}},
			want: &Failover{State: FailoverLocal, LocalShare: 1, ServedBy: []Share{{"a", 1}}}},
		{name: "all elsewhere", edges: []Edge{{From: "a", To: "c", Requests: 50}},
			want: &Failover{State: FailoverActive, LocalShare: 0, ServedBy: []Share{{"c", 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, failover("a", tt.edges)); d != "" {
				t.Errorf("failover (-want +got):\n%s", d)
			}
		})
	}
}
