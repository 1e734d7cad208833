package proxy_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

// newTracer returns a tracer of cluster that exports to memory (exp nil)
// or to the OTLP collector at endpoint.
func newTracer(t *testing.T, cluster string, exp *tracetest.InMemoryExporter, endpoint string, reg prometheus.Registerer) *tracing.Tracer {
	t.Helper()
	cfg := tracing.Config{ServiceName: "workload." + cluster, Namespace: "demo", Cluster: cluster, SamplingPercent: 100,
		Endpoint: endpoint, QueueSize: 16, BatchSize: 8, BatchInterval: 5 * time.Millisecond, ExportTimeout: 200 * time.Millisecond}
	if exp != nil {
		cfg.Exporter = exp
	}
	tr, err := tracing.New(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tr.Shutdown(ctx)
	})
	return tr
}

// startTracedWorkload is startWorkload with a tracer, in cluster.
func startTracedWorkload(t *testing.T, ca *meshtest.CA, cluster string, tr *tracing.Tracer, s naming.ServicePort, a *app) *workload {
	t.Helper()
	p, err := proxy.New(proxy.Config{Cluster: cluster, Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	w := &workload{p: p, addr: l.Addr().String(), id: ca.Workload("demo", "echo")}
	_, certPEM, keyPEM := ca.Issue(t, meshtest.SVID{URIs: []string{w.id}})
	in := meshtest.Inbound(w.addr, meshtest.InboundPort{SP: s, App: a.addr, HTTP: true})
	configure(t, ca, p, map[string][]types.Resource{
		xdsclient.ListenerType: in[:1],
		xdsclient.ClusterType:  in[1:],
		xdsclient.SecretType:   meshtest.Secrets(certPEM, keyPEM, ca.PEM()),
	})
	serve(t, func(ctx context.Context) error { return p.ServeInbound(ctx, l) })
	t.Cleanup(p.Close)
	return w
}

// startTracedClient is startClient with a tracer, in east-1; ca should be
// east-1's cluster CA so that servers learn the caller's cluster.
func startTracedClient(t *testing.T, ca *meshtest.CA, tr *tracing.Tracer, svcs ...service) *client {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	bm, err := balancer.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Cluster: "east-1", BalancerMetrics: bm, Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{p: p, reg: reg, id: ca.Workload("demo", "client")}
	c.configure(t, ca, svcs...)
	l := listen(t)
	c.addr = l.Addr().String()
	serve(t, func(ctx context.Context) error { return p.ServeOutboundHTTP(ctx, l) })
	t.Cleanup(p.Close)
	return c
}

// headerLog remembers the trace headers of the requests an app received.
type headerLog struct {
	mu sync.Mutex // guards hs
	hs []http.Header
}

func (l *headerLog) handler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.hs = append(l.hs, r.Header.Clone())
		l.mu.Unlock()
		_, _ = w.Write([]byte(name))
	}
}

func (l *headerLog) last() http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.hs) == 0 {
		return nil
	}
	return l.hs[len(l.hs)-1]
}

