package sim

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
)

// Seconds is a duration written as seconds in JSON.
type Seconds float64

func secs(d time.Duration) Seconds { return Seconds(d.Seconds()) }

// Spread summarizes times measured at many clusters.
type Spread struct {
	P50 Seconds `json:"p50"`
	P99 Seconds `json:"p99"`
	Max Seconds `json:"max"`
	// Samples is how many were measured; Missing how many were expected
	// and not seen before the phase ended.
	Samples int `json:"samples"`
	Missing int `json:"missing"`
}

// PerControlPlane are the federation's costs divided by its control
// planes. CPU and memory are process-wide (the control planes share
// their processes), divided by how many ran there.
type PerControlPlane struct {
	// RSSStarted is resident memory after start, before any peer was
	// known: one control plane with its embedded etcd on its own.
	RSSStarted uint64 `json:"rssStartedBytes"`
	// RSS and Heap are resident memory and Go heap in use after the
	// churn, with the whole federation replicated.
	RSS  uint64 `json:"rssBytes"`
	Heap uint64 `json:"heapBytes"`
	// CPUSync is the CPU time spent from the start until the
	// federation had synced (proofs, grants, lists, merges, persisted
	// imports): on a machine of its own, about how long one control
	// plane takes to join a federation of this size.
	CPUSync Seconds `json:"cpuSecondsSync"`
	// CPURest and CPUChurn are CPU cores used at rest and during the
	// churn.
	CPURest  float64 `json:"cpuCoresRest"`
	CPUChurn float64 `json:"cpuCoresChurn"`
	// GossipRest is the gossip each member sent per second at rest.
	GossipRest float64 `json:"gossipBytesPerSecRest"`
	// CatalogSync is what each catalog served its peers from the start
	// until the federation had synced (lists, watches, proofs); Rest per
	// second at rest; PerChange per endpoint change made anywhere (net
	// of the rest rate).
	CatalogSync      float64 `json:"catalogBytesSync"`
	CatalogRest      float64 `json:"catalogBytesPerSecRest"`
	CatalogPerChange float64 `json:"catalogBytesPerChange"`
	// CatalogConns are the peer connections one catalog serves (its
	// watchers).
	CatalogConns float64 `json:"catalogConns"`
	// Views are the views each federation published during the churn,
	// and Plan the mean time its xDS server took to plan one.
	Views float64 `json:"viewsChurn"`
	Plan  Seconds `json:"planSeconds"`
	// SidecarBuild is one sidecar's full xDS build from the final view.
	SidecarBuild Seconds `json:"sidecarBuildSeconds"`
}

// Result is what a run measured.
type Result struct {
	Clusters int `json:"clusters"`
	Services int `json:"services"`
	// Consumed is how many services each cluster consumes and imports
	// (Config.Consume); Services without a scope.
	Consumed    int     `json:"consumed"`
	Endpoints   int     `json:"endpoints"`
	Processes   int     `json:"processes"`
	Profile     string  `json:"gossipProfile"`
	FencePeriod Seconds `json:"fencePeriod"`
	// TimeoutScale is Config.TimeoutScale.
	TimeoutScale float64 `json:"timeoutScale"`
	// JoinWave is Config.JoinWave; Formation is the time from the first
	// join until every view held every cluster.
	JoinWave   int     `json:"joinWave,omitempty"`
	Formation  Seconds `json:"formation"`
	ChurnRate  float64 `json:"churnRate"`
	Block      int     `json:"loopbackBlock"`
	LoadBefore string  `json:"loadBefore"`
	LoadAfter  string  `json:"loadAfter"`

	// ChurnSeconds is how long the churn phase lasted.
	ChurnSeconds Seconds `json:"churnSeconds"`
	// Start is how long starting every control plane took.
	Start Seconds `json:"start"`
	// Membership is, from the joins, when each member saw every member
	// alive; Sync when each view held every cluster's every endpoint.
	Membership Spread `json:"membership"`
	Sync       Spread `json:"sync"`
	// Propagation is, for every change and every other cluster, the time
	// from the change's write at its origin to the cluster's view.
	Propagation Spread `json:"propagation"`
	// Fencing is, for every other cluster, the time from the kill of one
	// cluster to its fencing in that cluster's view.
	Fencing Spread `json:"fencing"`

	PerControlPlane PerControlPlane `json:"perControlPlane"`
	// CountersSync and CountersChurn are the control planes' counters
	// of interest (replicator restarts and resyncs, lease keepalive
	// failures...), summed over the federation: from the start until
	// synced, and during the churn.
	CountersSync  map[string]float64 `json:"countersSync"`
	CountersChurn map[string]float64 `json:"countersChurn"`
	// MaxFDs is the most file descriptors one process held.
	MaxFDs int `json:"maxFDs"`
}

func newResult(cfg Config, block int) *Result {
	return &Result{
		Clusters: cfg.Clusters, Services: cfg.Services, Consumed: consumedServices(cfg), Endpoints: cfg.Endpoints, Processes: cfg.Workers,
		Profile: string(cfg.Profile), FencePeriod: secs(cfg.FencePeriod), TimeoutScale: cfg.TimeoutScale, JoinWave: cfg.JoinWave, ChurnRate: cfg.ChurnRate,
		Block: block, LoadBefore: loadAverage(),
	}
}

