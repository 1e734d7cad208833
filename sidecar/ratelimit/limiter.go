package ratelimit

import (
	"container/list"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Limiter.
type Config struct {
	// Now tells the time; nil means time.Now. Only differences between
	// its readings count (a time.Time with a monotonic reading is best).
	Now func() time.Time
}

// Limiter holds the token buckets and counters of a sidecar's limits,
// by limit ID, and checks requests against Rules. It is safe for
// concurrent use.
type Limiter struct {
	now   func() time.Time
	epoch time.Time

	mu     sync.Mutex                        // serialises writers of states
	states atomic.Pointer[map[string]*state] // copy on write; read without mu
}

// state is one limit's buckets and counters.
type state struct {
	quota bool

	admitted, refused atomic.Uint64

	mu sync.Mutex // guards the following
	// one is the bucket of an unkeyed limit.
	one tokens
	// keys are the buckets of a keyed limit, by key value; lru orders
	// them, most recently used first (elements hold *keyed).
	keys map[string]*list.Element
	lru  list.List
}

type keyed struct {
	key string
	t   tokens
}

// New returns a Limiter with no buckets.
func New(cfg Config) *Limiter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{now: cfg.Now, epoch: cfg.Now()}
	l.states.Store(&map[string]*state{})
	return l
}

// Declare makes the limits of rules known before any request uses them,
// so that QuotaDemand reports configured quotas that have seen no
// request yet. Buckets are otherwise created on first use.
func (l *Limiter) Declare(rules ...*Rules) {
	for _, r := range rules {
		if r == nil {
			continue
		}
		for i := range r.Limits {
			l.state(&r.Limits[i])
		}
	}
}

// Prune drops the buckets of every limit that active does not hold (a
// configuration no longer has it), so that memory follows the limits in
// force; their counters stay. A limit that comes back starts with full
// buckets.
func (l *Limiter) Prune(active map[string]bool) {
	for id, s := range *l.states.Load() {
		if active[id] {
			continue
		}
		s.mu.Lock()
		s.one, s.keys = tokens{}, nil
		s.lru.Init()
		s.mu.Unlock()
	}
}

// state returns the state of limit lim, creating it on first use.
func (l *Limiter) state(lim *Limit) *state {
	if s := (*l.states.Load())[lim.ID]; s != nil {
		return s
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := *l.states.Load()
	if s := cur[lim.ID]; s != nil {
		return s
	}
	next := make(map[string]*state, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	s := &state{quota: lim.Quota}
	next[lim.ID] = s
	l.states.Store(&next)
	return s
}

// Decision is the outcome of Check.
type Decision struct {
	// Allowed is false when a limit refused the request.
	Allowed bool
	// Limit is the limit that refused the request or, when it was
	// allowed, the one of the limits that counted it with the fewest
	// tokens left; nil when no limit counted it.
	Limit *Limit
	// Remaining are the tokens left in Limit's bucket.
	Remaining int64
	// Reset is the time until Limit's bucket is next refilled: for a
	// refused request, when to retry.
	Reset time.Duration
}

// Check counts request r against every limit of rules that applies to
// it, in order, and refuses it at the first empty bucket. A nil rules
// allows everything.
func (l *Limiter) Check(rules *Rules, r *Request) Decision {
	d := Decision{Allowed: true}
	if rules == nil {
		return d
	}
	now := int64(l.now().Sub(l.epoch))
	for i := range rules.Limits {
		lim := &rules.Limits[i]
		if !lim.Applies(r) {
			continue
		}
		key, _ := lim.key(r)
		ok, left, reset := l.state(lim).take(lim, key, now)
		if !ok {
			return Decision{Limit: lim, Reset: reset}
		}
		if d.Limit == nil || left < d.Remaining {
			d.Limit, d.Remaining, d.Reset = lim, left, reset
		}
	}
	return d
}

// take takes a token from the bucket of key (ignored when unkeyed) and
// counts the outcome.
func (s *state) take(lim *Limit, key string, now int64) (bool, int64, time.Duration) {
	s.mu.Lock()
	var (
		ok    bool
		left  int64
		reset time.Duration
	)
	if lim.Key == KeyNone {
		ok, left, reset = s.one.take(lim.Bucket, now)
	} else {
		ok, left, reset = s.keyedLocked(key, lim.MaxKeys).take(lim.Bucket, now)
	}
	s.mu.Unlock()
	if ok {
		s.admitted.Add(1)
	} else {
		s.refused.Add(1)
	}
	return ok, left, reset
}

// keyedLocked returns the bucket of key, most recently used now; a new
// key evicts the least recently used one beyond max.
func (s *state) keyedLocked(key string, max int) *tokens {
	if max <= 0 {
		max = DefaultMaxKeys
	}
	if e, ok := s.keys[key]; ok {
		s.lru.MoveToFront(e)
		return &e.Value.(*keyed).t
	}
	if s.keys == nil {
		s.keys = make(map[string]*list.Element)
	}
	for len(s.keys) >= max {
		old := s.lru.Back()
		s.lru.Remove(old)
		delete(s.keys, old.Value.(*keyed).key)
	}
	k := &keyed{key: key}
	s.keys[key] = s.lru.PushFront(k)
	return &k.t
}

// Keys returns the number of buckets limit id keeps (1 for an unkeyed
// limit that has counted a request, 0 for an unknown one).
func (l *Limiter) Keys(id string) int {
	s := (*l.states.Load())[id]
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys != nil {
		return len(s.keys)
	}
	if s.one.init {
		return 1
	}
	return 0
}

// Count is what one limit admitted and refused since the Limiter
// started.
type Count struct {
	// Limit is the limit's ID.
	Limit string
	// Quota is true for a clusterset quota's share.
	Quota bool
	// Admitted and Refused count requests (or connections), monotonic.
	Admitted, Refused uint64
}

// Counts returns the counters of every limit the Limiter has seen,
// sorted by ID. Counters survive configuration changes: a limit removed
// and added again goes on counting from where it was.
func (l *Limiter) Counts() []Count {
	m := *l.states.Load()
	out := make([]Count, 0, len(m))
	for id, s := range m {
		out = append(out, Count{Limit: id, Quota: s.quota, Admitted: s.admitted.Load(), Refused: s.refused.Load()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Limit < out[j].Limit })
	return out
}
