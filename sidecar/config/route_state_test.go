package config_test

import (
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// A virtual host of the default shape whose "/" route sends echo's
// traffic to echo-v2's cluster is not echo's default route: it is
// compiled into echo's routes, on every build (the Builder keeps it as
// its wire form, decoded again for each build).
func TestDefaultShapeToAnotherCluster(t *testing.T) {
	b := config.NewBuilder(td)
	if _, err := b.Apply(update(xdsclient.ClusterType, "1",
		meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}),
		meshtest.OutboundCluster(echoV2, meshtest.ClusterOpts{HTTP: true}))); err != nil {
		t.Fatal(err)
	}
	vh := xdsresource.VirtualHost(echo, xdsresource.Route{Timeout: 3 * time.Second, Retries: 2})
	vh.GetRoutes()[0].GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: echoV2.OutboundCluster()}
	own := xdsresource.VirtualHost(echoV2, xdsresource.Route{Timeout: 4 * time.Second, Retries: 1})
	snap, err := b.Apply(update(xdsclient.RouteType, "1", xdsresource.RouteConfiguration("8080", []*routev3.VirtualHost{vh, own})))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if i == 1 { // a build caused by another type reads the kept form again
			if snap, err = b.Apply(update(xdsclient.EndpointType, "1", meshtest.Assignment(echo))); err != nil {
				t.Fatal(err)
			}
		}
		svc := snap.Services[echo]
		if svc == nil || svc.Routes == nil || len(svc.Routes.Rules) != 1 {
			t.Fatalf("build %d: echo has no compiled route to echo-v2: %+v", i, svc)
		}
		v2 := snap.Services[echoV2]
		if v2 == nil || v2.Routes != nil || v2.Timeout != 4*time.Second || v2.Retry.Retries != 1 {
			t.Fatalf("build %d: echo-v2's default route not applied: %+v", i, v2)
		}
	}
}
