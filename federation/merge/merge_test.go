package merge

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/topology"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func httpPort(n int32) catalog.Port {
	return catalog.Port{Name: "http", Protocol: catalog.TCP, AppProtocol: catalog.AppHTTP, Port: n}
}

func export(cluster string, created time.Duration, typ catalog.ServiceType, ports []catalog.Port, eps ...catalog.Endpoint) catalog.Export {
	for i := range eps {
		eps[i].Locality.Cluster = cluster
	}
	return catalog.Export{
		Service: catalog.Service{
			Namespace: "demo", Name: "echo", Type: typ, Ports: ports,
			ExportCreated: t0.Add(created), Cluster: cluster,
		},
		Endpoints: eps,
	}
}

func ep(addr, port string, ready bool) catalog.Endpoint {
	return catalog.Endpoint{Address: addr, Port: 15006, PortName: port, Ready: ready, Serving: ready, ServiceAccount: "echo"}
}

func vep(cluster string, e catalog.Endpoint, healthy bool, reason string) catalog.ViewEndpoint {
	e.Locality.Cluster = cluster
	return catalog.ViewEndpoint{Endpoint: e, Healthy: healthy, HealthReason: reason}
}

func TestMerge(t *testing.T) {
	clusters := map[string]catalog.ClusterInfo{
		"east-1": {Locality: topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"}},
		"east-2": {Locality: topology.Locality{Region: "us-east", Zone: "b", Cluster: "east-2"}, RTT: time.Millisecond},
		"west-1": {Locality: topology.Locality{Region: "us-west", Cluster: "west-1"}, RTT: 40 * time.Millisecond},
	}
	fenced := map[string]catalog.ClusterInfo{
		"east-1": clusters["east-1"],
		"east-2": {Locality: clusters["east-2"].Locality, Fenced: true, FenceReason: "serf reports failed"},
	}
	grpcPort := catalog.Port{Name: "grpc", Protocol: catalog.TCP, AppProtocol: catalog.AppGRPC, Port: 9090}

	tests := []struct {
		name     string
		clusters map[string]catalog.ClusterInfo
		exports  map[string][]catalog.Export
		want     []catalog.ImportedService
	}{
		{
			name:     "no exports",
			clusters: clusters,
			want:     []catalog.ImportedService{},
		},
		{
			name:     "union of agreeing exports",
			clusters: clusters,
			exports: map[string][]catalog.Export{
				"west-1": {export("west-1", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)}, ep("127.0.3.1", "http", true))},
				"east-1": {export("east-1", time.Hour, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)}, ep("127.0.1.2", "http", true), ep("127.0.1.1", "http", false))},
			},
			want: []catalog.ImportedService{{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{httpPort(8080)},
				Clusters: []string{"east-1", "west-1"},
				Endpoints: []catalog.ViewEndpoint{
					vep("east-1", ep("127.0.1.1", "http", false), false, HealthNotReady),
					vep("east-1", ep("127.0.1.2", "http", true), true, ""),
					vep("west-1", ep("127.0.3.1", "http", true), true, ""),
				},
			}},
		},
		{
			name:     "port conflict: oldest wins, matching ports still merged",
			clusters: clusters,
			exports: map[string][]catalog.Export{
				"east-1": {export("east-1", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)}, ep("127.0.1.1", "http", true))},
				"east-2": {export("east-2", time.Minute, catalog.ClusterSetIP, []catalog.Port{httpPort(8080), grpcPort},
					ep("127.0.2.1", "http", true), ep("127.0.2.1", "grpc", true))},
			},
			want: []catalog.ImportedService{{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{httpPort(8080)},
				Clusters: []string{"east-1", "east-2"},
				Conditions: []catalog.Condition{
					{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonPortConflict, Cluster: "east-1",
						Message: "oldest export, from east-1, wins; conflicting exports: east-2 (PortConflict)"},
					{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonPortConflict, Cluster: "east-2",
						Message: "export from east-2 conflicts with the oldest export, from east-1: ports [http:8080/TCP grpc:9090/TCP], not [http:8080/TCP]"},
				},
				Endpoints: []catalog.ViewEndpoint{
					vep("east-1", ep("127.0.1.1", "http", true), true, ""),
					vep("east-2", ep("127.0.2.1", "http", true), true, ""),
				},
			}},
		},
		{
			name:     "port number conflict drops the loser's endpoints of that port",
			clusters: clusters,
			exports: map[string][]catalog.Export{
				"east-1": {export("east-1", time.Minute, catalog.ClusterSetIP, []catalog.Port{httpPort(80)}, ep("127.0.1.1", "http", true))},
				"east-2": {export("east-2", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)}, ep("127.0.2.1", "http", true))},
			},
			want: []catalog.ImportedService{{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{httpPort(8080)},
				Clusters: []string{"east-1", "east-2"},
				Conditions: []catalog.Condition{
					{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonPortConflict, Cluster: "east-1",
						Message: "export from east-1 conflicts with the oldest export, from east-2: ports [http:80/TCP], not [http:8080/TCP]"},
					{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonPortConflict, Cluster: "east-2",
						Message: "oldest export, from east-2, wins; conflicting exports: east-1 (PortConflict)"},
				},
				Endpoints: []catalog.ViewEndpoint{vep("east-2", ep("127.0.2.1", "http", true), true, "")},
			}},
		},
		{
			name:     "type conflict: the loser is not merged; equal times go to the lower name",
			clusters: clusters,
			exports: map[string][]catalog.Export{
				"west-1": {export("west-1", 0, catalog.Headless, []catalog.Port{httpPort(8080)}, ep("127.0.3.1", "http", true))},
				"east-2": {export("east-2", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)}, ep("127.0.2.1", "http", true))},
			},
			want: []catalog.ImportedService{{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{httpPort(8080)},
				Clusters: []string{"east-2"},
				Conditions: []catalog.Condition{
					{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonTypeConflict, Cluster: "east-2",
						Message: "oldest export, from east-2, wins; conflicting exports: west-1 (TypeConflict)"},
					{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonTypeConflict, Cluster: "west-1",
						Message: "export from west-1 conflicts with the oldest export, from east-2: type Headless, not ClusterSetIP"},
				},
				Endpoints: []catalog.ViewEndpoint{vep("east-2", ep("127.0.2.1", "http", true), true, "")},
			}},
		},
		{
			name:     "app protocol conflict keeps all endpoints",
			clusters: clusters,
			exports: map[string][]catalog.Export{
				"east-1": {export("east-1", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)}, ep("127.0.1.1", "http", true))},
				"east-2": {export("east-2", time.Second, catalog.ClusterSetIP,
					[]catalog.Port{{Name: "http", AppProtocol: catalog.AppHTTP2, Port: 8080}}, ep("127.0.2.1", "http", true))},
			},
			want: []catalog.ImportedService{{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{httpPort(8080)},
				Clusters: []string{"east-1", "east-2"},
				Conditions: []catalog.Condition{
					{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonAppProtocolConflict, Cluster: "east-1",
						Message: "oldest export, from east-1, wins; conflicting exports: east-2 (AppProtocolConflict)"},
					{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonAppProtocolConflict, Cluster: "east-2",
						Message: `export from east-2 conflicts with the oldest export, from east-1: port http:8080/TCP appProtocol "http2", not "http"`},
				},
				Endpoints: []catalog.ViewEndpoint{
					vep("east-1", ep("127.0.1.1", "http", true), true, ""),
					vep("east-2", ep("127.0.2.1", "http", true), true, ""),
				},
			}},
		},
		{
			name:     "fenced cluster's endpoints kept, unhealthy with the reason",
			clusters: fenced,
			exports: map[string][]catalog.Export{
				"east-1": {export("east-1", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)}, ep("127.0.1.1", "http", true))},
				"east-2": {export("east-2", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)},
					ep("127.0.2.1", "http", true), catalog.Endpoint{Address: "127.0.2.2", Port: 15006, PortName: "http", Serving: true})},
			},
			want: []catalog.ImportedService{{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{httpPort(8080)},
				Clusters: []string{"east-1", "east-2"},
				Endpoints: []catalog.ViewEndpoint{
					vep("east-1", ep("127.0.1.1", "http", true), true, ""),
					vep("east-2", ep("127.0.2.1", "http", true), false, "cluster east-2 fenced: serf reports failed"),
					vep("east-2", catalog.Endpoint{Address: "127.0.2.2", Port: 15006, PortName: "http", Serving: true}, false, "cluster east-2 fenced: serf reports failed"),
				},
			}},
		},
		{
			name:     "terminating endpoint",
			clusters: clusters,
			exports: map[string][]catalog.Export{
				"east-1": {export("east-1", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(8080)},
					catalog.Endpoint{Address: "127.0.1.1", Port: 15006, PortName: "http", Serving: true})},
			},
			want: []catalog.ImportedService{{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{httpPort(8080)},
				Clusters: []string{"east-1"},
				Endpoints: []catalog.ViewEndpoint{
					vep("east-1", catalog.Endpoint{Address: "127.0.1.1", Port: 15006, PortName: "http", Serving: true}, false, HealthTerminating),
				},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := json.Marshal(tt.exports)
			got := Merge("east-1", tt.clusters, tt.exports)
			if diff := cmp.Diff(tt.want, got.Services); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
			if got.Local != "east-1" {
				t.Errorf("Local = %q, want east-1", got.Local)
			}
			for name := range tt.exports {
				if _, ok := got.Clusters[name]; !ok {
					t.Errorf("cluster %s missing from view.Clusters", name)
				}
			}
			after, _ := json.Marshal(tt.exports)
			if diff := cmp.Diff(string(before), string(after)); diff != "" {
				t.Errorf("Merge changed its input (-before +after):\n%s", diff)
			}
		})
	}
}

