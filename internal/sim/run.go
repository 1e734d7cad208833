package sim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/internal/addrlock"
)

// trustDomain is the simulated federation's.
const trustDomain = "sim.fedmesh.test"

// progressEvery is how often a waiting phase prints where it is.
const progressEvery = 2 * time.Second

// run is one Run's state, owned by Run's goroutine.
type run struct {
	cfg    Config
	hosts  []hostHandle
	owner  func(i int) int
	events chan event
	res    *Result

	addrs    map[int]string
	members  map[int]int64
	synced   map[int]int64
	covers   map[int]int
	changed  map[int]int64
	seen     map[int][]int64
	failed   map[int]bool // changes whose write failed at the origin
	killedAt int64
	fenced   map[int]int64
	stats    map[int]*hostStats // the last answer of each host, by index
	statsN   int
}

// Run starts a federation of cfg.Clusters control planes on loopback,
// measures it phase by phase (start, membership convergence and sync, a
// window at rest, churn, the kill of one cluster) and tears it down.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	block, lock, err := addrlock.Reserve(addrlock.LoopbackPattern, addrlock.FirstLoopback, addrlock.LastLoopback)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	dir := cfg.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fedmesh-sim-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rootDir := filepath.Join(dir, "root")
	if err := ca.InitRoot(trustDomain, rootDir); err != nil {
		return nil, fmt.Errorf("federation root: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	r := &run{
		cfg: cfg,
		// Room for every event of a run: views' coverage (N^2), seen
		// changes (N per change) and the rest.
		events:  make(chan event, max(4096, 2*cfg.Clusters*cfg.Clusters+cfg.Changes*cfg.Clusters)),
		owner:   func(i int) int { return i % cfg.Workers },
		res:     newResult(cfg, block),
		addrs:   map[int]string{},
		members: map[int]int64{},
		synced:  map[int]int64{},
		covers:  map[int]int{},
		changed: map[int]int64{},
		seen:    map[int][]int64{},
		failed:  map[int]bool{},
		fenced:  map[int]int64{},
		stats:   map[int]*hostStats{},
	}
	r.progress("fedmesh sim: %d clusters x %d services (%d endpoints each), %d process(es), gossip %s, fence period %s, timeouts x%.3g, loopback 127.%d.0.0/16, load %s",
		cfg.Clusters, cfg.Services, cfg.Endpoints, cfg.Workers, cfg.Profile, cfg.FencePeriod, cfg.TimeoutScale, block, r.res.LoadBefore)
	for k := range cfg.Workers {
		hc := hostConfig{
			RootDir: rootDir, DataDir: filepath.Join(dir, fmt.Sprintf("host-%d", k)), Block: block,
			Clusters: cfg.Clusters, Services: cfg.Services, Consumed: consumedServices(cfg), Endpoints: cfg.Endpoints,
			Profile: cfg.Profile, FencePeriod: cfg.FencePeriod, StartParallel: cfg.StartParallel, GossipKey: key,
			TimeoutScale: cfg.TimeoutScale,
			// Each worker gets a share of what the machine has free, as
			// a soft limit: its runtime collects harder near it instead
			// of the machine running out with every heap at twice its
			// live size.
			MemLimit: memAvailable() * 85 / 100 / uint64(cfg.Workers),
		}
		for i := range cfg.Clusters {
			if r.owner(i) == k {
				hc.Indexes = append(hc.Indexes, i)
			}
		}
		if err := os.MkdirAll(hc.DataDir, 0o700); err != nil {
			return nil, err
		}
		var h hostHandle
		if cfg.Workers == 1 {
			h = startLocalHost(ctx, hc, cfg.Logger, r.events)
		} else if h, err = startWorkerHost(cfg.WorkerCommand, k, hc, r.events); err != nil {
			r.shutdown()
			return nil, err
		}
		r.hosts = append(r.hosts, h)
	}
	err = r.phases(ctx)
	r.shutdown()
	r.res.LoadAfter = loadAverage()
	if err != nil {
		return r.res, err
	}
	return r.res, nil
}

// strainEvery is how often a forming federation's counters are printed.
const strainEvery = 20 * time.Second

