package balancer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fedmesh/fedmesh/topology"
)

// ErrNoHealthy is returned by Pick when no host can serve.
var ErrNoHealthy = errors.New("no healthy upstream")

// ErrNoHosts is returned by Pick when the balancer has no hosts at all; it
// wraps ErrNoHealthy.
var ErrNoHosts = fmt.Errorf("%w: no hosts", ErrNoHealthy)

// ErrBadEndpoints is wrapped by every error Update returns.
var ErrBadEndpoints = errors.New("bad endpoints")

// Ejection reasons, as metric labels.
const (
	reason5xx     = "consecutive_5xx"
	reasonConnect = "consecutive_connect_failure"
)

// Balancer picks hosts for one upstream service. Pick, Begin, End,
// TryRetry and Snapshot are safe for concurrent use with each other and
// with Update.
type Balancer struct {
	cfg     Config
	m       *upstreamMetrics
	seeded  bool          // Config.Seed was set: use rng
	rng     atomic.Uint64 // splitmix64 state
	rr      atomic.Uint64 // RoundRobin position
	active  atomic.Int64  // requests outstanding on all hosts
	retries atomic.Int64  // retries outstanding
	state   atomic.Pointer[state]

	mu    sync.Mutex // guards the following (and Host fields marked so)
	hosts map[string]*Host
	order []*Host // hosts in Update order
}

// state is an immutable picture of the hosts, swapped as a whole.
type state struct {
	hosts  []*Host
	levels []level
	load   topology.Load
	// nextExpiry is the earliest end of an ejection in the future when the
	// state was built (unix ns); math.MaxInt64 when none.
	nextExpiry int64
}

// level is one priority's hosts.
type level struct {
	priority int     // the control plane's priority value
	hosts    []*Host // every host of the priority
	avail    []*Host // hosts healthy and not ejected when the state was built
	ring     ring    // RingHash: the ring of hosts
}

// New returns a balancer with no hosts; call Update to give it some.
func New(cfg Config) (*Balancer, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	b := &Balancer{
		cfg:   cfg,
		m:     cfg.Metrics.forUpstream(cfg.Name),
		hosts: map[string]*Host{},
	}
	b.seeded = cfg.Seed != 0
	b.rng.Store(cfg.Seed)
	b.state.Store(&state{nextExpiry: math.MaxInt64})
	return b, nil
}

// Check returns the error Update would refuse endpoints with (an
// endpoint without an address or with a negative priority, two with the
// same address and SNI), without a balancer.
func Check(endpoints []Endpoint) error {
	seen := make(map[string]int, len(endpoints))
	for i := range endpoints {
		e := &endpoints[i]
		switch {
		case e.Address == "":
			return fmt.Errorf("%w: endpoint %d has no address", ErrBadEndpoints, i)
		case e.Priority < 0:
			return fmt.Errorf("%w: endpoint %d (%s) has negative priority %d", ErrBadEndpoints, i, e.Address, e.Priority)
		}
		if j, dup := seen[e.key()]; dup {
			return fmt.Errorf("%w: endpoints %d and %d are both %s sni %q", ErrBadEndpoints, j, i, e.Address, e.SNI)
		}
		seen[e.key()] = i
	}
	return nil
}

// Update replaces the balancer's endpoints. Hosts whose address and SNI
// are unchanged keep their request counts, latency and ejection state. A
// bad list is refused with an error naming the endpoint, and the balancer
// keeps its previous endpoints.
func (b *Balancer) Update(endpoints []Endpoint) error {
	if err := Check(endpoints); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	hosts := make(map[string]*Host, len(endpoints))
	order := make([]*Host, 0, len(endpoints))
	for i := range endpoints {
		ep := endpoints[i]
		k := ep.key()
		h := b.hosts[k]
		if h == nil {
			h = &Host{b: b, key: k}
		}
		h.ep.Store(&ep)
		hosts[k] = h
		order = append(order, h)
	}
	b.hosts, b.order = hosts, order
	b.publishLocked(b.now())
	return nil
}