func TestMergeClusters(t *testing.T) {
	got := Merge("a", map[string]catalog.ClusterInfo{"a": {RTT: time.Second}}, map[string][]catalog.Export{
		"b": {export("b", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(1)})},
	})
	want := map[string]catalog.ClusterInfo{"a": {Name: "a", RTT: time.Second}, "b": {Name: "b"}}
	if diff := cmp.Diff(want, got.Clusters); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
}

func TestHash(t *testing.T) {
	clusters := map[string]catalog.ClusterInfo{"a": {}, "b": {}}
	exports := map[string][]catalog.Export{
		"a": {export("a", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(80)}, ep("127.0.1.1", "http", true))},
		"b": {export("b", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(80)}, ep("127.0.2.1", "http", true))},
	}
	base := Merge("a", clusters, exports)
	fromB := Merge("b", map[string]catalog.ClusterInfo{"a": {RTT: time.Millisecond}, "b": {}}, exports)
	fromB.Revision = 7
	fencedB := Merge("a", map[string]catalog.ClusterInfo{"a": {}, "b": {Fenced: true, FenceReason: "x"}}, exports)
	oneLess := Merge("a", clusters, map[string][]catalog.Export{"a": exports["a"]})

	tests := []struct {
		name  string
		view  catalog.View
		equal bool
	}{
		{name: "same inputs", view: Merge("a", clusters, exports), equal: true},
		{name: "other viewer, other RTT and revision", view: fromB, equal: true},
		{name: "fenced cluster", view: fencedB, equal: false},
		{name: "missing export", view: oneLess, equal: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Hash(&tt.view) == Hash(&base); got != tt.equal {
				t.Errorf("hash equal = %v, want %v", got, tt.equal)
			}
		})
	}
}

