package xds

import (
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/out from what the build makes now")

// TestGolden renders whole snapshots for the nodes of each case and
// compares them with testdata/out/NAME.yaml, so that a change to what
// proxies receive shows in review as a diff of that file. Regenerate with
// go test ./controlplane/xds -run TestGolden -update.
func TestGolden(t *testing.T) {
	withWorkload := func(v *catalog.View) {
		// west-1's echo replica 127.0.3.1 is the node's own workload.
		v.Services[0].Endpoints[3].Workload = "echo"
	}
	secrets := &Secrets{ChainPEM: []byte("CHAIN"), KeyPEM: []byte("KEY"), BundlePEM: []byte("BUNDLE")}
	tests := []struct {
		name string
		view *catalog.View
		node Node
		sec  *Secrets
		// policies names testdata/in/POLICIES.yaml, the
		// AuthorizationPolicies in force.
		policies string
		// traffic names testdata/in/TRAFFIC.yaml, the local traffic
		// set (consumer routes).
		traffic string
	}{
		{name: "sidecar-east-1", view: testView("east-1"), node: sidecarNode("east-1", locEast1), sec: secrets},
		{
			name: "sidecar-west-1-inbound",
			view: testView("west-1", withWorkload),
			node: Node{ID: "echo~west-1", Role: naming.RoleSidecar, Cluster: "west-1", Namespace: "demo",
				ServiceAccount: "echo", Workload: "echo", Locality: locWest1, AppPorts: map[string]int32{"http": 9080}},
			sec: secrets,
		},
		{name: "gateway-west-1", view: testView("west-1"), node: Node{ID: "gw~west-1", Role: naming.RoleGateway, Cluster: "west-1", Locality: locWest1}},
		{name: "proxyless-east-2", view: testView("east-2"), node: Node{ID: "grpc~east-2", Role: naming.RoleProxyless, Cluster: "east-2", Namespace: "demo", ServiceAccount: "client"}},
		{name: "sidecar-east-1-echo-down", view: testView("east-1", echoDown), node: sidecarNode("east-1", locEast1)},
		{name: "sidecar-west-1-authz", view: testView("west-1", withAuthzWorkload), node: authzNode(), policies: "sidecar-west-1-authz"},
		// Producer routes and policies of echo (published by west-1)
		// as an east-1 sidecar and a proxyless client receive them.
		{name: "sidecar-east-1-routes", view: testView("east-1", withProducerRoutes(t, "routes-producer")), node: sidecarNode("east-1", locEast1)},
		{name: "proxyless-east-2-routes", view: testView("east-2", withProducerRoutes(t, "routes-producer")),
			node: Node{ID: "grpc~east-2", Role: naming.RoleProxyless, Cluster: "east-2", Namespace: "demo", ServiceAccount: "client"}},
		// A consumer route of namespace shop replaces the producer
		// routes for shop's callers only.
		{name: "sidecar-east-1-consumer", view: testView("east-1", withProducerRoutes(t, "routes-producer")), traffic: "routes-consumer",
			node: Node{ID: "shop~east-1", Role: naming.RoleSidecar, Cluster: "east-1", Namespace: "shop", ServiceAccount: "shop", Workload: "shop", Locality: locEast1}},
		// TelemetryPolicies (mesh-wide, namespace demo, and one
		// targeting echo's workloads) in every HCM, outbound and
		// inbound, of echo's sidecar.
		// RateLimitPolicies of echo and store (both served by the
		// node's workload): local limits, a quota's default share and a
		// TCP connection limit.
		{
			name: "sidecar-west-1-ratelimit", traffic: "ratelimit",
			view: testView("west-1", withWorkload, func(v *catalog.View) {
				for i := range v.Services {
					if v.Services[i].Name == "store" {
						v.Services[i].Endpoints[0].Workload = "echo"
					}
				}
			}),
			node: Node{ID: "echo~west-1", Role: naming.RoleSidecar, Cluster: "west-1", Namespace: "demo",
				ServiceAccount: "echo", Workload: "echo", Locality: locWest1, AppPorts: map[string]int32{"http": 9080, "tcp": 5432}},
		},
		// The local ClusterIPs of echo (HTTP: virtual host domains
		// after the ClusterSetIP's) and store (opaque TCP: the outbound
		// listener's filter chain match), IPv4 and IPv6.
		{name: "sidecar-east-1-clusterip", view: testView("east-1", func(v *catalog.View) {
			for i := range v.Services {
				switch v.Services[i].Name {
				case "echo":
					v.Services[i].LocalClusterIPs = []string{"10.96.0.10", "fd00:96::10"}
				case "store":
					v.Services[i].LocalClusterIPs = []string{"10.96.0.20"}
				}
			}
		}), node: sidecarNode("east-1", locEast1)},
		{
			name: "sidecar-west-1-telemetry", view: testView("west-1", withWorkload), traffic: "telemetry",
			node: Node{ID: "echo~west-1", Role: naming.RoleSidecar, Cluster: "west-1", Namespace: "demo",
				ServiceAccount: "echo", Workload: "echo", Locality: locWest1, AppPorts: map[string]int32{"http": 9080}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var policies []policy.AuthorizationPolicy
			if tt.policies != "" {
				policies = loadPolicies(t, tt.policies)
			}
			var tr policy.Traffic
			if tt.traffic != "" {
				tr = loadTraffic(t, tt.traffic)
			}
			g, err := NewGeneratorWithTraffic(DefaultSettings(testTD), tt.view, policies, tr)
			if err != nil {
				t.Fatal(err)
			}
			b, err := g.Build(tt.node, tt.sec)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if err := b.Snapshot.Consistent(); err != nil {
				t.Fatalf("snapshot not consistent: %v", err)
			}
			// Every resource passes Envoy's validation rules, the
			// configs packed inside it included.
			for typ := range typeNames {
				for _, r := range b.Snapshot.GetResources(typ) {
					validateDeep(t, r)
				}
			}
			got := renderSnapshot(t, b)
			path := filepath.Join("testdata", "out", tt.name+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// renderSnapshot writes a snapshot as YAML: per type, its resources in
// name order, each as protojson, and the endpoint explanations that
// /debug/endpoints serves.
func renderSnapshot(t *testing.T, b *Built) []byte {
	t.Helper()
	out := map[string][]any{}
	for typ, label := range typeNames {
		items := b.Snapshot.GetResources(typ)
		for _, name := range slices.Sorted(maps.Keys(items)) {
			raw, err := protojson.Marshal(items[name])
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			out[label] = append(out[label], v)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(b.Clusters)) {
		out["explain"] = append(out["explain"], b.Clusters[name])
	}
	y, err := yaml.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return y
}