// publishLocked builds and swaps in a new state from b.order at now.
func (b *Balancer) publishLocked(now int64) *state {
	s := &state{hosts: b.order, nextExpiry: math.MaxInt64}
	prios := make([]int, 0, 4)
	for _, h := range b.order {
		if p := h.ep.Load().Priority; !slices.Contains(prios, p) {
			prios = append(prios, p)
		}
	}
	slices.Sort(prios)
	s.levels = make([]level, len(prios))
	counts := make([]topology.Level, len(prios))
	ejected := 0
	for i, p := range prios {
		s.levels[i].priority = p
	}
	for _, h := range b.order {
		i, _ := slices.BinarySearch(prios, h.ep.Load().Priority)
		lv := &s.levels[i]
		lv.hosts = append(lv.hosts, h)
		counts[i].Hosts++
		until := h.ejectedUntil.Load()
		if until > now {
			ejected++
			s.nextExpiry = min(s.nextExpiry, until)
		}
		if h.ep.Load().Healthy && until <= now {
			lv.avail = append(lv.avail, h)
			counts[i].Healthy++
		}
	}
	if b.cfg.Policy == RingHash {
		for i := range s.levels {
			// The ring holds every host of the level; picks skip those
			// not available, so an ejection or a health change moves
			// only the keys of the host concerned.
			lv := &s.levels[i]
			lv.ring = buildRing(lv.hosts, b.cfg.MinRingSize, b.cfg.MaxRingSize)
		}
	}
	s.load = topology.ComputeLoad(counts, topology.LoadConfig{
		OverprovisioningFactor: b.cfg.OverprovisioningFactor,
		PanicThreshold:         b.cfg.PanicThreshold,
	})
	b.m.setEjected(ejected)
	b.state.Store(s)
	return s
}

func (b *Balancer) now() int64 { return b.cfg.Now().UnixNano() }

