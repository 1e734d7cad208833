package xds

import (
	"context"
	"fmt"
	"net"
	"strconv"
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
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
)

// Request metadata the counting backend obeys.
const (
	// mdCall names one call; its attempts (retries replay the metadata)
	// are counted together.
	mdCall = "x-call"
	// mdFailFirst is how many attempts of the call are answered
	// UNAVAILABLE before one succeeds.
	mdFailFirst = "x-fail-first"
	// mdHold makes the backend hold the call until the caller gives up
	// (or slowHold passes, then it answers OK).
	mdHold = "x-hold"
)

// slowHold bounds how long a held call waits for its caller to give up:
// a call the route's timeout does not end succeeds after it.
const slowHold = 30 * time.Second

// countingBackend counts the attempts of each call (by its x-call
// metadata) and fails or holds them as the metadata says.
type countingBackend struct {
	testpb.UnimplementedTestServiceServer
	name string

	mu       sync.Mutex
	attempts map[string]int
	// deadlines counts held attempts that arrived with a deadline
	// (grpc-go sends the route's timeout as grpc-timeout).
	deadlines int
}

func (b *countingBackend) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	first := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	failFirst, _ := strconv.Atoi(first(mdFailFirst))
	_, hasDeadline := ctx.Deadline()
	b.mu.Lock()
	b.attempts[first(mdCall)]++
	n := b.attempts[first(mdCall)]
	if first(mdHold) != "" && hasDeadline {
		b.deadlines++
	}
	b.mu.Unlock()
	if n <= failFirst {
		return nil, status.Errorf(codes.Unavailable, "%s: attempt %d of call %q fails", b.name, n, first(mdCall))
	}
	if first(mdHold) != "" {
		t := time.NewTimer(slowHold)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
	return &testpb.SimpleResponse{ServerId: b.name}, nil
}

// attemptsOf returns how many attempts of call the backend saw.
func (b *countingBackend) attemptsOf(call string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.attempts[call]
}

func (b *countingBackend) heldWithDeadline() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deadlines
}

func startCountingBackend(t *testing.T, name string) (*countingBackend, string, int32) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &countingBackend{name: name, attempts: map[string]int{}}
	g := grpc.NewServer()
	testpb.RegisterTestServiceServer(g, b)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); wg.Wait() })
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	p, _ := strconv.Atoi(port)
	return b, host, int32(p)
}

// resilienceRoutes are the producer objects of the test's services, one
// service per behaviour (each document names its service).
var resilienceRoutes = map[string]string{
	// ResiliencePolicy retries: 3 retries on UNAVAILABLE.
	"retry": `apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
metadata: {name: retry, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: retry}]
  retry: {attempts: 3, retryOn: [unavailable], backoff: {baseInterval: 5ms, maxInterval: 20ms}}
`,
	// An HTTPRoute rule's own retry (Gateway API codes, HTTP statuses):
	// 2 retries on 503, which grpc-go sees as UNAVAILABLE.
	"retry-http": `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: retry-http, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: retry-http}]
  rules:
  - retry: {attempts: 2, codes: [503], backoff: 5ms}
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: retry-http, port: 50051}]
`,
	// A ResiliencePolicy request timeout.
	"slow": `apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
metadata: {name: slow, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: slow}]
  timeouts: {request: 300ms}
`,
	// An HTTPRoute rule's timeouts.request.
	"slow-http": `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: slow-http, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: slow-http}]
  rules:
  - timeouts: {request: 300ms}
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: slow-http, port: 50051}]
`,
	// A fixed delay on every call.
	"delayed": `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: delayed, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: delayed}]
  rules:
  - filters: [{type: ExtensionRef, extensionRef: {group: fedmesh.io, kind: FaultInjection, name: delay}}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: delayed, port: 50051}]
---
apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: {name: delay, namespace: demo}
spec:
  delay: {fixed: 20s, percentage: 100}
`,
	// An abort limited to calls with x-chaos: on.
	"chaos": `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: chaos, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: chaos}]
  rules:
  - filters: [{type: ExtensionRef, extensionRef: {group: fedmesh.io, kind: FaultInjection, name: chaos}}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: chaos, port: 50051}]
---
apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: {name: chaos, namespace: demo}
spec:
  abort: {grpcStatus: 8, percentage: 100}
  headers: [{name: x-chaos, value: "on"}]
`,
}

