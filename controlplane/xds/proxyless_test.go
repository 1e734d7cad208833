package xds

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds" // the xds:/// resolver and balancers

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/topology"
)

// backend is a real gRPC server that says which cluster served a call.
type backend struct {
	testpb.UnimplementedTestServiceServer
	name string
}

func (b *backend) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{ServerId: b.name}, nil
}

func startBackend(t *testing.T, name string) (string, int32) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	testpb.RegisterTestServiceServer(g, &backend{name: name})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); wg.Wait() })
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	p, _ := strconv.Atoi(port)
	return host, int32(p)
}

// TestProxylessGRPC: a plain grpc-go client with the xds resolver calls
// across clusters through this control plane, prefers its own locality and
// fails over when the local endpoints go unhealthy, then comes back.
func TestProxylessGRPC(t *testing.T) {
	eastHost, eastPort := startBackend(t, "east-1")
	westHost, westPort := startBackend(t, "west-1")
	view := func(rev uint64, eastHealthy bool) *catalog.View {
		mk := func(host string, port int32, loc topology.Locality, healthy bool) catalog.ViewEndpoint {
			return catalog.ViewEndpoint{Endpoint: catalog.Endpoint{Address: host, Port: port, PortName: "grpc",
				Locality: loc, Ready: healthy, ServiceAccount: "echo"}, Healthy: healthy}
		}
		return &catalog.View{
			Revision: rev, Local: "east-1",
			Clusters: map[string]catalog.ClusterInfo{
				"east-1": {Name: "east-1", Locality: locEast1},
				"west-1": {Name: "west-1", Locality: locWest1},
			},
			Services: []catalog.ImportedService{{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{{Name: "grpc", Port: 50051, AppProtocol: catalog.AppGRPC}},
				Clusters: []string{"east-1", "west-1"},
				Endpoints: []catalog.ViewEndpoint{
					mk(eastHost, eastPort, locEast1, eastHealthy),
					mk(westHost, westPort, locWest1, true),
				},
			}},
		}
	}
	h := startServer(t, nil)
	if err := h.srv.UpdateView(view(2, true)); err != nil {
		t.Fatal(err)
	}

	node := map[string]any{
		"id": "proxyless~127.0.1.100~client.demo",
		"metadata": map[string]string{
			naming.MetaCluster: "east-1", naming.MetaRole: naming.RoleProxyless, naming.MetaNamespace: "demo",
			naming.MetaServiceAccount: "client", naming.MetaWorkload: "client", naming.MetaToken: "tok-client",
		},
		"locality": map[string]string{"region": "us-east", "zone": "a", "sub_zone": "east-1"},
	}
	bootstrap, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      h.addr,
			"channel_creds":   []any{map[string]string{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": node,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The bootstrap goes to grpc-go's resolver directly: the same JSON a
	// client would find through GRPC_XDS_BOOTSTRAP_CONFIG.
	resolverBuilder, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///echo.demo.svc.clusterset.local:50051",
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolverBuilder))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	call := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		if err != nil {
			return "error: " + err.Error()
		}
		return resp.GetServerId()
	}
	// servedBy polls until a call is served by want, then checks that the
	// next calls are too.
	servedBy := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		last := ""
		for last = call(); last != want; last = call() {
			if time.Now().After(deadline) {
				t.Fatalf("calls never reached %s; last answer: %s", want, last)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for i := 0; i < 20; i++ {
			if got := call(); got != want {
				t.Fatalf("call %d served by %s, want %s", i, got, want)
			}
		}
	}

	servedBy("east-1") // own locality first

	if err := h.srv.UpdateView(view(3, false)); err != nil {
		t.Fatal(err)
	}
	servedBy("west-1") // local endpoints unhealthy: the next priority

	if err := h.srv.UpdateView(view(4, true)); err != nil {
		t.Fatal(err)
	}
	servedBy("east-1") // back when they recover
}
