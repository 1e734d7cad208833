package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/gateway"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/config"
)

// applyOrder is the order a sidecar's ADS stream settles in.
var applyOrder = []string{resourcev3.SecretType, resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}

// apply feeds every type of res to h, as the xDS client would.
func apply(t *testing.T, onUpdate func(xdsclient.Update) error, res map[string][]types.Resource, order []string) {
	t.Helper()
	for _, typ := range order {
		m := map[string]proto.Message{}
		for _, r := range res[typ] {
			m[cacheName(t, r)] = r
		}
		if err := onUpdate(xdsclient.Update{TypeURL: typ, Version: "1", Resources: m}); err != nil {
			t.Fatalf("%s refused: %v", typ, err)
		}
	}
}

func cacheName(t *testing.T, r types.Resource) string {
	t.Helper()
	type named interface{ GetName() string }
	type clusterNamed interface{ GetClusterName() string }
	switch v := r.(type) {
	case clusterNamed:
		return v.GetClusterName()
	case named:
		return v.GetName()
	}
	t.Fatalf("resource %T has no name", r)
	return ""
}

func newAuthority(t *testing.T) *ca.Authority {
	t.Helper()
	dir := t.TempDir()
	root, cluster := filepath.Join(dir, "root"), filepath.Join(dir, "east-1")
	if err := ca.InitRoot("bench.local", root); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueClusterCA(root, "east-1", cluster, 0); err != nil {
		t.Fatal(err)
	}
	a, err := ca.LoadAuthority(cluster)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestSidecarSceneAccepted checks that the served scene is what the real
// sidecar accepts: every type applies and the client knows every service.
func TestSidecarSceneAccepted(t *testing.T) {
	auth := newAuthority(t)
	for _, services := range []int{2, 50} {
		t.Run(fmt.Sprintf("%d services", services), func(t *testing.T) {
			sc := sidecarScene{cluster: "east-1", inbound: "127.0.2.1:15006",
				httpPort: 8080, httpApp: "127.0.2.2:18080", grpcPort: 8079, grpcApp: "127.0.2.2:18079", services: services}
			cl, srv, err := sc.build(auth)
			if err != nil {
				t.Fatal(err)
			}
			client := config.NewBuilder(auth.TrustDomain())
			apply(t, func(u xdsclient.Update) error { _, err := client.Apply(u); return err }, cl, applyOrder)
			if diff := cmp.Diff(services, len(client.Current().Services)); diff != "" {
				t.Errorf("client services (-want +got):\n%s", diff)
			}
			want := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
			if _, ok := client.Current().Lookup(want.Host(), 8080); !ok {
				t.Errorf("client cannot route %s", want)
			}
			server := config.NewBuilder(auth.TrustDomain())
			apply(t, func(u xdsclient.Update) error { _, err := server.Apply(u); return err }, srv, applyOrder)
		})
	}
}

// TestGatewayScene checks that the real gateway takes the scene's routes,
// and that bad -route values are refused.
func TestGatewayScene(t *testing.T) {
	tests := []struct {
		name    string
		routes  []string
		extra   int
		want    int
		wantErr bool
	}{
		{name: "one route", routes: []string{"9000.sink.demo.svc.clusterset.local=127.0.0.1:19000"}, want: 1},
		{name: "with extra routes", routes: []string{"9000.sink.demo.svc.clusterset.local=127.0.0.1:19000"}, extra: 99, want: 100},
		{name: "no route", extra: 3, wantErr: true},
		{name: "no address", routes: []string{"9000.sink.demo.svc.clusterset.local="}, wantErr: true},
		{name: "bad address", routes: []string{"9000.sink.demo.svc.clusterset.local=nowhere"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := gatewayScene("127.0.0.1:15443", "east-1", tt.routes, tt.extra)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			gw, err := gateway.New(gateway.Config{Cluster: "east-1"}, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			h := gateway.NewXDSHandler(gw)
			apply(t, h.OnUpdate, res, []string{resourcev3.EndpointType, resourcev3.ListenerType})
			if diff := cmp.Diff(tt.want, len(gw.Routes())); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
		})
	}
}