func spanAttrs(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// TestTraceFailover sends a request with B3 context through a client
// sidecar whose first endpoint (east-1, priority 0) answers 503 and whose
// retry fails over to west-1 (priority 1): one trace, the client span a
// child of the app's, a server span in each workload a child of the
// client span, the retry and failover events, the endpoint and cluster
// attributes, and B3 and W3C context at the app.
func TestTraceFailover(t *testing.T) {
	root := meshtest.NewCA(t, td)
	east, west := root.ClusterCA(t, "east-1"), root.ClusterCA(t, "west-1")
	s := sp("echo", 8080)
	var seen headerLog
	broken := startApp(t, "broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusServiceUnavailable)
	})
	good := startApp(t, "good", seen.handler("good"))
	cexp, eexp, wexp := tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter()
	ctr := newTracer(t, "east-1", cexp, "", nil)
	w1 := startTracedWorkload(t, east, "east-1", newTracer(t, "east-1", eexp, "", nil), s, broken)
	w2 := startTracedWorkload(t, west, "west-1", newTracer(t, "west-1", wexp, "", nil), s, good)
	c := startTracedClient(t, east, ctr, service{sp: s, retries: 2, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{w1.id}}, eps: []meshtest.Endpoint{
		{Addr: w1.addr, Priority: 0, Cluster: "east-1", Identity: w1.id, Healthy: true},
		{Addr: w2.addr, Priority: 1, Cluster: "west-1", Identity: w2.id, Healthy: true},
	}})

	req, err := http.NewRequest(http.MethodGet, svcURL(s)+"hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	const appTrace, appSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req.Header.Set("X-B3-TraceId", appTrace)
	req.Header.Set("X-B3-SpanId", appSpan)
	req.Header.Set("X-B3-Sampled", "1")
	if res := do(t, c.http(t), req); res.Code != http.StatusOK || res.App != "good" {
		t.Fatalf("got %d from %q (%s), want 200 from good after failover", res.Code, res.App, res.Error)
	}

	var cs, es, ws tracetest.SpanStub
	poll.Until(t, 10*time.Second, "one span at the client and in each workload", func() error {
		for _, x := range []struct {
			exp  *tracetest.InMemoryExporter
			into *tracetest.SpanStub
		}{{cexp, &cs}, {eexp, &es}, {wexp, &ws}} {
			spans := x.exp.GetSpans()
			if len(spans) != 1 {
				return fmt.Errorf("%d spans in an exporter", len(spans))
			}
			*x.into = spans[0]
		}
		return nil
	})
	if cs.SpanKind != trace.SpanKindClient || es.SpanKind != trace.SpanKindServer || ws.SpanKind != trace.SpanKindServer {
		t.Errorf("kinds: client %v, east %v, west %v", cs.SpanKind, es.SpanKind, ws.SpanKind)
	}
	for name, st := range map[string]tracetest.SpanStub{"client": cs, "east": es, "west": ws} {
		if got := st.SpanContext.TraceID().String(); got != appTrace {
			t.Errorf("%s span in trace %s, want the app's %s", name, got, appTrace)
		}
	}
	if cs.Parent.SpanID().String() != appSpan {
		t.Errorf("client span's parent %s, want the app's span %s", cs.Parent.SpanID(), appSpan)
	}
	for name, st := range map[string]tracetest.SpanStub{"east": es, "west": ws} {
		if st.Parent.SpanID() != cs.SpanContext.SpanID() {
			t.Errorf("%s server span's parent %s, want the client span %s", name, st.Parent.SpanID(), cs.SpanContext.SpanID())
		}
	}
	ca := spanAttrs(cs.Attributes)
	for k, v := range map[string]string{
		"fedmesh.cluster": "east-1", "fedmesh.source_cluster": "east-1", "fedmesh.destination_cluster": "west-1",
		"fedmesh.priority": "1", "fedmesh.attempts": "2", "fedmesh.destination_locality": "r/z",
		"fedmesh.service": s.String(), "http.response.status_code": "200",
	} {
		if ca[k] != v {
			t.Errorf("client span %s = %q, want %q", k, ca[k], v)
		}
	}
	if host, port, _ := net.SplitHostPort(w2.addr); ca["server.address"] != host || ca["server.port"] != port {
		t.Errorf("client span endpoint %s:%s, want %s", ca["server.address"], ca["server.port"], w2.addr)
	}
	var events []string
	for _, e := range cs.Events {
		events = append(events, e.Name)
	}
	if len(events) != 2 || events[0] != "retry" || events[1] != "failover" {
		t.Errorf("client span events %v, want [retry failover]", events)
	}
	wa, ea := spanAttrs(ws.Attributes), spanAttrs(es.Attributes)
	for k, v := range map[string]string{"fedmesh.cluster": "west-1", "fedmesh.source_cluster": "east-1", "fedmesh.destination_cluster": "west-1",
		"fedmesh.source_principal": c.id, "http.response.status_code": "200"} {
		if wa[k] != v {
			t.Errorf("west server span %s = %q, want %q", k, wa[k], v)
		}
	}
	if ea["http.response.status_code"] != "503" || es.Status.Code.String() != "Error" {
		t.Errorf("east server span status %s (%v), want 503 and Error", ea["http.response.status_code"], es.Status)
	}
	h := seen.last()
	want := "00-" + appTrace + "-" + ws.SpanContext.SpanID().String() + "-01"
	if h.Get("Traceparent") != want || h.Get("X-B3-Traceid") != appTrace || h.Get("X-B3-Spanid") != ws.SpanContext.SpanID().String() || h.Get("X-B3-Sampled") != "1" {
		t.Errorf("the app got traceparent %q and B3 %q/%q/%q, want %s and the west server span in B3", h.Get("Traceparent"), h.Get("X-B3-Traceid"), h.Get("X-B3-Spanid"), h.Get("X-B3-Sampled"), want)
	}
}

