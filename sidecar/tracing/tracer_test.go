package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
	"github.com/fedmesh/fedmesh/topology"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSampler(t *testing.T) {
	low, _ := mustIDs(t, "4bf92f3577b34da60000000000000001", spanHex)  // sampled by any ratio > 0
	high, _ := mustIDs(t, "4bf92f3577b34da6ffffffffffffffff", spanHex) // sampled only at 100%
	_, sid := mustIDs(t, traceHex, spanHex)
	parent := func(sampled bool) context.Context {
		var f trace.TraceFlags
		if sampled {
			f = trace.FlagsSampled
		}
		return trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: high, SpanID: sid, TraceFlags: f, Remote: true}))
	}
	tests := []struct {
		name    string
		percent float64
		ctx     context.Context
		trace   trace.TraceID
		want    sdktrace.SamplingDecision
	}{
		{"new trace at 0%", 0, context.Background(), low, sdktrace.Drop},
		{"new trace at 100%", 100, context.Background(), high, sdktrace.RecordAndSample},
		{"new trace at 1%, low trace id", 1, context.Background(), low, sdktrace.RecordAndSample},
		{"new trace at 1%, high trace id", 1, context.Background(), high, sdktrace.Drop},
		{"sampled parent at 0%", 0, parent(true), high, sdktrace.RecordAndSample},
		{"unsampled parent at 100%", 100, parent(false), high, sdktrace.Drop},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := tracing.NewSampler(tc.percent)
			if err != nil {
				t.Fatal(err)
			}
			got := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: tc.ctx, TraceID: tc.trace, Name: "GET", Kind: trace.SpanKindClient})
			if got.Decision != tc.want {
				t.Errorf("decision %v, want %v", got.Decision, tc.want)
			}
		})
	}
	t.Run("the percentage changes while running", func(t *testing.T) {
		s, set, err := tracing.NewSampler(0)
		if err != nil {
			t.Fatal(err)
		}
		p := sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: high}
		if d := s.ShouldSample(p).Decision; d != sdktrace.Drop {
			t.Fatalf("at 0%%: %v", d)
		}
		if err := set(100); err != nil {
			t.Fatal(err)
		}
		if d := s.ShouldSample(p).Decision; d != sdktrace.RecordAndSample {
			t.Fatalf("at 100%%: %v", d)
		}
		if err := set(101); err == nil {
			t.Fatal("101% accepted")
		}
		if d := s.ShouldSample(p).Decision; d != sdktrace.RecordAndSample {
			t.Fatalf("a refused percentage changed sampling: %v", d)
		}
	})
	for _, bad := range []float64{-1, 100.5} {
		if _, _, err := tracing.NewSampler(bad); err == nil {
			t.Errorf("NewSampler(%v) accepted", bad)
		}
	}
}

// newTestTracer returns a tracer that exports to memory.
func newTestTracer(t testing.TB, cluster string, percent float64) (*tracing.Tracer, *tracetest.InMemoryExporter, *prometheus.Registry) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	reg := prometheus.NewPedanticRegistry()
	tr, err := tracing.New(tracing.Config{
		Exporter: exp, ServiceName: "client.demo", Namespace: "demo", Cluster: cluster,
		Locality: topology.Locality{Region: "us-east", Zone: "a"}, SamplingPercent: percent,
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, exp, reg
}

func flush(t testing.TB, tr *tracing.Tracer, exp *tracetest.InMemoryExporter) tracetest.SpanStubs {
	t.Helper()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return exp.GetSpans()
}

func attrs(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

func wantAttrs(t *testing.T, what string, got []attribute.KeyValue, want map[string]string) {
	t.Helper()
	m := attrs(got)
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s: %s = %q, want %q (all: %v)", what, k, m[k], v, m)
		}
	}
}

