package xds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fedmesh/fedmesh/controlplane/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/topology"
)

// benchView has services services of one HTTP port each, with two
// endpoints in east-1, one in east-2 and two in west-1; flip toggles the
// first endpoint's health so that every assignment changes.
func benchView(services int, rev uint64, flip bool) *catalog.View {
	v := testView("east-1")
	v.Revision = rev
	tmpl := v.Services[0]
	v.Services = make([]catalog.ImportedService, services)
	for i := range v.Services {
		s := tmpl
		s.Name = "svc-" + strconv.Itoa(i)
		s.Endpoints = append([]catalog.ViewEndpoint(nil), tmpl.Endpoints...)
		s.Endpoints[0].Healthy = !flip
		v.Services[i] = s
	}
	return v
}

var benchLocalities = []topology.Locality{locEast1, {Region: "us-east", Zone: "b", Cluster: "east-1"}, {Region: "us-east", Zone: "c", Cluster: "east-1"}}

func benchNode(i int) Node {
	return Node{ID: "sidecar-" + strconv.Itoa(i), Role: naming.RoleSidecar, Cluster: "east-1", Namespace: "demo",
		ServiceAccount: "client", Workload: "client-" + strconv.Itoa(i), Locality: benchLocalities[i%len(benchLocalities)]}
}

// BenchmarkBuild is one push's build work: a fresh generator (new view)
// and every node's snapshot, nodes spread over three localities.
func BenchmarkBuild(b *testing.B) {
	for _, tc := range []struct{ nodes, services int }{{1, 1000}, {1000, 100}, {1000, 1000}} {
		b.Run(fmt.Sprintf("nodes=%d/services=%d", tc.nodes, tc.services), func(b *testing.B) {
			v := benchView(tc.services, 1, false)
			b.ReportAllocs()
			for b.Loop() {
				g, err := NewGenerator(DefaultSettings(testTD), v)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < tc.nodes; i++ {
					if _, err := g.Build(benchNode(i), nil); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkPushFanout connects real ADS streams over loopback, each
// subscribed to all clusters and endpoints, and measures one view change
// until every node has received its new endpoints. It reports the heap
// held per connected node (server and client sides of this process).
func BenchmarkPushFanout(b *testing.B) {
	for _, tc := range []struct{ nodes, services int }{{100, 1000}, {1000, 100}, {1000, 1000}} {
		b.Run(fmt.Sprintf("nodes=%d/services=%d", tc.nodes, tc.services), func(b *testing.B) {
			benchFanout(b, tc.nodes, tc.services)
		})
	}
}

func benchFanout(b *testing.B, nodes, services int) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	srv, err := NewServer(Config{
		Cluster:  "east-1",
		Settings: DefaultSettings(testTD),
		Authenticator: AuthenticatorFunc(func(_ context.Context, n Node) (Identity, error) {
			return Identity{Namespace: n.Namespace, ServiceAccount: n.ServiceAccount}, nil
		}),
		Debounce: time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(lis) }()
	go func() { defer wg.Done(); _ = srv.Run(ctx) }()
	defer func() { cancel(); g.Stop(); wg.Wait() }()
	rev := uint64(1)
	if err := srv.UpdateView(benchView(services, rev, false)); err != nil {
		b.Fatal(err)
	}

	// One connection per 100 nodes, one ADS stream per node.
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	got := make(chan struct{}, nodes)
	var clients sync.WaitGroup
	defer clients.Wait()
	defer cancel()
	for i := 0; i < nodes; i++ {
		if i%100 == 0 {
			c, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conns[len(conns)-1]).StreamAggregatedResources(ctx)
		if err != nil {
			b.Fatal(err)
		}
		pn := pbNode(benchNode(i))
		if err := st.Send(&discoverygrpc.DiscoveryRequest{Node: pn, TypeUrl: resourcev3.ClusterType}); err != nil {
			b.Fatal(err)
		}
		if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.EndpointType}); err != nil {
			b.Fatal(err)
		}
		clients.Add(1)
		go func() {
			defer clients.Done()
			for {
				resp, err := st.Recv()
				if err != nil {
					return
				}
				if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(),
					VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
					return
				}
				if resp.GetTypeUrl() == resourcev3.EndpointType {
					got <- struct{}{}
				}
			}
		}()
	}
	waitAll := func() {
		deadline := time.After(5 * time.Minute)
		for i := 0; i < nodes; i++ {
			select {
			case <-got:
			case <-deadline:
				b.Fatalf("only %d of %d nodes received endpoints", i, nodes)
			}
		}
	}
	waitAll()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perNode := float64(after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc)) / float64(nodes)

	b.ResetTimer()
	for b.Loop() {
		rev++
		if err := srv.UpdateView(benchView(services, rev, rev%2 == 0)); err != nil {
			b.Fatal(err)
		}
		waitAll()
	}
	// After the loop: ResetTimer drops metrics reported before it.
	b.ReportMetric(perNode, "heap-B/node")
}