// strain says what a forming federation spends its work on: proofs by
// result, replicator restarts by reason, failed probes, fence changes,
// views published, CPU so far.
func strain(st *hostStats) string {
	var proofs, restarts []string
	for _, k := range slices.Sorted(maps.Keys(st.Counters)) {
		v := st.Counters[k]
		if r, ok := strings.CutPrefix(k, "fedmesh_federation_member_proofs_total{result="); ok {
			proofs = append(proofs, fmt.Sprintf("%s %.0f", strings.TrimSuffix(r, "}"), v))
		}
		if r, ok := strings.CutPrefix(k, "fedmesh_replicate_restarts_total{reason="); ok {
			restarts = append(restarts, fmt.Sprintf("%s %.0f", strings.TrimSuffix(r, "}"), v))
		}
	}
	c := st.Counters
	return fmt.Sprintf("proofs [%s], replicator restarts [%s], failed probes %.0f, fence changes %.0f, views %.0f, lease losses %.0f, CPU %.0f s, RSS %d MiB",
		strings.Join(proofs, ", "), strings.Join(restarts, ", "), c["fedmesh_replicate_probe_failures_total"],
		c["fedmesh_federation_fence_changes_total"], c["fedmesh_federation_view_publishes_total"],
		c["fedmesh_store_lease_keepalive_failures_total"], st.CPU.Seconds(), st.RSS>>20)
}

