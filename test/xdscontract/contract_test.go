// Package xdscontract checks that what the control plane renders is what
// the fedmesh sidecar accepts: every sidecar golden snapshot of
// controlplane/xds (testdata/out) is applied to a sidecar configuration
// builder, type by type in ADS order, and must be taken whole; and a real
// gateway configured by a real xDS server labels connections with the
// source clusters the control plane renders (gateway_sources_test.go).
package xdscontract

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
	// The typed configs inside the snapshots (filters, TLS, fault) are
	// the builder's.
	_ "github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/config"
)

// golden is the shape of a golden snapshot file: resources per type, as
// protojson.
type golden struct {
	Clusters  []json.RawMessage `json:"clusters"`
	Endpoints []json.RawMessage `json:"endpoints"`
	Listeners []json.RawMessage `json:"listeners"`
	Routes    []json.RawMessage `json:"routes"`
}

func load(t *testing.T, path string) golden {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(j, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func decode[T proto.Message](t *testing.T, raws []json.RawMessage, newT func() T, name func(T) string) map[string]proto.Message {
	t.Helper()
	out := map[string]proto.Message{}
	for _, raw := range raws {
		m := newT()
		if err := protojson.Unmarshal(raw, m); err != nil {
			t.Fatalf("decoding %T: %v", m, err)
		}
		out[name(m)] = m
	}
	return out
}

func apply(t *testing.T, path string) *config.Snapshot {
	t.Helper()
	g := load(t, path)
	b := config.NewBuilder(spiffeid.RequireTrustDomainFromString("fedmesh.test"))
	updates := []xdsclient.Update{
		{TypeURL: xdsclient.ClusterType, Version: "1", Resources: decode(t, g.Clusters, func() *clusterv3.Cluster { return new(clusterv3.Cluster) }, (*clusterv3.Cluster).GetName)},
		{TypeURL: xdsclient.EndpointType, Version: "1", Resources: decode(t, g.Endpoints, func() *endpointv3.ClusterLoadAssignment { return new(endpointv3.ClusterLoadAssignment) }, (*endpointv3.ClusterLoadAssignment).GetClusterName)},
		{TypeURL: xdsclient.ListenerType, Version: "1", Resources: decode(t, g.Listeners, func() *listenerv3.Listener { return new(listenerv3.Listener) }, (*listenerv3.Listener).GetName)},
		{TypeURL: xdsclient.RouteType, Version: "1", Resources: decode(t, g.Routes, func() *routev3.RouteConfiguration { return new(routev3.RouteConfiguration) }, (*routev3.RouteConfiguration).GetName)},
	}
	var snap *config.Snapshot
	for _, u := range updates {
		s, err := b.Apply(u)
		if err != nil {
			t.Fatalf("%s: the sidecar refuses the %s the control plane renders: %v", filepath.Base(path), u.TypeURL, err)
		}
		snap = s
	}
	return snap
}

// TestSidecarAcceptsEveryRendering applies every sidecar golden snapshot.
func TestSidecarAcceptsEveryRendering(t *testing.T) {
	paths, err := filepath.Glob("../../controlplane/xds/testdata/out/sidecar-*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no sidecar goldens found: %v", err)
	}
	for _, p := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(p), ".yaml"), func(t *testing.T) {
			snap := apply(t, p)
			if len(snap.ServiceList()) == 0 {
				t.Errorf("no services in the sidecar's snapshot")
			}
		})
	}
}

// TestRoutedSnapshotRoutes checks that the routes rendered for the
// routes golden are in force in the sidecar: the echo service's virtual
// host has the rendered rules, named as the plan names them.
func TestRoutedSnapshotRoutes(t *testing.T) {
	snap := apply(t, "../../controlplane/xds/testdata/out/sidecar-east-1-routes.yaml")
	routed := 0
	for _, svc := range snap.ServiceList() {
		if svc.Routes == nil {
			continue
		}
		routed++
		for _, r := range svc.Routes.Rules {
			if r.Name == "" {
				t.Errorf("%s: a rule without a name", svc.Port)
			} else if parts := strings.Split(r.Name, "/"); len(parts) < 3 {
				t.Errorf("%s: rule name %q is not NS/ROUTE/rule-I", svc.Port, r.Name)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+svc.Port.Host()+"/", nil)
		_ = svc.Routes.Match(req) // must not panic on any table
	}
	if routed == 0 {
		t.Fatal("no service has a route table in force")
	}
	if _, ok := snap.Lookup(naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}.Host(), 8080); !ok {
		t.Error("echo is not reachable by its clusterset name")
	}
}

