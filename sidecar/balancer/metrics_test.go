package balancer

import (
	"errors"
	"fmt"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// seriesOf returns "family{reason/result}" of every series of upstream in
// reg, sorted.
func seriesOf(t *testing.T, reg prometheus.Gatherer, upstream string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["upstream"] == upstream {
				out = append(out, mf.GetName()+"{"+labels["reason"]+labels["result"]+"}")
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestMetricsDelete deletes the series of one upstream of two: the other
// keeps its series, the deleted one's balancer (still in use) does not
// bring them back, and a new balancer of that name starts them again.
func TestMetricsDelete(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	const gone, kept = "demo/gone:80", "demo/kept:80"
	// What use makes: a pick with no hosts and a retry asked for.
	used := []string{
		"fedmesh_sidecar_lb_pick_failures_total{no_hosts}",
		"fedmesh_sidecar_lb_retries_total{allowed}",
	}
	use := func(b *Balancer) {
		t.Helper()
		if _, err := b.Pick(); !errors.Is(err, ErrNoHosts) {
			t.Fatalf("Pick with no hosts: %v, want ErrNoHosts", err)
		}
		if b.TryRetry() {
			b.RetryDone()
		}
	}
	bals := map[string]*Balancer{}
	for _, name := range []string{gone, kept} {
		if bals[name], err = New(Config{Name: name, Metrics: m}); err != nil {
			t.Fatal(err)
		}
		use(bals[name])
	}
	m.Delete(gone)
	// The deleted upstream's balancer is still used by requests in
	// flight; a series it never had is not made either.
	use(bals[gone])

	tests := []struct {
		name     string
		upstream string
		before   func()
		want     []string
	}{
		{name: "deleted upstream has no series", upstream: gone, want: nil},
		{name: "other upstream keeps its series", upstream: kept, want: used},
		{name: "a new balancer of the name starts them again", upstream: gone, before: func() {
			b, err := New(Config{Name: gone, Metrics: m})
			if err != nil {
				t.Fatal(err)
			}
			use(b)
		}, want: used},
		{name: "deleting twice is harmless", upstream: kept, before: func() { m.Delete(kept); m.Delete(kept) }, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			if diff := cmp.Diff(tt.want, seriesOf(t, reg, tt.upstream)); diff != "" {
				t.Errorf("series of %s (-want +got):\n%s", tt.upstream, diff)
			}
		})
	}
	var nilMetrics *Metrics
	nilMetrics.Delete(gone) // a balancer without metrics: nothing to delete
}

// TestIdleUpstreamsHaveNoSeries checks the bound docs/telemetry.md
// states: a thousand upstreams with hosts and no failures export no
// balancer series; one failed pick makes one series, of that upstream.
func TestIdleUpstreamsHaveNoSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var empty *Balancer
	for i := range 1000 {
		b, err := New(Config{Name: fmt.Sprintf("demo/svc-%d:80", i), Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			empty = b
			continue
		}
		if err := b.Update([]Endpoint{{Address: fmt.Sprintf("127.0.0.%d:80", 1+i%200), Weight: 1, Healthy: true}}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Pick(); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mf := range mfs {
			n += len(mf.GetMetric())
		}
		return n
	}
	if n := count(); n != 0 {
		t.Errorf("%d series for idle upstreams, want 0", n)
	}
	if _, err := empty.Pick(); !errors.Is(err, ErrNoHosts) {
		t.Fatalf("Pick with no hosts: %v", err)
	}
	if diff := cmp.Diff([]string{"fedmesh_sidecar_lb_pick_failures_total{no_hosts}"}, seriesOf(t, reg, "demo/svc-0:80")); diff != "" {
		t.Errorf("series after one failed pick (-want +got):\n%s", diff)
	}
	if n := count(); n != 1 || n > MaxSeriesPerUpstream {
		t.Errorf("%d series, want 1", n)
	}
}

// An upstream holds no series slots until its first series is made.
func TestIdleUpstreamHoldsNoSlots(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	u := m.forUpstream("outbound|8080||a.demo.svc.clusterset.local")
	u.setEjected(0)
	if u.series.Load() != nil {
		t.Fatal("an idle upstream made its series slots")
	}
	u.inc(seriesNoHosts)
	if p := u.series.Load(); p == nil || p[seriesNoHosts].c == nil {
		t.Fatal("the first series made no slots")
	}
}