// TestSpans follows one request through a client sidecar that fails over
// from east-1 to west-1 and the server sidecar in west-1: the attributes,
// events and links of both spans.
func TestSpans(t *testing.T) {
	client, cexp, _ := newTestTracer(t, "east-1", 100)
	server, sexp, _ := newTestTracer(t, "west-1", 0) // follows the caller's decision
	if err := client.Configure(nil, map[string]string{"team": "payments"}); err != nil {
		t.Fatal(err)
	}

	h := http.Header{}
	h.Set("X-B3-TraceId", traceHex)
	h.Set("X-B3-SpanId", spanHex)
	h.Set("X-B3-Sampled", "1")
	cs := client.StartClient(h, "GET", "/hello", "demo/echo:8080")
	if !cs.Recording() || cs.TraceID() != traceHex {
		t.Fatalf("client span recording %v trace %s, want a recording span of %s", cs.Recording(), cs.TraceID(), traceHex)
	}
	if h.Get("X-B3-TraceId") != traceHex || h.Get("Traceparent") == "" || h.Get("X-B3-SpanId") == spanHex {
		t.Fatalf("outbound headers %v: want the client span's context in W3C and B3 multi", h)
	}
	cs.Attempt(tracing.Endpoint{Address: "127.0.0.1:15006", Cluster: "east-1", Priority: 0, Locality: topology.Locality{Region: "us-east", Zone: "a"}})
	cs.Retry("connect_failure")
	cs.Attempt(tracing.Endpoint{Address: "127.0.0.2:15443", Cluster: "west-1", Priority: 2, Locality: topology.Locality{Region: "us-west", Zone: "b"}})

	ss := server.StartServer(h, "GET", "/hello", "demo/echo:8080")
	ss.SetSource("east-1", "spiffe://fed.test/ns/demo/sa/client", "127.0.0.2:40000")
	ss.End(200, "")
	cs.End(200, "")

	cspans, sspans := flush(t, client, cexp), flush(t, server, sexp)
	if len(cspans) != 1 || len(sspans) != 1 {
		t.Fatalf("spans: client %d, server %d, want 1 each", len(cspans), len(sspans))
	}
	c, s := cspans[0], sspans[0]
	if c.SpanKind != trace.SpanKindClient || s.SpanKind != trace.SpanKindServer {
		t.Errorf("kinds %v, %v", c.SpanKind, s.SpanKind)
	}
	if c.Parent.SpanID().String() != spanHex || c.SpanContext.TraceID().String() != traceHex {
		t.Errorf("client span parent %s trace %s, want the app's %s in %s", c.Parent.SpanID(), c.SpanContext.TraceID(), spanHex, traceHex)
	}
	if s.Parent.SpanID() != c.SpanContext.SpanID() || s.SpanContext.TraceID() != c.SpanContext.TraceID() {
		t.Errorf("server span parent %s, want the client span %s", s.Parent.SpanID(), c.SpanContext.SpanID())
	}
	wantAttrs(t, "client span", c.Attributes, map[string]string{
		"fedmesh.cluster": "east-1", "fedmesh.locality": "us-east/a", "fedmesh.service": "demo/echo:8080",
		"fedmesh.source_cluster": "east-1", "fedmesh.destination_cluster": "west-1",
		"fedmesh.destination_locality": "us-west/b", "fedmesh.priority": "2", "fedmesh.attempts": "2",
		"server.address": "127.0.0.2", "server.port": "15443", "http.request.method": "GET",
		"url.path": "/hello", "http.response.status_code": "200", "team": "payments",
	})
	wantAttrs(t, "server span", s.Attributes, map[string]string{
		"fedmesh.cluster": "west-1", "fedmesh.source_cluster": "east-1", "fedmesh.destination_cluster": "west-1",
		"fedmesh.source_principal": "spiffe://fed.test/ns/demo/sa/client", "network.peer.address": "127.0.0.2",
		"http.response.status_code": "200",
	})
	if _, ok := attrs(s.Attributes)["team"]; ok {
		t.Errorf("server span has the client's tag")
	}
	wantAttrs(t, "client resource", c.Resource.Attributes(), map[string]string{"service.name": "client.demo", "fedmesh.cluster": "east-1"})
	var events []string
	for _, e := range c.Events {
		events = append(events, e.Name)
	}
	if len(events) != 2 || events[0] != tracing.EventRetry || events[1] != tracing.EventFailover {
		t.Fatalf("client events %v, want [retry failover]", events)
	}
	wantAttrs(t, "retry event", c.Events[0].Attributes, map[string]string{"fedmesh.retry_reason": "connect_failure", "fedmesh.destination_cluster": "east-1"})
	wantAttrs(t, "failover event", c.Events[1].Attributes, map[string]string{"fedmesh.from_cluster": "east-1", "fedmesh.to_cluster": "west-1", "fedmesh.to_priority": "2"})
}

func TestSpanWithoutFailover(t *testing.T) {
	tr, exp, _ := newTestTracer(t, "east-1", 100)
	cs := tr.StartClient(http.Header{}, "POST", "/", "demo/echo:8080")
	ep := tracing.Endpoint{Address: "127.0.0.1:1", Cluster: "east-1", Priority: 0}
	cs.Attempt(ep)
	cs.Retry("status_5xx")
	cs.Attempt(ep) // same cluster and priority: a retry, no failover
	cs.End(503, "")
	spans := flush(t, tr, exp)
	if len(spans) != 1 || len(spans[0].Events) != 1 || spans[0].Events[0].Name != tracing.EventRetry {
		t.Fatalf("spans %+v, want one with a single retry event", spans)
	}
	if spans[0].Status.Code.String() != "Error" {
		t.Errorf("a 503 span has status %v, want Error", spans[0].Status)
	}
}