// TestTelemetrySnapshot checks that the TelemetryPolicies rendered for
// the telemetry golden are in force in the sidecar: echo's targeted
// sampling over the mesh-wide one, the tags of the mesh and of namespace
// demo merged, demo's errors-only access log.
func TestTelemetrySnapshot(t *testing.T) {
	snap := apply(t, "../../controlplane/xds/testdata/out/sidecar-west-1-telemetry.yaml")
	pc := 25.0
	want := config.Telemetry{
		SamplingPercent: &pc,
		Tags:            map[string]string{"mesh": "fedmesh", "team": "payments"},
		AccessLog:       config.AccessLogConfig{Enabled: true, ErrorsOnly: true},
	}
	if diff := cmp.Diff(want, snap.Telemetry); diff != "" {
		t.Errorf("telemetry (-want +got):\n%s", diff)
	}
	// A golden without policies leaves the sidecar's flags in charge.
	if got := apply(t, "../../controlplane/xds/testdata/out/sidecar-west-1-inbound.yaml").Telemetry; !cmp.Equal(got, config.Telemetry{}) {
		t.Errorf("telemetry without policies: %+v, want the zero value", got)
	}
}

// TestRateLimitSnapshot checks that the RateLimitPolicies rendered for
// the rate limit golden are in force in the sidecar: echo's HTTP port
// has its two local limits and the quota's share (its ID under
// fedmesh.quota), the store's TCP port its connection limit.
func TestRateLimitSnapshot(t *testing.T) {
	snap := apply(t, "../../controlplane/xds/testdata/out/sidecar-west-1-ratelimit.yaml")
	type limit struct {
		ID      string
		Quota   bool
		Key     ratelimit.KeyType
		Header  string
		Matches int
		Bucket  ratelimit.Bucket
		MaxKeys int
	}
	summary := func(r *ratelimit.Rules) []limit {
		if r == nil {
			return nil
		}
		var out []limit
		for _, l := range r.Limits {
			out = append(out, limit{l.ID, l.Quota, l.Key, l.Header, len(l.Match), l.Bucket, l.MaxKeys})
		}
		return out
	}
	var echo, store config.InboundPort
	for _, in := range snap.Inbound {
		for _, p := range in.Ports {
			switch p.Port.Name {
			case "echo":
				echo = p
			case "store":
				store = p
			}
		}
	}
	wantEcho := []limit{
		{ID: "demo/echo-limits/per-caller", Key: ratelimit.KeyPrincipal, Bucket: ratelimit.Bucket{Max: 200, PerFill: 100, Interval: time.Second}, MaxKeys: 1024},
		{ID: "demo/echo-limits/api-writes", Key: ratelimit.KeyHeader, Header: "X-Tenant", Matches: 2, Bucket: ratelimit.Bucket{Max: 10, PerFill: 10, Interval: time.Minute}, MaxKeys: 1024},
		{ID: "demo/echo-limits/batch", Quota: true, Matches: 1, Bucket: ratelimit.Bucket{Max: 200, PerFill: 200, Interval: time.Minute}},
	}
	if diff := cmp.Diff(wantEcho, summary(echo.RateLimit)); diff != "" {
		t.Errorf("echo's limits (-want +got):\n%s", diff)
	}
	if r := echo.RateLimit; r == nil || !r.XRateLimitHeaders || !r.ResourceExhausted || !r.RetryAfter {
		t.Errorf("echo's rules %+v: want X-RateLimit headers, Retry-After and RESOURCE_EXHAUSTED", r)
	}
	wantStore := []limit{{ID: "demo/connections:tcp", Bucket: ratelimit.Bucket{Max: 20, PerFill: 20, Interval: time.Second}}}
	if diff := cmp.Diff(wantStore, summary(store.ConnectionLimit)); diff != "" {
		t.Errorf("store's connection limits (-want +got):\n%s", diff)
	}
	if store.RateLimit != nil || echo.ConnectionLimit != nil {
		t.Errorf("request limits on TCP or connection limits on HTTP: %+v, %+v", store.RateLimit, echo.ConnectionLimit)
	}
}