// rand returns a random number: with Config.Seed set, the next number of
// the balancer's splitmix64 sequence (lock-free, and reproducible from one
// goroutine); otherwise from the runtime's per-thread generator.
func (b *Balancer) rand() uint64 {
	if !b.seeded {
		return rand.Uint64() // per-thread runtime generator: no contention
	}
	z := b.rng.Add(0x9e3779b97f4a7c15)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Pick chooses a host for a request: a priority by the spill-over shares
// of topology.ComputeLoad over healthy, non-ejected hosts, then the better
// of two random hosts of that priority. Hosts in exclude (the hosts tried
// by earlier attempts of a retried request) are avoided while any other
// host can serve; only when none can is an excluded one returned. Pick
// never blocks and never allocates. It returns ErrNoHosts or ErrNoHealthy
// when nothing can serve.
func (b *Balancer) Pick(exclude ...*Host) (*Host, error) {
	if b.cfg.Policy == RingHash {
		return b.PickHash(b.rand(), exclude...)
	}
	return b.pick(0, false, exclude)
}

// PickHash is Pick for a request with hash key hash: with RingHash, the
// same hash gets the same host as long as that host stays available and
// the hosts do not change; hosts in exclude are skipped along the ring.
// With other policies it is Pick.
func (b *Balancer) PickHash(hash uint64, exclude ...*Host) (*Host, error) {
	if b.cfg.Policy != RingHash {
		return b.pick(0, false, exclude)
	}
	return b.pick(hash, true, exclude)
}

func (b *Balancer) pick(hash uint64, hashed bool, exclude []*Host) (*Host, error) {
	s := b.state.Load()
	if len(s.hosts) == 0 {
		b.m.inc(seriesNoHosts)
		return nil, ErrNoHosts
	}
	now := b.now()
	if now >= s.nextExpiry && b.mu.TryLock() {
		// An ejection ended: recompute shares. Whoever holds the lock
		// (an Update, an ejection, another Pick) publishes a fresh state;
		// this pick never waits for it.
		if s = b.state.Load(); now >= s.nextExpiry {
			s = b.publishLocked(now)
		}
		b.mu.Unlock()
	}
	// A state may go stale while we look (hosts ejected since it was
	// built); every ejection publishes a new one, so look again in the
	// newest, a bounded number of times.
	for range 4 {
		if h := b.pickIn(s, now, hash, hashed, exclude); h != nil {
			return h, nil
		}
		if len(exclude) > 0 {
			// Every servable host was excluded: a retry goes to one of
			// them rather than nowhere.
			if h := b.pickIn(s, now, hash, hashed, nil); h != nil {
				return h, nil
			}
		}
		fresh := b.state.Load()
		if fresh == s {
			break
		}
		s = fresh
	}
	b.m.inc(seriesNoHealthy)
	return nil, ErrNoHealthy
}

// pickIn picks from state s, or returns nil when nobody is eligible.
func (b *Balancer) pickIn(s *state, now int64, hash uint64, hashed bool, exclude []*Host) *Host {
	r := hash
	if !hashed {
		r = b.rand()
	}
	p, _ := s.load.Choose(uint32(r % 100))
	if p < 0 {
		return nil
	}
	lv := &s.levels[p]
	if hashed {
		// Envoy's ring hash: the priority by the hash too, then the ring
		// of that priority; when it has nobody left, the first priority
		// in order whose ring has.
		if h := lv.ring.pick(hash, now, !s.load.Panic[p], exclude); h != nil {
			return h
		}
		for i := range s.levels {
			if h := s.levels[i].ring.pick(hash, now, true, exclude); h != nil {
				return h
			}
		}
		if s.load.Panic[p] {
			return lv.ring.pick(hash, now, false, exclude)
		}
		return nil
	}
	if s.load.Panic[p] {
		// Panic: Envoy's semantics, any host of the level.
		if h := b.pickFrom(lv.hosts, false, now, exclude); h != nil {
			return h
		}
	} else if h := b.pickFrom(lv.avail, true, now, exclude); h != nil {
		return h
	}
	// The chosen level had nobody left (all excluded, or ejected since
	// the state was built): take the first level in order that has.
	for i := range s.levels {
		if h := b.pickFrom(s.levels[i].avail, true, now, exclude); h != nil {
			return h
		}
	}
	if s.load.Panic[p] {
		for i := range s.levels {
			if h := b.pickFrom(s.levels[i].hosts, false, now, exclude); h != nil {
				return h
			}
		}
	}
	return nil
}

// pickFrom returns the better of two distinct random eligible candidates,
// or the only eligible one, or nil. A candidate is eligible when it is not
// excluded and, if checkAvail, not ejected at now.
func (b *Balancer) pickFrom(cands []*Host, checkAvail bool, now int64, exclude []*Host) *Host {
	n := uint64(len(cands))
	if n == 0 {
		return nil
	}
	if b.cfg.Policy == RoundRobin {
		h, _ := scan(cands, b.rr.Add(1)%n, nil, checkAvail, now, exclude)
		return h
	}
	r := b.rand()
	i := r % n
	a, ai := scan(cands, i, nil, checkAvail, now, exclude)
	if a == nil || n == 1 {
		return a
	}
	// A second index distinct from the first draw.
	j := (i + 1 + (r>>32)%(n-1)) % n
	if j == ai {
		j = (j + 1) % n
	}
	c, _ := scan(cands, j, a, checkAvail, now, exclude)
	if c == nil {
		return a
	}
	if b.better(c, a, now) {
		return c
	}
	return a
}

// scan returns the first eligible host at or after index start, wrapping,
// that is not skip.
func scan(cands []*Host, start uint64, skip *Host, checkAvail bool, now int64, exclude []*Host) (*Host, uint64) {
	n := uint64(len(cands))
	for k := uint64(0); k < n; k++ {
		idx := (start + k) % n
		h := cands[idx]
		if h == skip || (checkAvail && h.ejected(now)) || slices.Contains(exclude, h) {
			continue
		}
		return h, idx
	}
	return nil, 0
}

// better reports whether x should be preferred over y.
func (b *Balancer) better(x, y *Host, now int64) bool {
	wx, wy := x.weight(), y.weight()
	ax, ay := float64(x.active.Load()+1), float64(y.active.Load()+1)
	if b.cfg.Policy == PeakEWMA {
		return x.latency(now)*ax*wy < y.latency(now)*ay*wx
	}
	return ax*wy < ay*wx
}

// eject ejects h for reason at now, unless it is gone, already ejected,
// or the maximum ejected share is reached.
func (b *Balancer) eject(h *Host, reason string, now int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	counter, maxPercent := &h.fail5xx, b.cfg.Outlier.MaxEjectionPercent
	threshold := b.cfg.Outlier.Consecutive5xx
	if reason == reasonConnect {
		counter, maxPercent = &h.failConnect, b.cfg.Outlier.MaxConnectEjectionPercent
		threshold = b.cfg.Outlier.ConsecutiveConnectFailures
	}
	if int(counter.Load()) < threshold || b.hosts[h.key] != h {
		return // reset by a success meanwhile, or removed by an Update
	}
	counter.Store(0)
	if h.ejected(now) {
		return
	}
	ejected := 0
	for _, o := range b.order {
		if o.ejected(now) {
			ejected++
		}
	}
	if allowed := max(1, len(b.order)*maxPercent/100); ejected >= allowed {
		if reason == reasonConnect {
			b.m.inc(seriesSkipConnect)
		} else {
			b.m.inc(seriesSkip5xx)
		}
		b.cfg.Logger.Debug("ejection skipped: maximum ejected share reached",
			"upstream", b.cfg.Name, "host", h.Address(), "reason", reason, "ejected", ejected, "allowed", allowed)
		return
	}
	// The multiplier drops by one per Interval the host stayed in.
	if h.ejections > 0 && now > h.lastEjectionEnd {
		h.ejections = max(0, h.ejections-int((now-h.lastEjectionEnd)/int64(b.cfg.Outlier.Interval)))
	}
	h.ejections++
	d := min(b.cfg.Outlier.BaseEjectionTime*time.Duration(h.ejections), b.cfg.Outlier.MaxEjectionTime)
	h.ejectedUntil.Store(now + int64(d))
	h.lastEjectionEnd = now + int64(d)
	if reason == reasonConnect {
		h.ejectReason = fmt.Sprintf("%d consecutive connect failures", threshold)
		b.m.inc(seriesEjectConnect)
	} else {
		h.ejectReason = fmt.Sprintf("%d consecutive 5xx", threshold)
		b.m.inc(seriesEject5xx)
	}
	b.cfg.Logger.Info("host ejected", "upstream", b.cfg.Name, "host", h.Address(),
		"reason", h.ejectReason, "for", d, "ejections", h.ejections)
	b.publishLocked(now)
}

// TryRetry reserves a retry from the retry budget: concurrent retries may
// be at most RetryBudget.BudgetPercent of outstanding requests, and
// RetryBudget.MinRetryConcurrency is always allowed. It returns false when
// the budget is spent; after true, call RetryDone when the retry ends.
func (b *Balancer) TryRetry() bool {
	rb := b.cfg.RetryBudget
	for {
		cur := b.retries.Load()
		limit := max(int64(rb.MinRetryConcurrency), b.active.Load()*int64(rb.BudgetPercent)/100)
		if cur >= limit {
			b.m.inc(seriesRetryRefused)
			return false
		}
		if b.retries.CompareAndSwap(cur, cur+1) {
			b.m.inc(seriesRetryAllowed)
			return true
		}
	}
}

// RetryDone returns a retry reserved by TryRetry to the budget.
func (b *Balancer) RetryDone() { b.retries.Add(-1) }