func TestUnsampledPropagates(t *testing.T) {
	tr, exp, _ := newTestTracer(t, "east-1", 0)
	h := http.Header{}
	cs := tr.StartClient(h, "GET", "/", "demo/echo:8080")
	if cs.Recording() {
		t.Fatal("a new trace at 0% is recording")
	}
	cs.Attempt(tracing.Endpoint{Cluster: "east-1"})
	cs.End(200, "")
	if got := h.Get("Traceparent"); len(got) != 55 || got[53:] != "00" {
		t.Errorf("traceparent %q: want the unsampled context carried on", got)
	}
	if spans := flush(t, tr, exp); len(spans) != 0 {
		t.Errorf("exported %d unsampled spans", len(spans))
	}
	var nilTracer *tracing.Tracer
	h2 := http.Header{"Traceparent": {"00-" + traceHex + "-" + spanHex + "-01"}}
	zero := nilTracer.StartClient(h2, "GET", "/", "x")
	zero.Attempt(tracing.Endpoint{})
	zero.End(200, "")
	if h2.Get("Traceparent") != "00-"+traceHex+"-"+spanHex+"-01" || zero.TraceID() != "" {
		t.Errorf("a nil tracer changed headers %v", h2)
	}
}

func TestConfigure(t *testing.T) {
	tr, _, reg := newTestTracer(t, "east-1", 1)
	fifty := 50.0
	if err := tr.Configure(&fifty, nil); err != nil {
		t.Fatal(err)
	}
	if got := tr.SamplingPercent(); got != 50 {
		t.Errorf("sampling %v after a policy of 50", got)
	}
	bad := 300.0
	if err := tr.Configure(&bad, nil); err == nil {
		t.Error("a policy of 300% accepted")
	}
	if got := tr.SamplingPercent(); got != 50 {
		t.Errorf("sampling %v after a refused policy, want 50 kept", got)
	}
	if n := meshtest.Counter(t, reg, "fedmesh_sidecar_trace_context_invalid_total", map[string]string{"format": "policy"}); n != 1 {
		t.Errorf("invalid policies counted %v, want 1", n)
	}
	if err := tr.Configure(nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := tr.SamplingPercent(); got != 1 {
		t.Errorf("sampling %v without a policy, want the flag's 1", got)
	}
}

func dropped(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	return meshtest.Counter(t, reg, "fedmesh_sidecar_trace_spans_dropped_total", map[string]string{"reason": reason})
}

// stuckExporter blocks every export until released.
type stuckExporter struct {
	release chan struct{}
	once    sync.Once
}

func (e *stuckExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *stuckExporter) Shutdown(context.Context) error {
	e.once.Do(func() { close(e.release) })
	return nil
}

// TestQueueFullDrops: while the collector does not answer, ending spans
// never waits; spans past the queue's bound are dropped and counted.
func TestQueueFullDrops(t *testing.T) {
	exp := &stuckExporter{release: make(chan struct{})}
	reg := prometheus.NewPedanticRegistry()
	tr, err := tracing.New(tracing.Config{Exporter: exp, ServiceName: "s", Cluster: "c", SamplingPercent: 100,
		QueueSize: 4, BatchSize: 1, BatchInterval: time.Millisecond, ExportTimeout: time.Minute}, reg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for range n {
		sp := tr.StartClient(http.Header{}, "GET", "/", "demo/echo:8080")
		sp.End(200, "")
	}
	// At most the queue and the batch in export are kept.
	if d := dropped(t, reg, "queue_full"); d < n-4-1 {
		t.Errorf("dropped %v of %d spans with a queue of 4 and a stuck collector, want at least %d", d, n, n-5)
	}
	// Shutdown gives up on the stuck export when its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}

// blackhole accepts TCP connections and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestBlackholedCollector points the real OTLP exporters at a collector
// that accepts connections and never answers, and at an address where
// nothing listens: spans end at once, the queue overflows and the drops
// are counted, nothing is exported.
func TestBlackholedCollector(t *testing.T) {
	dead := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	for _, proto := range []tracing.Protocol{tracing.GRPC, tracing.HTTP} {
		for name, addr := range map[string]func(*testing.T) string{"blackholed": blackhole, "refused": dead} {
			t.Run(string(proto)+" "+name, func(t *testing.T) {
				reg := prometheus.NewPedanticRegistry()
				tr, err := tracing.New(tracing.Config{Endpoint: addr(t), Protocol: proto, ServiceName: "s", Cluster: "c",
					SamplingPercent: 100, QueueSize: 8, BatchSize: 4, BatchInterval: 5 * time.Millisecond, ExportTimeout: 300 * time.Millisecond}, reg)
				if err != nil {
					t.Fatal(err)
				}
				defer func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_ = tr.Shutdown(ctx)
				}()
				const n = 500
				for range n {
					sp := tr.StartClient(http.Header{}, "GET", "/", "demo/echo:8080")
					sp.End(200, "")
				}
				poll.Until(t, 10*time.Second, "every lost span counted as dropped", func() error {
					if d := dropped(t, reg, "queue_full") + dropped(t, reg, "export_failed"); d < n-8 {
						return fmt.Errorf("queue_full %v, export_failed %v of %d spans", dropped(t, reg, "queue_full"), dropped(t, reg, "export_failed"), n)
					}
					return nil
				})
				if d := dropped(t, reg, "queue_full"); d == 0 {
					t.Error("no span dropped for a full queue")
				}
				if n := meshtest.Counter(t, reg, "fedmesh_sidecar_trace_spans_exported_total", nil); n != 0 {
					t.Errorf("exported %v spans to a dead collector", n)
				}
			})
		}
	}
}

func TestConfigErrors(t *testing.T) {
	ok := tracing.Config{Endpoint: "127.0.0.1:4317", ServiceName: "s", Cluster: "c"}
	for name, mod := range map[string]func(*tracing.Config){
		"no endpoint":     func(c *tracing.Config) { c.Endpoint = "" },
		"bad endpoint":    func(c *tracing.Config) { c.Endpoint = "collector" },
		"bad url":         func(c *tracing.Config) { c.Endpoint = "ftp://collector:21" },
		"bad protocol":    func(c *tracing.Config) { c.Protocol = "thrift" },
		"bad sampling":    func(c *tracing.Config) { c.SamplingPercent = -3 },
		"no service name": func(c *tracing.Config) { c.ServiceName = "" },
		"no cluster":      func(c *tracing.Config) { c.Cluster = "" },
		"negative queue":  func(c *tracing.Config) { c.QueueSize = -1 },
	} {
		c := ok
		mod(&c)
		if tr, err := tracing.New(c, nil); err == nil {
			_ = tr.Shutdown(context.Background())
			t.Errorf("%s: accepted", name)
		}
	}
	for _, ep := range []string{"127.0.0.1:4317", "http://127.0.0.1:4318", "https://collector.example:4318/v1/traces"} {
		c := ok
		c.Endpoint = ep
		c.Protocol = tracing.HTTP
		tr, err := tracing.New(c, nil)
		if err != nil {
			t.Errorf("%s: %v", ep, err)
			continue
		}
		_ = tr.Shutdown(context.Background())
	}
}

// TestOTLPHTTPPath: the HTTP exporter posts to /v1/traces whether the
// endpoint is HOST:PORT or a URL without a path, and to the URL's path
// when it has one.
func TestOTLPHTTPPath(t *testing.T) {
	paths := make(chan string, 16)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case paths <- r.URL.Path:
		default:
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	defer func() {
		_ = srv.Close()
		<-done
	}()
	addr := l.Addr().String()
	for ep, want := range map[string]string{
		addr:                              "/v1/traces",
		"http://" + addr:                  "/v1/traces",
		"http://" + addr + "/":            "/v1/traces",
		"http://" + addr + "/otlp/traces": "/otlp/traces",
	} {
		reg := prometheus.NewPedanticRegistry()
		tr, err := tracing.New(tracing.Config{Endpoint: ep, Protocol: tracing.HTTP, ServiceName: "s", Cluster: "c", SamplingPercent: 100}, reg)
		if err != nil {
			t.Fatal(err)
		}
		sp := tr.StartClient(http.Header{}, "GET", "/", "demo/echo:8080")
		sp.End(200, "")
		if err := tr.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := <-paths; got != want {
			t.Errorf("endpoint %s: posted to %s, want %s", ep, got, want)
		}
		if n := meshtest.Counter(t, reg, "fedmesh_sidecar_trace_spans_exported_total", nil); n != 1 {
			t.Errorf("endpoint %s: %v spans exported, want 1", ep, n)
		}
		_ = tr.Shutdown(context.Background())
	}
}