func (r *Result) restFrom(started, a, b *hostStats, n int) {
	p := &r.PerControlPlane
	p.CPUSync = secs((a.CPU - started.CPU) / time.Duration(n))
	window := time.Duration(b.At - a.At).Seconds()
	p.CPURest = (b.CPU - a.CPU).Seconds() / window / float64(n)
	p.GossipRest = float64(b.GossipBytes-a.GossipBytes) / window / float64(n)
	p.CatalogSync = float64(a.CatalogBytesOut) / float64(n)
	p.CatalogRest = float64(b.CatalogBytesOut-a.CatalogBytesOut) / window / float64(n)
	p.CatalogConns = float64(b.CatalogConns) / float64(n)
	r.CountersSync = a.Counters
	r.MaxFDs = max(r.MaxFDs, a.FDs, b.FDs)
}

func (r *Result) churnFrom(b, c *hostStats, n, changes int) {
	p := &r.PerControlPlane
	window := time.Duration(c.At - b.At).Seconds()
	p.CPUChurn = (c.CPU - b.CPU).Seconds() / window / float64(n)
	r.ChurnSeconds = Seconds(window)
	// Net of what the catalogs serve at rest (the replicators' probes).
	p.CatalogPerChange = max(0, float64(c.CatalogBytesOut-b.CatalogBytesOut)/float64(n)-p.CatalogRest*window) / float64(changes)
	p.RSS = c.RSS / uint64(n)
	p.Heap = c.Heap / uint64(n)
	views := c.Views - b.Views
	p.Views = float64(views) / float64(n)
	if views > 0 {
		p.Plan = secs((c.PlanTime - b.PlanTime) / time.Duration(views))
	}
	p.SidecarBuild = secs(c.BuildTime)
	r.CountersChurn = map[string]float64{}
	for k, v := range c.Counters {
		if d := v - b.Counters[k]; d != 0 {
			r.CountersChurn[k] = d
		}
	}
	r.MaxFDs = max(r.MaxFDs, c.FDs)
}

func (r *Result) propagation(changes []change, changed map[int]int64, seen map[int][]int64, watchers func(change) int) {
	var ds []time.Duration
	missing := 0
	for _, ch := range changes {
		at, ok := changed[ch.ID]
		if !ok {
			missing += watchers(ch)
			continue
		}
		for _, t := range seen[ch.ID] {
			ds = append(ds, time.Duration(t-at))
		}
		missing += watchers(ch) - len(seen[ch.ID])
	}
	r.Propagation = spreadOf(ds, missing)
}

func (r *Result) fencing(killedAt int64, fenced map[int]int64, observers int) {
	if killedAt == 0 {
		r.Fencing = Spread{Missing: observers}
		return
	}
	s := spread(killedAt, fenced)
	s.Missing = observers - s.Samples
	r.Fencing = s
}

// WriteText writes the result as a table.
func (r *Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := r.PerControlPlane
	spread := func(s Spread) string {
		out := fmt.Sprintf("p50 %.3fs  p99 %.3fs  max %.3fs  (%d samples", s.P50, s.P99, s.Max, s.Samples)
		if s.Missing > 0 {
			out += fmt.Sprintf(", %d MISSING", s.Missing)
		}
		return out + ")"
	}
	rows := [][2]string{
		{"federation", fmt.Sprintf("%d clusters x %d services x %d endpoints, %d process(es), gossip %s, fence period %.0fs, timeouts x%.3g",
			r.Clusters, r.Services, r.Endpoints, r.Processes, r.Profile, r.FencePeriod, r.TimeoutScale)},
		{"load average", fmt.Sprintf("%s before, %s after", r.LoadBefore, r.LoadAfter)},
		{"start", fmt.Sprintf("%.1fs", r.Start)},
		{"formation", formation(r)},
		{"membership convergence", spread(r.Membership)},
		{"catalog sync", spread(r.Sync)},
		{"propagation", spread(r.Propagation)},
		{"fencing of a killed cluster", spread(r.Fencing)},
		{"per control plane:", ""},
		{"  CPU to sync", fmt.Sprintf("%.2f s", p.CPUSync)},
		{"  CPU at rest / churn", fmt.Sprintf("%.4f / %.4f cores (churn %.1f changes/s)", p.CPURest, p.CPUChurn, r.ChurnRate)},
		{"  memory (RSS alone / synced, heap)", fmt.Sprintf("%.1f / %.1f MiB, %.1f MiB", mib(p.RSSStarted), mib(p.RSS), mib(p.Heap))},
		{"  gossip sent at rest", fmt.Sprintf("%.0f B/s", p.GossipRest)},
		{"  catalog served: sync / rest / per change", fmt.Sprintf("%.0f B / %.0f B/s / %.0f B", p.CatalogSync, p.CatalogRest, p.CatalogPerChange)},
		{"  catalog watchers", fmt.Sprintf("%.0f", p.CatalogConns)},
		{"  views in churn, xDS plan per view", fmt.Sprintf("%.1f, %.2f ms", p.Views, float64(p.Plan)*1000)},
		{"  one sidecar's full xDS build", fmt.Sprintf("%.2f ms", float64(p.SidecarBuild)*1000)},
		{"file descriptors (most in one process)", fmt.Sprintf("%d", r.MaxFDs)},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	for _, set := range []struct {
		name string
		m    map[string]float64
	}{{"counters until synced", r.CountersSync}, {"counters in churn", r.CountersChurn}} {
		fmt.Fprintf(tw, "%s:\t\n", set.name)
		for _, k := range slices.Sorted(maps.Keys(set.m)) {
			fmt.Fprintf(tw, "  %s\t%.0f\n", k, set.m[k])
		}
	}
	return tw.Flush()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func formation(r *Result) string {
	if r.JoinWave > 0 {
		return fmt.Sprintf("%.1fs (joined in waves of %d)", r.Formation, r.JoinWave)
	}
	return fmt.Sprintf("%.1fs", r.Formation)
}
