package xds

import (
	"errors"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
)

// TestTelemetrySharesParts: nodes of namespaces without a
// TelemetryPolicy share the outbound part of a generator without any;
// a namespace with a policy gets its own listeners but shares clusters
// and routes.
func TestTelemetrySharesParts(t *testing.T) {
	tr := loadTraffic(t, "telemetry")
	var nsOnly policy.Traffic
	for _, p := range tr.Telemetry {
		if p.Namespace == "demo" { // leave out the mesh-wide policy
			nsOnly.Telemetry = append(nsOnly.Telemetry, p)
		}
	}
	v := testView("east-1")
	plain, err := NewGeneratorWithTraffic(DefaultSettings(testTD), v, nil, policy.Traffic{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGeneratorWithTraffic(DefaultSettings(testTD), v, nil, nsOnly)
	if err != nil {
		t.Fatal(err)
	}
	node := func(ns string) Node {
		n := sidecarNode("east-1", locEast1)
		n.ID, n.Namespace, n.Workload = ns+"~east-1", ns, "app"
		return n
	}
	build := func(g *Generator, n Node) *Built {
		t.Helper()
		b, err := g.Build(n, nil)
		if err != nil {
			t.Fatalf("Build %s: %v", n.ID, err)
		}
		return b
	}
	ref := build(plain, node("shop"))
	for _, ns := range []string{"shop", "other"} {
		b := build(g, node(ns))
		for _, typ := range []string{resourcev3.ClusterType, resourcev3.ListenerType, resourcev3.RouteType} {
			if b.Snapshot.GetVersion(typ) != ref.Snapshot.GetVersion(typ) {
				t.Errorf("namespace %s without a policy: %s version %s, want today's %s", ns, typ, b.Snapshot.GetVersion(typ), ref.Snapshot.GetVersion(typ))
			}
		}
	}
	demo := build(g, node("demo"))
	if demo.Snapshot.GetVersion(resourcev3.ListenerType) == ref.Snapshot.GetVersion(resourcev3.ListenerType) {
		t.Error("namespace demo's policy did not change its listeners")
	}
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.RouteType} {
		if demo.Snapshot.GetVersion(typ) != ref.Snapshot.GetVersion(typ) {
			t.Errorf("namespace demo: %s changed with telemetry", typ)
		}
	}
	// One part without telemetry, one with demo's; a second demo node
	// adds none.
	build(g, node("demo"))
	if n := len(g.outbound); n != 2 {
		t.Errorf("%d outbound parts, want 2", n)
	}
	// Every outbound HCM of the demo node has the access log; a TCP
	// listener has none.
	for name, r := range demo.Snapshot.GetResources(resourcev3.ListenerType) {
		raw, err := protojson.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		s := string(raw)
		http := strings.Contains(s, "HttpConnectionManager")
		if got := strings.Contains(s, "envoy.access_loggers.file"); got != http {
			t.Errorf("listener %s: access log %v, HTTP %v", name, got, http)
		}
	}
}

// TestTelemetryProxylessUnchanged: proxyless clients get no telemetry
// (grpc-go reads neither tracing nor access_log).
func TestTelemetryProxylessUnchanged(t *testing.T) {
	v := testView("east-2")
	n := Node{ID: "grpc~east-2", Role: naming.RoleProxyless, Cluster: "east-2", Namespace: "demo", ServiceAccount: "client"}
	plain, _ := NewGeneratorWithTraffic(DefaultSettings(testTD), v, nil, policy.Traffic{})
	g, err := NewGeneratorWithTraffic(DefaultSettings(testTD), v, nil, loadTraffic(t, "telemetry"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := plain.Build(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Build(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Snapshot.GetVersion(resourcev3.ListenerType) != b.Snapshot.GetVersion(resourcev3.ListenerType) {
		t.Error("a proxyless client's listeners changed with telemetry")
	}
}

// TestUpdateTrafficRefusesBadTelemetry: an invalid or repeated
// TelemetryPolicy refuses the set.
func TestUpdateTrafficRefusesBadTelemetry(t *testing.T) {
	good := loadTraffic(t, "telemetry")
	if err := validateTraffic(&good); err != nil {
		t.Fatalf("good set refused: %v", err)
	}
	bad := policy.Traffic{Telemetry: append([]policy.TelemetryPolicy(nil), good.Telemetry...)}
	pc := policy.Percent(101)
	bad.Telemetry[0].Spec.Tracing = &policy.TelemetryTracing{SamplingPercent: &pc}
	if err := validateTraffic(&bad); !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "samplingPercent") {
		t.Errorf("invalid sampling: %v", err)
	}
	twice := policy.Traffic{Telemetry: append(good.Telemetry, good.Telemetry[0])}
	if err := validateTraffic(&twice); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("repeated policy: %v", err)
	}
}