// FuzzMerge feeds Merge exports decoded from arbitrary JSON (what a peer's
// etcd could hold) and checks it neither panics nor depends on input order.
func FuzzMerge(f *testing.F) {
	seed := map[string][]catalog.Export{
		"a": {export("a", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(80)}, ep("127.0.1.1", "http", true))},
		"b": {export("b", time.Second, catalog.Headless, []catalog.Port{httpPort(81), {Name: "x", Port: 9}}, ep("127.0.2.1", "x", false))},
	}
	b, _ := json.Marshal(seed)
	f.Add(b)
	f.Add([]byte(`{"a":[{"service":{"namespace":"n","name":"s","ports":[{"name":"p","port":1},{"name":"p","port":2}]}},{"service":{"namespace":"n","name":"s"}}]}`))
	f.Add([]byte(`{"":[{"endpoints":[{"portName":"nope"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var exports map[string][]catalog.Export
		if err := json.Unmarshal(data, &exports); err != nil {
			return
		}
		v1 := Merge("a", nil, exports)
		// Reverse each cluster's order of distinct keys: the view must not change.
		rev := make(map[string][]catalog.Export, len(exports))
		for c, es := range exports {
			if hasDupKeys(es) {
				rev[c] = es
				continue
			}
			r := make([]catalog.Export, len(es))
			for i := range es {
				r[len(es)-1-i] = es[i]
			}
			rev[c] = r
		}
		v2 := Merge("a", nil, rev)
		if Hash(&v1) != Hash(&v2) {
			t.Fatalf("view depends on the order of exports:\n%s", cmp.Diff(v1, v2))
		}
		for _, s := range v1.Services {
			if len(s.Clusters) == 0 {
				t.Fatalf("service %s merged with no cluster", s.Key())
			}
		}
	})
}

func hasDupKeys(es []catalog.Export) bool {
	seen := map[catalog.ServiceKey]bool{}
	for i := range es {
		k := es[i].Service.Key()
		if seen[k] {
			return true
		}
		seen[k] = true
	}
	return false
}

// TestMergeLocalClusterIPs: the merged service keeps the local cluster's
// ClusterIPs only (a peer's may overlap the local Service range), and
// none when the local export lost on type and is not merged in.
func TestMergeLocalClusterIPs(t *testing.T) {
	withIPs := func(e catalog.Export, ips ...string) catalog.Export {
		e.Service.ClusterIPs = ips
		return e
	}
	ports := []catalog.Port{httpPort(80)}
	tests := []struct {
		name    string
		local   string
		exports map[string][]catalog.Export
		want    []string
	}{
		{
			name:  "local and peer export",
			local: "east-1",
			exports: map[string][]catalog.Export{
				"east-1": {withIPs(export("east-1", time.Minute, catalog.ClusterSetIP, ports), "10.96.0.10", "fd00:96::10")},
				"west-1": {withIPs(export("west-1", 0, catalog.ClusterSetIP, ports), "10.96.0.99")},
			},
			want: []string{"10.96.0.10", "fd00:96::10"},
		},
		{
			name:  "only a peer exports",
			local: "east-1",
			exports: map[string][]catalog.Export{
				"west-1": {withIPs(export("west-1", 0, catalog.ClusterSetIP, ports), "10.96.0.99")},
			},
		},
		{
			name:  "local export loses on type",
			local: "east-1",
			exports: map[string][]catalog.Export{
				"east-1": {withIPs(export("east-1", time.Minute, catalog.ClusterSetIP, ports), "10.96.0.10")},
				"west-1": {export("west-1", 0, catalog.Headless, ports)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Merge(tt.local, nil, tt.exports)
			if len(v.Services) != 1 {
				t.Fatalf("got %d services, want 1", len(v.Services))
			}
			if diff := cmp.Diff(tt.want, v.Services[0].LocalClusterIPs); diff != "" {
				t.Errorf("LocalClusterIPs (-want +got):\n%s", diff)
			}
		})
	}
}
