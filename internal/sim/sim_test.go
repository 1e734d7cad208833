package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded etcd's loggers start a package-level flush loop
		// that never stops.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		// memberlist's probe of a peer waits for its ack or its timer,
		// not for Shutdown; it ends on its own within the probe timeout.
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		// Nor does its relay of an indirect probe for a peer (here the
		// killed cluster): it waits out the probe timeout, 3 s with WAN.
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).handleIndirectPing.func2"),
	)
}

// TestRun runs a small federation through every phase and checks that
// every figure is reported and sane: each change seen at every other
// cluster, the killed cluster fenced by every other.
func TestRun(t *testing.T) {
	const clusters, services, changes = 4, 10, 6
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Clusters: clusters, Services: services, Endpoints: 2,
		ChurnRate: 20, Changes: changes,
		// The idle window is longer than WAN gossip's probe interval
		// (5 s): a shorter one may see no gossip at all.
		IdleWindow: 6 * time.Second, FencePeriod: 2 * time.Second,
		PhaseTimeout: 2 * time.Minute,
		Progress:     &progress,
	})
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	if res.Membership.Samples != clusters || res.Sync.Samples != clusters {
		t.Errorf("membership samples %d, sync samples %d, want %d each", res.Membership.Samples, res.Sync.Samples, clusters)
	}
	if want := changes * (clusters - 1); res.Propagation.Samples != want || res.Propagation.Missing != 0 {
		t.Errorf("propagation: %d samples, %d missing; want %d and 0", res.Propagation.Samples, res.Propagation.Missing, want)
	}
	if res.Fencing.Samples != clusters-1 || res.Fencing.Missing != 0 {
		t.Errorf("fencing: %d samples, %d missing; want %d and 0", res.Fencing.Samples, res.Fencing.Missing, clusters-1)
	}
	for name, s := range map[string]Spread{"membership": res.Membership, "sync": res.Sync, "propagation": res.Propagation, "fencing": res.Fencing} {
		if s.P50 <= 0 || s.P50 > s.P99 || s.P99 > s.Max {
			t.Errorf("%s: p50 %v, p99 %v, max %v: want 0 < p50 <= p99 <= max", name, s.P50, s.P99, s.Max)
		}
	}
	p := res.PerControlPlane
	for name, v := range map[string]float64{
		"rss": float64(p.RSS), "heap": float64(p.Heap), "cpu churn": p.CPUChurn, "gossip": p.GossipRest,
		"catalog sync": p.CatalogSync, "catalog per change": p.CatalogPerChange, "views": p.Views,
		"plan": float64(p.Plan), "sidecar build": float64(p.SidecarBuild),
	} {
		if v <= 0 {
			t.Errorf("%s per control plane is %v, want > 0", name, v)
		}
	}
	// Every peer watches every catalog: clusters-1 watchers each.
	if p.CatalogConns < clusters-1 {
		t.Errorf("catalog watchers per control plane %.1f, want at least %d", p.CatalogConns, clusters-1)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Errorf("result does not encode: %v", err)
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil || !bytes.Contains(text.Bytes(), []byte("propagation")) {
		t.Errorf("text report: %v\n%s", err, text.String())
	}
	t.Logf("progress:\n%s\n%s", progress.String(), text.String())
}

// TestRunScoped runs a federation whose clusters consume 3 of 10
// services each (scoped imports): every view completes (consumed
// services from every cluster, the others its own), and each change is
// seen by exactly the other clusters that consume its service.
func TestRunScoped(t *testing.T) {
	const clusters, services, changes = 4, 10, 6
	res, progress := runQuick(t, Config{Clusters: clusters, Services: services, Consume: 0.3, Changes: changes})
	if res.Consumed != 3 {
		t.Errorf("consumed %d, want 3", res.Consumed)
	}
	if res.Sync.Samples != clusters {
		t.Errorf("sync samples %d, want %d", res.Sync.Samples, clusters)
	}
	r := &run{cfg: Config{Clusters: clusters, Services: services, Consume: 0.3, Changes: changes}}
	want := 0
	for _, ch := range r.pickChanges() {
		want += r.watchers(ch)
	}
	if want == 0 || want >= changes*(clusters-1) {
		t.Fatalf("the scope leaves %d watchers of %d changes: the test needs some, fewer than every cluster", want, changes)
	}
	if res.Propagation.Samples != want || res.Propagation.Missing != 0 {
		t.Errorf("propagation: %d samples, %d missing; want %d (the consumers) and 0\nprogress:\n%s", res.Propagation.Samples, res.Propagation.Missing, want, progress.String())
	}
	if res.Fencing.Samples != clusters-1 {
		t.Errorf("fencing: %d samples, want %d", res.Fencing.Samples, clusters-1)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"one cluster", Config{Clusters: 1}},
		{"too many changes", Config{Clusters: 2, Services: 1, Changes: 3}},
		{"negative churn", Config{Clusters: 2, ChurnRate: -1}},
		{"consumed share above 1", Config{Clusters: 2, Consume: 1.5}},
		{"bad profile", Config{Clusters: 2, Profile: "moon"}},
		{"workers without command", Config{Clusters: 4, Workers: 2}},
		{"more workers than clusters", Config{Clusters: 2, Workers: 3, WorkerCommand: []string{"x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.cfg.withDefaults(); err == nil {
				t.Errorf("withDefaults(%+v) = nil error", tc.cfg)
			}
		})
	}
}

func TestAutoWorkers(t *testing.T) {
	for _, tc := range []struct {
		n     int
		limit uint64
		want  int
	}{
		{n: 10, limit: 20000, want: 1},
		{n: 50, limit: 20000, want: 1},
		{n: 100, limit: 20000, want: 4},
		{n: 200, limit: 20000, want: 12},
		{n: 3, limit: 1, want: 3},
		{n: 10, limit: 0, want: 1},
	} {
		if got := AutoWorkers(tc.n, tc.limit); got != tc.want {
			t.Errorf("AutoWorkers(%d, %d) = %d, want %d", tc.n, tc.limit, got, tc.want)
		}
	}
}

// TestRunWaves joins 5 clusters in waves of 2: the first two form, then
// the next two, then the last one joins a federation of four; the run
// reports every cluster synced and a formation longer than the last
// wave's sync.
func TestRunWaves(t *testing.T) {
	const clusters, services, changes = 5, 10, 4
	res, progress := runQuick(t, Config{Clusters: clusters, Services: services, JoinWave: 2, Changes: changes})
	if res.JoinWave != 2 || res.Sync.Samples != clusters || res.Membership.Samples != clusters {
		t.Errorf("join wave %d, sync samples %d, membership samples %d; want 2, %d, %d", res.JoinWave, res.Sync.Samples, res.Membership.Samples, clusters, clusters)
	}
	if res.Formation <= res.Sync.Max {
		t.Errorf("formation %.2fs, not longer than the last wave's sync (max %.2fs)", res.Formation, res.Sync.Max)
	}
	for _, want := range []string{"formation: 2/5 clusters joined", "formation: 4/5 clusters joined"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
}

// runQuick runs cfg with a fast churn, a short rest and fence period and
// bounded phases, failing the test with the progress if it fails.
func runQuick(t *testing.T, cfg Config) (*Result, *bytes.Buffer) {
	t.Helper()
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg.ChurnRate, cfg.IdleWindow, cfg.FencePeriod = 20, time.Second, 2*time.Second
	cfg.PhaseTimeout, cfg.Progress = 2*time.Minute, &progress
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	return res, &progress
}
