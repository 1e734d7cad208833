package sim

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/federation/membership"
)

// host runs a share of the federation's clusters and reports what they
// see. Its handle method is called from one goroutine at a time; emit
// may be called from any goroutine and must not block for long.
type host struct {
	cfg  hostConfig
	log  *slog.Logger
	emit func(event)

	clusters map[int]*cluster // set by start, then only read

	mu sync.Mutex // guards the following
	// watching are the changes made elsewhere this host's clusters have
	// not all seen, by id, with the clusters that still have to.
	watching map[int]*watch
	// victims are the killed clusters and the host's clusters that have
	// not fenced them yet.
	victims map[int]map[int]bool
	// converged and synced are the clusters that reported them.
	converged map[int]bool
	synced    map[int]bool
	// covers is the most clusters a cluster's view held endpoints of.
	covers map[int]int
}

type watch struct {
	ch      change
	service string
	origin  string
	addr    string
	waiting map[int]bool
}

func newHost(cfg hostConfig, log *slog.Logger, emit func(event)) *host {
	return &host{
		cfg: cfg, log: log, emit: emit,
		clusters:  map[int]*cluster{},
		watching:  map[int]*watch{},
		victims:   map[int]map[int]bool{},
		converged: map[int]bool{},
		synced:    map[int]bool{},
		covers:    map[int]int{},
	}
}

// joinParallel is how many clusters of a host join at once.
const joinParallel = 16

func now() int64 { return time.Now().UnixNano() }

// handle carries out one command. An error means the host cannot go on.
func (h *host) handle(ctx context.Context, cmd command) error {
	switch cmd.Op {
	case opStart:
		return h.start(ctx)
	case opJoin:
		return h.join(cmd.Seeds, cmd.Only)
	case opChange:
		return h.change(ctx, *cmd.Change)
	case opKill:
		h.kill(cmd.Victim)
		return nil
	case opStats:
		h.emit(event{Kind: evStats, Stats: h.stats(cmd.Light)})
		return nil
	case opStop:
		h.stop()
		h.emit(event{Kind: evStopped, At: now()})
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd.Op)
}