// TestProxylessResilience: a stock grpc-go client with grpc-go's own xDS
// resolver obeys the retries, timeouts and fault delays this control
// plane renders (gRFC A44 retries, A31 max_stream_duration, A33 fault
// delay): each service below has one producer object and a backend that
// counts the attempts of every call.
func TestProxylessResilience(t *testing.T) {
	backends := map[string]*countingBackend{}
	var services []catalog.ImportedService
	for name, doc := range resilienceRoutes {
		b, host, port := startCountingBackend(t, name)
		backends[name] = b
		var tr policy.Traffic
		for _, d := range splitDocs(doc) {
			obj, err := policy.ParseObject([]byte(d))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := tr.Add(obj); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		pol, err := policy.EncodePolicies(tr)
		if err != nil {
			t.Fatal(err)
		}
		services = append(services, catalog.ImportedService{
			Namespace: "demo", Name: name, Type: catalog.ClusterSetIP,
			Ports:    []catalog.Port{{Name: "grpc", Port: 50051, AppProtocol: catalog.AppGRPC}},
			Clusters: []string{"east-1"},
			Endpoints: []catalog.ViewEndpoint{{Endpoint: catalog.Endpoint{Address: host, Port: port, PortName: "grpc",
				Locality: locEast1, Ready: true, ServiceAccount: name}, Healthy: true}},
			Policies: pol, PoliciesCluster: "east-1",
		})
	}
	view := &catalog.View{
		Revision: 2, Local: "east-1",
		Clusters: map[string]catalog.ClusterInfo{"east-1": {Name: "east-1", Locality: locEast1}},
		Services: services,
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
	clients := map[string]testpb.TestServiceClient{}
	for name := range resilienceRoutes {
		conn, err := grpc.NewClient("xds:///"+name+".demo.svc.clusterset.local:50051",
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolverBuilder))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		clients[name] = testpb.NewTestServiceClient(conn)
	}

	// callCtx makes one call to service with the backend's metadata and
	// returns the call's id.
	var seq int
	callCtx := func(ctx context.Context, service string, failFirst int, hold bool, md ...string) (string, error) {
		seq++
		id := fmt.Sprintf("%s-%d", service, seq)
		md = append(md, mdCall, id, mdFailFirst, strconv.Itoa(failFirst))
		if hold {
			md = append(md, mdHold, "1")
		}
		_, err := clients[service].UnaryCall(metadata.AppendToOutgoingContext(ctx, md...), &testpb.SimpleRequest{})
		return id, err
	}
	// call is callCtx without a deadline of the caller's own: a
	// DEADLINE_EXCEEDED comes from the route. A call nothing ends
	// returns after slowHold at the latest.
	call := func(service string, failFirst int, hold bool, md ...string) (string, error) {
		return callCtx(context.Background(), service, failFirst, hold, md...)
	}
	// Every channel is in force (LDS, RDS, CDS, EDS) once a plain call
	// of its service succeeds.
	for name := range resilienceRoutes {
		if name == "delayed" {
			continue // every call of it is delayed past its timeout
		}
		poll.Until(t, 20*time.Second, name+" served", func() error {
			_, err := call(name, 0, false)
			return err
		})
	}

	for _, tc := range []struct {
		service string
		retries int
	}{{"retry", 3}, {"retry-http", 2}} {
		b := backends[tc.service]
		// Failing fewer attempts than the retries allow: the call
		// succeeds, every attempt reached the backend.
		id, err := call(tc.service, tc.retries, false)
		if err != nil {
			t.Errorf("%s: a call whose first %d attempts fail: %v, want retried to success", tc.service, tc.retries, err)
		}
		if got := b.attemptsOf(id); got != tc.retries+1 {
			t.Errorf("%s: backend saw %d attempts of a call failing %d times, want %d", tc.service, got, tc.retries, tc.retries+1)
		}
		// Failing every attempt: the client gives up after the
		// configured retries with the backend's status.
		id, err = call(tc.service, 100, false)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: a call whose attempts all fail: %v, want UNAVAILABLE", tc.service, err)
		}
		if got := b.attemptsOf(id); got != tc.retries+1 {
			t.Errorf("%s: backend saw %d attempts of an always failing call, want %d (1 + %d retries)", tc.service, got, tc.retries+1, tc.retries)
		}
	}

	// Timeouts: a call the backend holds ends DEADLINE_EXCEEDED (the
	// caller set no deadline), after reaching the backend once with the
	// route's deadline.
	for _, service := range []string{"slow", "slow-http"} {
		b := backends[service]
		id, err := call(service, 0, true)
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("%s: a held call: %v, want DEADLINE_EXCEEDED from the route's timeout", service, err)
		}
		if got := b.attemptsOf(id); got != 1 {
			t.Errorf("%s: backend saw %d attempts of the held call, want 1", service, got)
		}
		if got := b.heldWithDeadline(); got != 1 {
			t.Errorf("%s: %d held calls arrived with a deadline, want 1", service, got)
		}
	}

	// The fault delay (gRFC A33): the 20s delay outlasts the caller's
	// 2s deadline, so a call to a backend that answers at once ends
	// DEADLINE_EXCEEDED without reaching it. (grpc-go starts a route's
	// timeout, max_stream_duration, after the delay: only the caller's
	// deadline bounds it.)
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		id, err := callCtx(ctx, "delayed", 0, false)
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("delayed: %v, want DEADLINE_EXCEEDED (the delay outlasts the deadline)", err)
		}
		if got := backends["delayed"].attemptsOf(id); got != 0 {
			t.Errorf("delayed: backend saw %d attempts, want 0 (the client holds the call for the delay)", got)
		}
	}

	// The fault's header match: only calls with x-chaos: on are
	// aborted (grpc-go ignores the fault's own headers: the proxyless
	// route carries them as a match).
	for range 20 {
		if _, err := call("chaos", 0, false); err != nil {
			t.Fatalf("chaos: a call without x-chaos: %v, want served", err)
		}
		id, err := call("chaos", 0, false, "x-chaos", "on")
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("chaos: a call with x-chaos: on: %v, want RESOURCE_EXHAUSTED (the abort)", err)
		}
		if got := backends["chaos"].attemptsOf(id); got != 0 {
			t.Fatalf("chaos: backend saw %d attempts of an aborted call, want 0", got)
		}
	}
}