func (r *run) progress(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

func (r *run) phases(ctx context.Context) error {
	n := r.cfg.Clusters
	// Start every control plane.
	t0 := time.Now()
	if err := r.broadcast(command{Op: opStart}); err != nil {
		return err
	}
	if err := r.wait(ctx, "start", func() (bool, string) {
		return len(r.addrs) == n, fmt.Sprintf("%d/%d control planes up", len(r.addrs), n)
	}); err != nil {
		return err
	}
	r.res.Start = secs(time.Since(t0))
	started, err := r.collectStats(ctx)
	if err != nil {
		return err
	}
	r.res.PerControlPlane.RSSStarted = started.RSS / uint64(n)

	// Join every member to the same few seeds; gossip does the rest.
	var seeds []string
	for i := range min(3, n) {
		seeds = append(seeds, r.addrs[i])
	}
	tFirst := now()
	lastStrain := time.Now()
	if w := r.cfg.JoinWave; w > 0 && w < n {
		// Every wave but the last joins and forms; the last is measured
		// below as a whole federation's join would be.
		for lo := 0; lo+w < n; lo += w {
			only := make([]int, 0, w)
			for i := lo; i < lo+w; i++ {
				only = append(only, i)
			}
			if err := r.broadcast(command{Op: opJoin, Seeds: seeds, Only: only}); err != nil {
				return err
			}
			joined := lo + w
			err := r.wait(ctx, "formation", func() (bool, string) {
				formed, least := 0, joined
				for i := range joined {
					if r.covers[i] >= joined {
						formed++
					}
					least = min(least, r.covers[i])
				}
				if formed < joined && time.Since(lastStrain) >= strainEvery {
					lastStrain = time.Now()
					if st, err := r.collect(ctx, true); err == nil {
						r.progress("formation: %s", strain(st))
					}
				}
				return formed == joined, fmt.Sprintf("%d/%d clusters joined, %d of them hold every joined cluster (%d the fewest)", joined, n, formed, least)
			})
			if err != nil {
				return err
			}
		}
	}
	var lastWave []int
	if w := r.cfg.JoinWave; w > 0 && w < n {
		for i := (n - 1) / w * w; i < n; i++ {
			lastWave = append(lastWave, i)
		}
	}
	tJoin := now()
	if err := r.broadcast(command{Op: opJoin, Seeds: seeds, Only: lastWave}); err != nil {
		return err
	}
	err = r.wait(ctx, "converge", func() (bool, string) {
		least, sum := n, 0
		for i := range n {
			least = min(least, r.covers[i])
			sum += r.covers[i]
		}
		done := len(r.members) == n && len(r.synced) == n
		if !done && time.Since(lastStrain) >= strainEvery {
			lastStrain = time.Now()
			if st, err := r.collect(ctx, true); err == nil {
				r.progress("converge: %s", strain(st))
			}
		}
		return done,
			fmt.Sprintf("%d/%d see every member alive, %d/%d views complete (views hold %.1f clusters on average, %d the fewest)",
				len(r.members), n, len(r.synced), n, float64(sum)/float64(n), least)
	})
	// What was measured stands when the phase timed out.
	r.res.Membership = spread(tJoin, r.members)
	r.res.Membership.Missing = n - r.res.Membership.Samples
	r.res.Sync = spread(tJoin, r.synced)
	r.res.Sync.Missing = n - r.res.Sync.Samples
	if err != nil {
		return err
	}
	r.res.Formation = secs(time.Duration(now() - tFirst))

	// At rest.
	a, err := r.collectStats(ctx)
	if err != nil {
		return err
	}
	r.progress("rest: measuring %s", r.cfg.IdleWindow)
	end := func() {}
	if r.cfg.AtRest != nil {
		end = r.cfg.AtRest()
	}
	err = sleep(ctx, r.cfg.IdleWindow)
	end()
	if err != nil {
		return err
	}
	b, err := r.collectStats(ctx)
	if err != nil {
		return err
	}
	r.res.restFrom(started, a, b, n)

	// Churn.
	changes := r.pickChanges()
	interval := time.Duration(float64(time.Second) / r.cfg.ChurnRate)
	next := 0
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.Now().Add(r.cfg.PhaseTimeout)
	last := time.Now()
	for {
		done := 0
		for _, ch := range changes[:next] {
			if len(r.seen[ch.ID]) == r.watchers(ch) || r.failed[ch.ID] {
				done++
			}
		}
		if next == len(changes) && done == len(changes) {
			break
		}
		if time.Now().After(deadline) {
			r.progress("churn: timed out with %d/%d changes seen everywhere", done, len(changes))
			break
		}
		if time.Since(last) >= progressEvery {
			last = time.Now()
			r.progress("churn: %d/%d changes made, %d seen at every other cluster", next, len(changes), done)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if next < len(changes) {
				ch := changes[next]
				next++
				if err := r.sendChange(ch); err != nil {
					return err
				}
			}
		case e := <-r.events:
			if err := r.record(e); err != nil {
				return err
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	c, err := r.collectStats(ctx)
	if err != nil {
		return err
	}
	r.res.churnFrom(b, c, n, len(changes))
	if r.cfg.AfterChurn != nil {
		r.cfg.AfterChurn()
	}
	r.res.propagation(changes, r.changed, r.seen, r.watchers)

	// Kill one cluster; every other must fence it.
	victim := n - 1
	r.progress("kill: %s", clusterName(victim))
	for k := range r.hosts {
		if k != r.owner(victim) {
			if err := r.hosts[k].send(command{Op: opKill, Victim: victim}); err != nil {
				return err
			}
		}
	}
	if err := r.hosts[r.owner(victim)].send(command{Op: opKill, Victim: victim}); err != nil {
		return err
	}
	fenceDeadline := time.Now().Add(min(r.cfg.PhaseTimeout, 10*r.cfg.FencePeriod+2*time.Minute))
	err = r.waitUntil(ctx, "fence", fenceDeadline, func() (bool, string) {
		return r.killedAt != 0 && len(r.fenced) == n-1, fmt.Sprintf("%d/%d clusters fenced %s", len(r.fenced), n-1, clusterName(victim))
	})
	r.res.fencing(r.killedAt, r.fenced, n-1)
	if err != nil && !errors.Is(err, errTimeout) {
		return err
	}
	return nil
}

var errTimeout = errors.New("timed out")

func (r *run) wait(ctx context.Context, phase string, done func() (bool, string)) error {
	return r.waitUntil(ctx, phase, time.Now().Add(r.cfg.PhaseTimeout), done)
}

// waitUntil takes events until done or the deadline, printing progress
// (a phase without a name prints it only while it waits).
func (r *run) waitUntil(ctx context.Context, phase string, deadline time.Time, done func() (bool, string)) error {
	last := time.Now()
	for {
		ok, what := done()
		if ok {
			if phase != "" {
				r.progress("%s: %s", phase, what)
			}
			return nil
		}
		if time.Now().After(deadline) {
			r.progress("%s: timed out: %s", phase, what)
			return fmt.Errorf("%s: %w: %s", phase, errTimeout, what)
		}
		if time.Since(last) >= progressEvery {
			last = time.Now()
			r.progress("%s: %s", phase, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-r.events:
			if err := r.record(e); err != nil {
				return err
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *run) record(e event) error {
	switch e.Kind {
	case evError:
		return fmt.Errorf("host: %s", e.Err)
	case evWarn:
		r.progress("warning: %s", e.Err)
		if e.ID != 0 {
			r.failed[e.ID] = true
		}
	case evStarted:
		r.addrs[e.Cluster] = e.Addr
	case evMembers:
		r.members[e.Cluster] = e.At
	case evSynced:
		r.synced[e.Cluster] = e.At
	case evCovers:
		r.covers[e.Cluster] = max(r.covers[e.Cluster], e.ID)
	case evChanged:
		r.changed[e.ID] = e.At
	case evSeen:
		r.seen[e.ID] = append(r.seen[e.ID], e.At)
	case evKilled:
		r.killedAt = e.At
	case evFenced:
		r.fenced[e.Cluster] = e.At
	case evStats:
		r.stats[r.statsN] = e.Stats
		r.statsN++
	}
	return nil
}

func (r *run) broadcast(cmd command) error {
	for _, h := range r.hosts {
		if err := h.send(cmd); err != nil {
			return err
		}
	}
	return nil
}

// sendChange tells the hosts that watch for ch before the one that
// makes it.
func (r *run) sendChange(ch change) error {
	for k, h := range r.hosts {
		if k != r.owner(ch.Origin) {
			if err := h.send(command{Op: opChange, Change: &ch}); err != nil {
				return err
			}
		}
	}
	return r.hosts[r.owner(ch.Origin)].send(command{Op: opChange, Change: &ch})
}

// collectStats asks every host for its counters and sums them.
func (r *run) collectStats(ctx context.Context) (*hostStats, error) {
	return r.collect(ctx, false)
}

// collect is collectStats; light skips the sidecar build.
func (r *run) collect(ctx context.Context, light bool) (*hostStats, error) {
	r.statsN = 0
	clear(r.stats)
	if err := r.broadcast(command{Op: opStats, Light: light}); err != nil {
		return nil, err
	}
	if err := r.waitUntil(ctx, "", time.Now().Add(r.cfg.PhaseTimeout), func() (bool, string) {
		return r.statsN == len(r.hosts), fmt.Sprintf("stats: %d/%d hosts answered", r.statsN, len(r.hosts))
	}); err != nil {
		return nil, err
	}
	sum := &hostStats{At: now(), Counters: map[string]float64{}}
	for _, s := range r.stats {
		sum.CPU += s.CPU
		sum.RSS += s.RSS
		sum.Heap += s.Heap
		sum.Clusters += s.Clusters
		sum.GossipBytes += s.GossipBytes
		sum.CatalogBytesOut += s.CatalogBytesOut
		sum.CatalogBytesIn += s.CatalogBytesIn
		sum.CatalogConns += s.CatalogConns
		sum.Views += s.Views
		sum.PlanTime += s.PlanTime
		sum.BuildTime = max(sum.BuildTime, s.BuildTime)
		sum.FDs = max(sum.FDs, s.FDs)
		for k, v := range s.Counters {
			sum.Counters[k] += v
		}
	}
	return sum, nil
}

// pickChanges chooses cfg.Changes distinct (cluster, service) pairs; the
// victim of the kill is never an origin.
func (r *run) pickChanges() []change {
	rng := mrand.New(mrand.NewPCG(uint64(r.cfg.Seed), 0x5eed))
	n, s := r.cfg.Clusters-1, r.cfg.Services
	picked := map[int]bool{}
	out := make([]change, 0, r.cfg.Changes)
	// Only changes some other cluster follows, as long as there are.
	for tries := 0; len(out) < min(r.cfg.Changes, n*s) && tries < 100*n*s; tries++ {
		p := rng.IntN(n * s)
		ch := change{ID: len(out) + 1, Origin: p / s, Service: p % s}
		if picked[p] || r.watchers(ch) == 0 {
			continue
		}
		picked[p] = true
		out = append(out, ch)
	}
	return out
}

// watchers is how many clusters follow ch: those, but its origin, that
// consume its service.
func (r *run) watchers(ch change) int {
	consumed := consumedServices(r.cfg)
	w := 0
	for i := range r.cfg.Clusters {
		if i != ch.Origin && consumes(r.cfg.Services, consumed, i, ch.Service) {
			w++
		}
	}
	return w
}

// consumedServices is how many services each cluster consumes.
func consumedServices(cfg Config) int {
	if cfg.Consume == 0 || cfg.Consume == 1 {
		return cfg.Services
	}
	return max(1, int(math.Ceil(cfg.Consume*float64(cfg.Services))))
}

// consumes reports whether cluster i consumes service k: each consumes
// consumed services from k = i mod services on.
func consumes(services, consumed, i, k int) bool {
	return ((k-i)%services+services)%services < consumed
}

func (r *run) shutdown() {
	for _, h := range r.hosts {
		_ = h.send(command{Op: opStop})
	}
	for _, h := range r.hosts {
		_ = h.close()
	}
	// Drain what the hosts said last.
	for {
		select {
		case <-r.events:
		default:
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// loadAverage is the machine's load average (1, 5, 15 min), "" where
// /proc has none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// spread is the p50 and the max of times since t0 in seconds.
func spread(t0 int64, at map[int]int64) Spread {
	ds := make([]time.Duration, 0, len(at))
	for _, t := range at {
		ds = append(ds, time.Duration(t-t0))
	}
	return spreadOf(ds, 0)
}

func spreadOf(ds []time.Duration, missing int) Spread {
	slices.Sort(ds)
	s := Spread{Samples: len(ds), Missing: missing}
	if len(ds) == 0 {
		return s
	}
	s.P50 = secs(percentile(ds, 50))
	s.P99 = secs(percentile(ds, 99))
	s.Max = secs(ds[len(ds)-1])
	return s
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(float64(len(sorted))*p/100)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