func (h *host) start(ctx context.Context) error {
	root, err := ca.LoadRoot(h.cfg.RootDir)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(h.cfg.StartParallel)
	for _, i := range h.cfg.Indexes {
		g.Go(func() error {
			c, err := startCluster(gctx, &h.cfg, root, i, h.log)
			if err != nil {
				return err
			}
			mu.Lock()
			h.clusters[i] = c
			mu.Unlock()
			h.emit(event{Kind: evStarted, Cluster: i, Addr: c.mem.Local().Addr, At: now()})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		h.stop()
		return err
	}
	for _, c := range h.clusters {
		h.follow(c)
		c.run(h.onView)
	}
	return nil
}

// follow reports when c first sees every member of the federation alive.
func (h *host) follow(c *cluster) {
	wake, cancel := c.mem.Subscribe()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		for {
			alive := 0
			for _, m := range c.mem.Members() {
				if m.Status == membership.StatusAlive {
					alive++
				}
			}
			if alive >= h.cfg.Clusters {
				h.emit(event{Kind: evMembers, Cluster: c.i, At: now()})
				return
			}
			if _, ok := <-wake; !ok {
				return
			}
		}
	}()
}

// join joins every cluster here to the seeds, several at once, as
// clusters joining a federation do on their own.
func (h *host) join(seeds []string, only []int) error {
	var g errgroup.Group
	g.SetLimit(joinParallel)
	for _, i := range h.cfg.Indexes {
		if only != nil && !slices.Contains(only, i) {
			continue
		}
		c := h.clusters[i]
		var others []string
		for _, s := range seeds {
			if s != c.mem.Local().Addr {
				others = append(others, s)
			}
		}
		if len(others) == 0 {
			continue
		}
		g.Go(func() error {
			if _, err := c.mem.Join(others); err != nil {
				return fmt.Errorf("%s joins %s: %w", c.name, strings.Join(others, ","), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// change makes ch at its origin, when it is here, and watches for it at
// every other cluster here.
func (h *host) change(ctx context.Context, ch change) error {
	w := &watch{ch: ch, service: serviceName(ch.Service), origin: clusterName(ch.Origin),
		addr: endpointAddr(&h.cfg, ch.Origin, ch.Service, 0), waiting: map[int]bool{}}
	for i, c := range h.clusters {
		if i != ch.Origin && !c.dead.Load() && consumes(h.cfg.Services, h.cfg.Consumed, i, ch.Service) {
			w.waiting[i] = true
		}
	}
	h.mu.Lock()
	if len(w.waiting) > 0 {
		h.watching[ch.ID] = w
	}
	h.mu.Unlock()
	// Another host may have made the change before this one watched for
	// it: the views the clusters here hold now are checked at once.
	if _, here := h.clusters[ch.Origin]; !here {
		for i := range w.waiting {
			if v := h.clusters[i].fed.View(); v != nil {
				h.onView(h.clusters[i], v)
			}
		}
	}
	if origin, ok := h.clusters[ch.Origin]; ok {
		at := now()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := origin.apply(wctx, ch.Service); err != nil {
			// The control plane's own write failed (an overloaded etcd):
			// the change is counted missing at every other cluster.
			h.emit(event{Kind: evWarn, ID: ch.ID, Err: fmt.Sprintf("change %d at %s: %v", ch.ID, origin.name, err)})
			return nil
		}
		h.emit(event{Kind: evChanged, ID: ch.ID, Cluster: ch.Origin, At: at})
	}
	return nil
}

func (h *host) kill(victim int) {
	h.mu.Lock()
	waiting := map[int]bool{}
	var others []int // waiting's keys: onView deletes from waiting under h.mu
	for i, c := range h.clusters {
		if i != victim && !c.dead.Load() {
			waiting[i] = true
			others = append(others, i)
		}
	}
	h.victims[victim] = waiting
	h.mu.Unlock()
	if c, ok := h.clusters[victim]; ok {
		at := now()
		c.kill()
		h.emit(event{Kind: evKilled, Victim: victim, At: at})
	}
	// Views published before the kill was known are not checked; the
	// fencing makes a new one.
	for _, i := range others {
		if v := h.clusters[i].fed.View(); v != nil {
			h.onView(h.clusters[i], v)
		}
	}
}

// onView checks a cluster's new view for what the run waits on.
func (h *host) onView(c *cluster, v *catalog.View) {
	at := now()
	var out []event
	h.mu.Lock()
	// Coverage is read off a service the cluster consumes.
	if s := findService(v, serviceName(c.i%h.cfg.Services)); !h.synced[c.i] && s != nil {
		seen := map[string]bool{}
		for _, ep := range s.Endpoints {
			seen[ep.Locality.Cluster] = true
		}
		if len(seen) > h.covers[c.i] {
			h.covers[c.i] = len(seen)
			out = append(out, event{Kind: evCovers, Cluster: c.i, ID: len(seen), At: at})
		}
	}
	if !h.synced[c.i] && complete(v, &h.cfg, c.i) {
		h.synced[c.i] = true
		out = append(out, event{Kind: evSynced, Cluster: c.i, At: at})
	}
	for id, w := range h.watching {
		if !w.waiting[c.i] {
			continue
		}
		if ready, found := endpointReady(v, w.service, w.origin, w.addr); found && !ready {
			delete(w.waiting, c.i)
			out = append(out, event{Kind: evSeen, ID: id, Cluster: c.i, At: at})
			if len(w.waiting) == 0 {
				delete(h.watching, id)
			}
		}
	}
	for victim, waiting := range h.victims {
		if !waiting[c.i] {
			continue
		}
		if info, ok := v.Clusters[clusterName(victim)]; ok && info.Fenced {
			delete(waiting, c.i)
			out = append(out, event{Kind: evFenced, Victim: victim, Cluster: c.i, At: at})
		}
	}
	h.mu.Unlock()
	for _, e := range out {
		h.emit(e)
	}
}

// complete reports whether cluster i's view v holds every service, those
// it consumes with every cluster's endpoints, the others with its own.
func complete(v *catalog.View, cfg *hostConfig, i int) bool {
	if len(v.Services) != cfg.Services {
		return false
	}
	for k := range cfg.Services {
		want := cfg.Endpoints
		if consumes(cfg.Services, cfg.Consumed, i, k) {
			want *= cfg.Clusters
		}
		if s := findService(v, serviceName(k)); s == nil || len(s.Endpoints) != want {
			return false
		}
	}
	return true
}

// findService finds service name of the sim namespace in v.
func findService(v *catalog.View, name string) *catalog.ImportedService {
	i := sort.Search(len(v.Services), func(i int) bool {
		s := v.Services[i]
		return s.Namespace > "sim" || (s.Namespace == "sim" && s.Name >= name)
	})
	if i == len(v.Services) || v.Services[i].Name != name {
		return nil
	}
	return &v.Services[i]
}

// endpointReady finds the endpoint at addr of cluster's share of service
// name in v.
func endpointReady(v *catalog.View, name, cluster, addr string) (ready, found bool) {
	s := findService(v, name)
	if s == nil {
		return false, false
	}
	for _, ep := range s.Endpoints {
		if ep.Locality.Cluster == cluster && ep.Address == addr {
			return ep.Ready, true
		}
	}
	return false, false
}

func (h *host) stats(light bool) *hostStats {
	s := &hostStats{At: now(), CPU: cpuTime(), FDs: openFDs(), Counters: map[string]float64{}}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.Heap = ms.HeapInuse
	s.RSS = rss()
	var first *cluster
	for _, c := range h.clusters {
		if c.dead.Load() {
			continue
		}
		s.Clusters++
		s.GossipBytes += c.gossip.sent.Load()
		s.CatalogBytesOut += c.meter.out.Load()
		s.CatalogBytesIn += c.meter.in.Load()
		s.CatalogConns += c.meter.conns.Load()
		s.Views += c.views.Load()
		s.PlanTime += time.Duration(c.planTime.Load())
		c.counters(s.Counters)
		if first == nil || c.i < first.i {
			first = c
		}
	}
	if first != nil && !light {
		s.BuildTime = first.buildSidecar()
	}
	return s
}

func (h *host) stop() {
	var wg sync.WaitGroup
	for _, c := range h.clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.stop()
		}()
	}
	wg.Wait()
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss is the process's resident set size, from /proc (0 elsewhere).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res uint64
	if _, err := fmt.Sscan(string(b), &size, &res); err != nil {
		return 0
	}
	return res * uint64(os.Getpagesize())
}

func openFDs() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(es)
}

// memAvailable is the machine's available memory (MemAvailable in
// /proc/meminfo), 0 when unknown.
func memAvailable() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kb uint64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
