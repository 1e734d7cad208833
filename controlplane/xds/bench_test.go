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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/topology"
)

// benchView has services services of one HTTP port each, with two
// endpoints in east-1, one in east-2 and two in west-1; the first
// endpoint of the first unhealthy services is not ready.
func benchView(services int, rev uint64, unhealthy int) *catalog.View {
	v := testView("east-1")
	v.Revision = rev
	tmpl := v.Services[0]
	v.Services = make([]catalog.ImportedService, services)
	for i := range v.Services {
		s := tmpl
		s.Name = "svc-" + strconv.Itoa(i)
		s.Endpoints = append([]catalog.ViewEndpoint(nil), tmpl.Endpoints...)
		s.Endpoints[0].Healthy = i >= unhealthy
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
			v := benchView(tc.services, 1, 0)
			b.ReportAllocs()
			cpu := cpuTime()
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
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkBuildIncremental is one push's build work when one endpoint
// of one service changed health: the new view's generator reuses the
// previous one's work for the other services.
func BenchmarkBuildIncremental(b *testing.B) {
	for _, tc := range []struct{ nodes, services int }{{1000, 1000}} {
		b.Run(fmt.Sprintf("nodes=%d/services=%d", tc.nodes, tc.services), func(b *testing.B) {
			g, err := NewGenerator(DefaultSettings(testTD), benchView(tc.services, 1, 0))
			if err != nil {
				b.Fatal(err)
			}
			buildAll := func() {
				for i := 0; i < tc.nodes; i++ {
					if _, err := g.Build(benchNode(i), nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			buildAll()
			views := [2]*catalog.View{benchView(tc.services, 2, 0), benchView(tc.services, 3, 1)}
			b.ReportAllocs()
			cpu := cpuTime()
			i := 0
			for b.Loop() {
				i++
				if g, err = g.next(views[i%2]); err != nil {
					b.Fatal(err)
				}
				buildAll()
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkPushFanout connects real ADS streams over loopback, each
// subscribed to all clusters and endpoints, and measures one view change
// until every node has received its new endpoints: change=one flips the
// health of one endpoint of one service, change=all of one endpoint in
// every service. Either way every node receives the whole EDS set (state
// of the world). client=light reads each response's version, type, nonce
// and resource count without decoding the resources (the control
// plane's and the transport's work); client=decode decodes everything,
// as a real client does in its own process, here in the benchmark's.
// It reports the CPU time of the process per push and the memory held
// per connected node (heap and stacks, server and client sides, after
// the first push). The thousand-node cases are meant for -benchtime 3x.
//
// proto says how the clients subscribe: sotw is a state-of-the-world
// wildcard (every push carries the whole EDS type), named a
// state-of-the-world subscription that names every assignment (a push
// carries the changed ones), delta the incremental protocol (a push
// carries the changed ones), as fedmesh's own client speaks it.
func BenchmarkPushFanout(b *testing.B) {
	for _, tc := range []struct {
		nodes, services      int
		change, client, prot string
	}{
		{100, 1000, "all", "light", "sotw"},
		{1000, 100, "all", "light", "sotw"},
		{1000, 1000, "all", "light", "sotw"},
		{1000, 1000, "one", "light", "sotw"},
		{1000, 1000, "one", "decode", "sotw"},
		{1000, 1000, "one", "light", "named"},
		{1000, 1000, "one", "light", "delta"},
		{1000, 1000, "one", "decode", "delta"},
		{1000, 1000, "all", "light", "delta"},
	} {
		b.Run(fmt.Sprintf("nodes=%d/services=%d/change=%s/client=%s/proto=%s", tc.nodes, tc.services, tc.change, tc.client, tc.prot), func(b *testing.B) {
			flipped := tc.services
			if tc.change == "one" {
				flipped = 1
			}
			benchFanout(b, tc.nodes, tc.services, flipped, tc.client == "decode", tc.prot)
		})
	}
}

func benchFanout(b *testing.B, nodes, services, flipped int, decode bool, prot string) {
	// Twice: the first GC moves pooled buffers to the victim cache, the
	// second frees them, so the figure is what the nodes hold.
	runtime.GC()
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
	if err := srv.UpdateView(benchView(services, rev, 0)); err != nil {
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
	var short atomic.Int64 // EDS responses without the assignments expected
	var names []string     // every assignment, for proto=named
	if prot == "named" {
		for i := range services {
			names = append(names, naming.ServicePort{Namespace: "demo", Name: "svc-" + strconv.Itoa(i), Port: 8080}.OutboundCluster())
		}
	}
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
		st, err := newBenchStream(ctx, conns[len(conns)-1], decode, prot == "delta")
		if err != nil {
			b.Fatal(err)
		}
		pn := pbNode(benchNode(i))
		if err := st.subscribe(pn, resourcev3.ClusterType, nil); err != nil {
			b.Fatal(err)
		}
		if err := st.subscribe(nil, resourcev3.EndpointType, names); err != nil {
			b.Fatal(err)
		}
		clients.Add(1)
		go func() {
			defer clients.Done()
			first := true
			for {
				resp, err := st.recv()
				if err != nil {
					return
				}
				if err := st.ack(resp, names); err != nil {
					return
				}
				if resp.typeURL == resourcev3.EndpointType {
					want := services
					if !first && prot != "sotw" {
						want = flipped
					}
					first = false
					if resp.resources != want {
						short.Add(1)
					}
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
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	heapPerNode := float64(after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc)) / float64(nodes)
	stackPerNode := float64(after.StackInuse-min(after.StackInuse, before.StackInuse)) / float64(nodes)

	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		rev++
		unhealthy := 0
		if rev%2 == 0 {
			unhealthy = flipped
		}
		if err := srv.UpdateView(benchView(services, rev, unhealthy)); err != nil {
			b.Fatal(err)
		}
		waitAll()
	}
	// After the loop: ResetTimer drops metrics reported before it.
	reportCPU(b, cpu)
	b.ReportMetric(heapPerNode, "heap-B/node")
	b.ReportMetric(stackPerNode, "stack-B/node")
	if n := short.Load(); n > 0 {
		b.Fatalf("%d endpoint responses lacked assignments", n)
	}
}

// benchStream is an ADS stream, state of the world or delta, whose
// responses are read either whole or light (see BenchmarkPushFanout).
type benchStream struct {
	grpc.ClientStream
	decode, delta bool
}

// benchResponse is what a benchmark client needs of a response. The
// light codec reads both kinds: DiscoveryResponse and
// DeltaDiscoveryResponse agree on fields 1 (version), 2 (resources),
// 4 (type) and 5 (nonce).
type benchResponse struct {
	version, typeURL, nonce string
	resources               int
}

func newBenchStream(ctx context.Context, c *grpc.ClientConn, decode, delta bool) (*benchStream, error) {
	desc := &discoverygrpc.AggregatedDiscoveryService_ServiceDesc.Streams[0]
	if delta {
		desc = &discoverygrpc.AggregatedDiscoveryService_ServiceDesc.Streams[1]
	}
	method := "/" + discoverygrpc.AggregatedDiscoveryService_ServiceDesc.ServiceName + "/" + desc.StreamName
	var opts []grpc.CallOption
	if !decode {
		opts = append(opts, grpc.ForceCodecV2(lightCodec{}))
	}
	cs, err := c.NewStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &benchStream{ClientStream: cs, decode: decode, delta: delta}, nil
}

// subscribe sends the first request of a type; names nil is a wildcard.
func (s *benchStream) subscribe(n *corev3.Node, typeURL string, names []string) error {
	if s.delta {
		return s.SendMsg(&discoverygrpc.DeltaDiscoveryRequest{Node: n, TypeUrl: typeURL, ResourceNamesSubscribe: names})
	}
	return s.SendMsg(&discoverygrpc.DiscoveryRequest{Node: n, TypeUrl: typeURL, ResourceNames: names})
}

// ack acknowledges resp; a state-of-the-world request repeats the names.
func (s *benchStream) ack(resp benchResponse, names []string) error {
	if s.delta {
		return s.SendMsg(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resp.typeURL, ResponseNonce: resp.nonce})
	}
	if resp.typeURL != resourcev3.EndpointType {
		names = nil
	}
	return s.SendMsg(&discoverygrpc.DiscoveryRequest{TypeUrl: resp.typeURL, VersionInfo: resp.version,
		ResponseNonce: resp.nonce, ResourceNames: names})
}

func (s *benchStream) recv() (benchResponse, error) {
	switch {
	case !s.decode:
		var r benchResponse
		err := s.RecvMsg(&r)
		return r, err
	case s.delta:
		var resp discoverygrpc.DeltaDiscoveryResponse
		if err := s.RecvMsg(&resp); err != nil {
			return benchResponse{}, err
		}
		return benchResponse{version: resp.GetSystemVersionInfo(), typeURL: resp.GetTypeUrl(), nonce: resp.GetNonce(),
			resources: len(resp.GetResources())}, nil
	}
	var resp discoverygrpc.DiscoveryResponse
	if err := s.RecvMsg(&resp); err != nil {
		return benchResponse{}, err
	}
	return benchResponse{version: resp.GetVersionInfo(), typeURL: resp.GetTypeUrl(), nonce: resp.GetNonce(),
		resources: len(resp.GetResources())}, nil
}

// lightCodec marshals requests as protobuf and reads responses into a
// benchResponse, skipping over the resources.
type lightCodec struct{}

func (lightCodec) Name() string { return "proto" }

func (lightCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (lightCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*benchResponse)
	if !ok {
		return fmt.Errorf("light codec: cannot decode into %T", v)
	}
	b := data.Materialize()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		val, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case 1:
			r.version = string(val)
		case 2:
			r.resources++
		case 4:
			r.typeURL = string(val)
		case 5:
			r.nonce = string(val)
		}
	}
	return nil
}

// cpuTime is the process's user and system CPU time so far. On a
// shared machine wall time per push depends on the neighbours; CPU
// time per push much less so.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU time per iteration since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
