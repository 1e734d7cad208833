package balancer

import (
	"errors"
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
	all := []string{
		"fedmesh_sidecar_lb_ejected_hosts{}",
		"fedmesh_sidecar_lb_ejections_skipped_total{consecutive_5xx}",
		"fedmesh_sidecar_lb_ejections_skipped_total{consecutive_connect_failure}",
		"fedmesh_sidecar_lb_ejections_total{consecutive_5xx}",
		"fedmesh_sidecar_lb_ejections_total{consecutive_connect_failure}",
		"fedmesh_sidecar_lb_pick_failures_total{no_healthy}",
		"fedmesh_sidecar_lb_pick_failures_total{no_hosts}",
		"fedmesh_sidecar_lb_retries_total{allowed}",
		"fedmesh_sidecar_lb_retries_total{budget_exhausted}",
	}
	bals := map[string]*Balancer{}
	for _, name := range []string{gone, kept} {
		if bals[name], err = New(Config{Name: name, Metrics: m}); err != nil {
			t.Fatal(err)
		}
	}
	m.Delete(gone)
	// The deleted upstream's balancer is still used by requests in flight.
	if _, err := bals[gone].Pick(); !errors.Is(err, ErrNoHosts) {
		t.Fatalf("Pick with no hosts: %v, want ErrNoHosts", err)
	}
	bals[gone].TryRetry()

	tests := []struct {
		name     string
		upstream string
		before   func()
		want     []string
	}{
		{name: "deleted upstream has no series", upstream: gone, want: nil},
		{name: "other upstream keeps its series", upstream: kept, want: all},
		{name: "a new balancer of the name starts them again", upstream: gone, before: func() {
			if _, err := New(Config{Name: gone, Metrics: m}); err != nil {
				t.Fatal(err)
			}
		}, want: all},
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
