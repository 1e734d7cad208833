package config

import (
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// A virtual host of the default shape is kept translated, without its
// proto; any other keeps the proto as received.
func TestTranslateRoutesKeepsNoDefaultProto(t *testing.T) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	other := naming.ServicePort{Namespace: "demo", Name: "other", Port: 8080}
	rc := meshtest.Routes(8080, 3*time.Second, 2, echo)
	custom := xdsresource.RuleVirtualHost(other, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "api",
		Match: xdsresource.RuleMatch{Prefix: "/api"}, Backends: []xdsresource.RuleBackend{{Cluster: other.OutboundCluster(), Weight: 1}}}))
	rc.VirtualHosts = append(rc.VirtualHosts, custom)

	got, err := translateRoutes(rc)
	if err != nil {
		t.Fatal(err)
	}
	if got.name != "8080" || len(got.vhosts) != 2 {
		t.Fatalf("translated %q with %d virtual hosts, want 8080 with 2", got.name, len(got.vhosts))
	}
	def := got.vhosts[0]
	if def.proto != nil {
		t.Error("the default-shaped virtual host kept its proto")
	}
	if def.cluster != echo.OutboundCluster() || !def.hasTimeout || def.timeout != 3*time.Second || def.retry == nil || def.retry.Retries != 2 {
		t.Errorf("default-shaped host translated to cluster %q, timeout %v (%v), retry %+v; want %q, 3s, 2 retries",
			def.cluster, def.timeout, def.hasTimeout, def.retry, echo.OutboundCluster())
	}
	if def.fallback != echo.OutboundCluster() {
		t.Errorf("fallback cluster %q, want %q", def.fallback, echo.OutboundCluster())
	}
	vh, err := def.virtualHost()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(vh, rc.GetVirtualHosts()[0]) {
		t.Errorf("the kept wire form decodes to\n%v\nwant\n%v", vh, rc.GetVirtualHosts()[0])
	}
	if got.vhosts[1].proto != custom {
		t.Error("the custom virtual host is not kept as received")
	}
}

// The translated form holds none of the received messages: changing the
// received configuration after translation changes nothing kept.
func TestTranslateRoutesCopies(t *testing.T) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	rc := meshtest.Routes(8080, time.Second, 1, echo)
	got, err := translateRoutes(rc)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string(nil), got.vhosts[0].domains...)
	rc.GetVirtualHosts()[0].Domains[0] = "changed"
	rc.GetVirtualHosts()[0].Routes = []*routev3.Route{}
	if got.vhosts[0].domains[0] != want[0] {
		t.Errorf("domains changed with the received proto: %q", got.vhosts[0].domains)
	}
}
