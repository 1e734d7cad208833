package webview

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// fakeSidecar serves the sidecar's request series from a real registry,
// as a sidecar's admin port does.
type fakeSidecar struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	srv      *httptest.Server
}

func newFakeSidecar(t *testing.T) *fakeSidecar {
	t.Helper()
	reg := prometheus.NewRegistry()
	f := &fakeSidecar{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: familyRequests},
			[]string{"direction", "source_cluster", "destination_cluster", "service", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: familyDuration, Buckets: []float64{.001, .01, .1}},
			[]string{"direction", "source_cluster", "destination_cluster", "service"}),
	}
	reg.MustRegister(f.requests, f.duration)
	mux := http.NewServeMux()
	mux.Handle("GET /stats/prometheus", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSidecar) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// serve records n requests from east-1 to dest answering code after
// seconds.
func (f *fakeSidecar) serve(dest, code string, n int, seconds float64) {
	for range n {
		f.requests.WithLabelValues("outbound", "east-1", dest, "demo/echo:8080", code).Inc()
		f.duration.WithLabelValues("outbound", "east-1", dest, "demo/echo:8080").Observe(seconds)
	}
}

// fakeClock advances only when told to.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func TestCollectorRatesOverTheWindow(t *testing.T) {
	a, b := newFakeSidecar(t), newFakeSidecar(t)
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	targets := []Target{{Kind: KindSidecar, Node: "a", Address: a.addr()}, {Kind: KindSidecar, Node: "b", Address: b.addr()}}
	c, err := NewCollector(CollectorConfig{
		Targets: func() []Target { return targets }, Interval: time.Second, Window: 4 * time.Second,
		Now: clock.Now, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a.serve("east-1", "2xx", 1000, 0.0005) // before the first tick: a baseline, not a rate
	c.Tick(ctx)
	if got := c.Snapshot(); len(got.Edges) != 0 || got.WindowSeconds != 0 {
		t.Fatalf("after one tick: %d edges over %vs, want none", len(got.Edges), got.WindowSeconds)
	}
	// Two seconds: a serves 20 local requests, b 20 to west-1 of which
	// 5 fail.
	for range 2 {
		a.serve("east-1", "2xx", 10, 0.0005)
		b.serve("west-1", "2xx", 5, 0.05)
		b.serve("west-1", "5xx", 5, 0.05)
		clock.now = clock.now.Add(time.Second)
		c.Tick(ctx)
	}
	got := c.Snapshot()
	if got.WindowSeconds != 2 {
		t.Errorf("window spans %vs, want 2", got.WindowSeconds)
	}
	local := got.Edges[EdgeKey{"east-1", "east-1"}]
	if local.Requests != 20 || local.RequestRate != 10 || local.ErrorRate != 0 {
		t.Errorf("east-1>east-1 = %+v, want 20 requests, 10/s, no errors", local)
	}
	if local.P99 <= 0 || local.P99 > 0.001 {
		t.Errorf("east-1>east-1 p99 = %v, want within the first bucket (1ms)", local.P99)
	}
	west := got.Edges[EdgeKey{"east-1", "west-1"}]
	if west.Requests != 20 || west.ErrorRate != 5 || west.ErrorRatio != 0.5 {
		t.Errorf("east-1>west-1 = %+v, want 20 requests, 5 errors/s, ratio 0.5", west)
	}
	if west.P99 < 0.01 || west.P99 > 0.1 {
		t.Errorf("east-1>west-1 p99 = %v, want in (10ms, 100ms]", west.P99)
	}

	// b stops answering; its edge leaves as its ticks age out of the
	// window, and the failed read is counted.
	b.srv.Close()
	for range 4 {
		clock.now = clock.now.Add(time.Second)
		c.Tick(ctx)
	}
	got = c.Snapshot()
	if _, ok := got.Edges[EdgeKey{"east-1", "west-1"}]; ok {
		t.Errorf("east-1>west-1 still has traffic after its sidecar is gone: %+v", got.Edges)
	}
	var down []string
	for _, s := range got.Targets {
		if !s.Up {
			down = append(down, s.Node)
		}
	}
	if len(down) != 1 || down[0] != "b" {
		t.Errorf("targets down = %v, want [b]", down)
	}
	if n := counterValue(t, c.scrapes.WithLabelValues(resultError)); n != 4 {
		t.Errorf("failed reads counted %v, want 4", n)
	}
}

func TestWindowCounterReset(t *testing.T) {
	w := newWindow(10 * time.Second)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	k := EdgeKey{"east-1", "east-2"}
	pg := func(n float64) map[string]*page {
		return map[string]*page{"x": {edges: map[EdgeKey]*counts{k: {requests: n, buckets: map[float64]float64{math.Inf(1): n}}}}}
	}
	w.add(t0, pg(100))
	w.add(t0.Add(time.Second), pg(110))
	w.add(t0.Add(2*time.Second), pg(4)) // the sidecar restarted
	edges, _, secs := w.rates()
	if got := edges[k].Requests; got != 14 || secs != 2 {
		t.Errorf("requests = %v over %vs, want 14 over 2s (10, then 4 after the restart)", got, secs)
	}
}

func TestCollectorBoundsTargets(t *testing.T) {
	a := newFakeSidecar(t)
	var targets []Target
	for range 5 {
		targets = append(targets, Target{Kind: KindSidecar, Address: a.addr()})
	}
	c, err := NewCollector(CollectorConfig{Targets: func() []Target { return targets }, MaxTargets: 2})
	if err != nil {
		t.Fatal(err)
	}
	c.Tick(context.Background())
	if n := len(c.Snapshot().Targets); n != 2 {
		t.Errorf("%d targets read, want 2", n)
	}
	if n := counterValue(t, c.dropped); n != 3 {
		t.Errorf("dropped %v, want 3", n)
	}
}

func TestCollectorConfigErrors(t *testing.T) {
	targets := func() []Target { return nil }
	tests := []struct {
		name string
		cfg  CollectorConfig
		want string
	}{
		{name: "no targets", cfg: CollectorConfig{}, want: "Targets is required"},
		{name: "window too short", cfg: CollectorConfig{Targets: targets, Interval: time.Second, Window: time.Second}, want: "shorter than two intervals"},
		{name: "negative interval", cfg: CollectorConfig{Targets: targets, Interval: -time.Second}, want: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewCollector(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
