package xds

import (
	"context"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
)

// routedBackend answers UnaryCall and EmptyCall, saying which service
// served (UnaryCall's server_id, EmptyCall's "served-by" header).
type routedBackend struct {
	testpb.UnimplementedTestServiceServer
	name string
}

func (b *routedBackend) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{ServerId: b.name}, nil
}

func (b *routedBackend) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("served-by", b.name))
	return &testpb.Empty{}, nil
}

func startRoutedBackend(t *testing.T, name string) (string, int32) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	testpb.RegisterTestServiceServer(g, &routedBackend{name: name})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); wg.Wait() })
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	p, _ := strconv.Atoi(port)
	return host, int32(p)
}

// proxylessRoutes are echo's producer routes for the test: a header
// match to echo-v2, an abort fault on EmptyCall, and an 80/20 split.
const proxylessRoutes = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{headers: [{name: x-group, value: b}]}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 50051}]
  - matches: [{method: {service: grpc.testing.TestService, method: EmptyCall}}]
    filters: [{type: ExtensionRef, extensionRef: {group: fedmesh.io, kind: FaultInjection, name: unavailable}}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 50051}]
  - backendRefs:
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 50051, weight: 80}
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 50051, weight: 20}
---
apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: {name: unavailable, namespace: demo}
spec:
  abort: {grpcStatus: 14, percentage: 30}
`

// withinBinomial reports whether hits of n is within 5 standard
// deviations of share p (a false failure about once in 3.5 million).
func withinBinomial(hits, n int, p float64) bool {
	sd := math.Sqrt(float64(n) * p * (1 - p))
	return math.Abs(float64(hits)-float64(n)*p) <= 5*sd
}

// TestProxylessRoutes: a stock grpc-go client with grpc-go's own xDS
// resolver obeys the producer routes this control plane renders: a
// header-matched route, a weighted split between two services, and an
// abort fault with a gRPC status at a percentage (gRFC A28, A31, A33).
func TestProxylessRoutes(t *testing.T) {
	v1Host, v1Port := startRoutedBackend(t, "echo")
	v2Host, v2Port := startRoutedBackend(t, "echo-v2")
	var tr policy.Traffic
	for _, doc := range splitDocs(proxylessRoutes) {
		obj, err := policy.ParseObject([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	pol, err := policy.EncodePolicies(tr)
	if err != nil {
		t.Fatal(err)
	}
	svc := func(name, host string, port int32) catalog.ImportedService {
		return catalog.ImportedService{
			Namespace: "demo", Name: name, Type: catalog.ClusterSetIP,
			Ports:    []catalog.Port{{Name: "grpc", Port: 50051, AppProtocol: catalog.AppGRPC}},
			Clusters: []string{"east-1"},
			Endpoints: []catalog.ViewEndpoint{{Endpoint: catalog.Endpoint{Address: host, Port: port, PortName: "grpc",
				Locality: locEast1, Ready: true, ServiceAccount: name}, Healthy: true}},
		}
	}
	echo := svc("echo", v1Host, v1Port)
	echo.Policies, echo.PoliciesCluster = pol, "east-1"
	view := &catalog.View{
		Revision: 2, Local: "east-1",
		Clusters: map[string]catalog.ClusterInfo{"east-1": {Name: "east-1", Locality: locEast1}},
		Services: []catalog.ImportedService{echo, svc("echo-v2", v2Host, v2Port)},
	}
	h := startServerWith(t, true, nil)
	if err := h.srv.UpdateView(view); err != nil {
		t.Fatal(err)
	}
	bootstrap := proxylessWorkload(t, h, Node{ID: "proxyless~127.0.1.100~client.demo", Role: naming.RoleProxyless,
		Cluster: "east-1", Namespace: "demo", ServiceAccount: "client", Workload: "client", Token: "tok-client", Locality: locEast1})
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
	unary := func(md ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if len(md) > 0 {
			ctx = metadata.AppendToOutgoingContext(ctx, md...)
		}
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		return resp.GetServerId(), err
	}

	// The header-matched route: poll until the routes are in force,
	// then every call with the header reaches echo-v2.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := unary("x-group", "b")
		if err == nil && got == "echo-v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls with x-group: b never reached echo-v2; last: %q %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 50 {
		if got, err := unary("x-group", "b"); err != nil || got != "echo-v2" {
			t.Fatalf("call %d with x-group: b: %q %v, want echo-v2", i, got, err)
		}
	}

	// The weighted split: 80/20 within a binomial bound. The loop is
	// bounded in count and time.
	const n = 1000
	loopEnd := time.Now().Add(60 * time.Second)
	v2, done := 0, 0
	for ; done < n && time.Now().Before(loopEnd); done++ {
		got, err := unary()
		if err != nil {
			t.Fatalf("weighted call %d: %v", done, err)
		}
		if got == "echo-v2" {
			v2++
		}
	}
	if done < n/2 {
		t.Fatalf("only %d calls in the time allowed", done)
	}
	if !withinBinomial(v2, done, 0.2) {
		t.Errorf("echo-v2 served %d of %d calls, want about 20%%", v2, done)
	}
	t.Logf("weighted split: echo-v2 %d of %d", v2, done)

	// The abort fault on EmptyCall: 30% answered UNAVAILABLE by the
	// client itself, the others served by echo.
	loopEnd = time.Now().Add(60 * time.Second)
	aborted, done := 0, 0
	for ; done < n && time.Now().Before(loopEnd); done++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var hdr metadata.MD
		_, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&hdr))
		cancel()
		switch status.Code(err) {
		case codes.Unavailable:
			aborted++
		case codes.OK:
			if got := hdr.Get("served-by"); len(got) != 1 || got[0] != "echo" {
				t.Fatalf("EmptyCall served by %v, want echo", got)
			}
		default:
			t.Fatalf("EmptyCall %d: %v", done, err)
		}
	}
	if done < n/2 {
		t.Fatalf("only %d calls in the time allowed", done)
	}
	if !withinBinomial(aborted, done, 0.3) {
		t.Errorf("%d of %d EmptyCalls aborted, want about 30%%", aborted, done)
	}
	t.Logf("fault: %d of %d aborted", aborted, done)
}

func splitDocs(s string) []string { return strings.Split(s, "\n---\n") }