// TestTraceCollectorDown: with the collector blackholed (it accepts and
// never answers), every request succeeds and the spans that cannot wait
// are dropped and counted.
func TestTraceCollectorDown(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	s := sp("echo", 8080)
	l := listen(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	reg := prometheus.NewPedanticRegistry()
	tr := newTracer(t, "east-1", nil, l.Addr().String(), reg)
	w := startTracedWorkload(t, ca, "east-1", tr, s, startApp(t, "echo", nil))
	c := startTracedClient(t, ca, tr, service{sp: s, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{w.id}}, eps: []meshtest.Endpoint{
		{Addr: w.addr, Cluster: "east-1", Identity: w.id, Healthy: true},
	}})
	hc := c.http(t)
	const n = 200
	for i := range n {
		if res := get(t, hc, svcURL(s)); res.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s with the collector down", i, res.Code, res.Error)
		}
	}
	poll.Until(t, 10*time.Second, "spans dropped for a full queue", func() error {
		if d := meshtest.Counter(t, reg, "fedmesh_sidecar_trace_spans_dropped_total", map[string]string{"reason": "queue_full"}); d == 0 {
			return fmt.Errorf("none dropped of %d", 2*n)
		}
		return nil
	})
	if e := meshtest.Counter(t, reg, "fedmesh_sidecar_trace_spans_exported_total", nil); e != 0 {
		t.Errorf("%v spans exported to a blackholed collector", e)
	}
}

// TestTraceSamplingPolicy: the telemetry configuration of the snapshot
// (a TelemetryPolicy's samplingPercent) overrides the tracer's sampling,
// and its tags go on every span; without it the flag's percentage is back.
func TestTraceSamplingPolicy(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	s := sp("echo", 8080)
	exp := tracetest.NewInMemoryExporter()
	reg := prometheus.NewPedanticRegistry()
	tr, err := tracing.New(tracing.Config{Exporter: exp, ServiceName: "client.demo", Cluster: "east-1", SamplingPercent: 0, BatchInterval: 5 * time.Millisecond}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	w := startWorkload(t, ca, "echo", s, startApp(t, "echo", nil))
	c := startTracedClient(t, ca, tr, service{sp: s, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{w.id}}, eps: []meshtest.Endpoint{
		{Addr: w.addr, Cluster: "east-1", Identity: w.id, Healthy: true},
	}})
	hc := c.http(t)
	// send makes n requests and returns how many spans were exported,
	// waiting for want of them (a span ends just after its response).
	send := func(n, want int) int {
		t.Helper()
		exp.Reset()
		for range n {
			if res := get(t, hc, svcURL(s)); res.Code != http.StatusOK {
				t.Fatalf("%d %s", res.Code, res.Error)
			}
		}
		poll.Until(t, 10*time.Second, fmt.Sprintf("%d spans exported", want), func() error {
			if err := tr.ForceFlush(context.Background()); err != nil {
				return err
			}
			if got := len(exp.GetSpans()); got < want {
				return fmt.Errorf("%d so far", got)
			}
			return nil
		})
		return len(exp.GetSpans())
	}
	if got := send(5, 0); got != 0 {
		t.Fatalf("%d spans at 0%% sampling", got)
	}
	setPolicy := func(percent *float64, tags map[string]string) {
		t.Helper()
		snap := *c.p.Snapshot()
		snap.Telemetry.SamplingPercent, snap.Telemetry.Tags = percent, tags
		if err := c.p.Update(&snap); err != nil {
			t.Fatal(err)
		}
	}
	all := 100.0
	setPolicy(&all, map[string]string{"team": "payments"})
	if got := send(5, 5); got != 5 {
		t.Fatalf("%d spans of 5 requests with a policy of 100%%", got)
	}
	if tag := spanAttrs(exp.GetSpans()[0].Attributes)["team"]; tag != "payments" {
		t.Errorf("span tag team = %q, want the policy's payments", tag)
	}
	bad := 250.0
	setPolicyErr := func() error {
		snap := *c.p.Snapshot()
		snap.Telemetry.SamplingPercent = &bad
		return c.p.Update(&snap)
	}
	if err := setPolicyErr(); err == nil {
		t.Error("a sampling percentage of 250 accepted")
	}
	if got := send(3, 3); got != 3 {
		t.Errorf("%d spans of 3 requests after a refused policy, want 100%% kept", got)
	}
	setPolicy(nil, nil)
	if got := send(5, 0); got != 0 {
		t.Errorf("%d spans without a policy, want the flag's 0%%", got)
	}
}
