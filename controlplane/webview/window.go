package webview

import (
	"math"
	"time"
)

// window turns the cumulative counters of many targets, read once per
// tick, into rates over the last span of time. It is a plain state
// machine: the collector feeds it one tick at a time, with the tick's
// time, from one goroutine.
type window struct {
	span time.Duration
	// prev holds each target's last page; a target missing from a tick
	// is forgotten, and starts from a fresh baseline when it returns.
	prev map[string]*page
	// ticks are the deltas of the ticks within span, oldest first.
	ticks []tick
	last  time.Time
}

// tick is what changed between two ticks, summed over the targets.
type tick struct {
	at    time.Time
	dt    time.Duration
	edges map[EdgeKey]*counts
	conns float64 // gateway connections routed
}

func newWindow(span time.Duration) *window {
	return &window{span: span, prev: map[string]*page{}}
}

// add records the pages read at now, by target address. A counter that
// went down (the target restarted) counts from zero.
func (w *window) add(now time.Time, pages map[string]*page) {
	t := tick{at: now, edges: map[EdgeKey]*counts{}}
	if !w.last.IsZero() {
		t.dt = now.Sub(w.last)
	}
	w.last = now
	for addr, p := range pages {
		old := w.prev[addr]
		w.prev[addr] = p
		if old == nil {
			continue // a baseline: nothing to compare with yet
		}
		for k, c := range p.edges {
			o := old.edges[k]
			if o == nil {
				o = &counts{}
			}
			d := t.edges[k]
			if d == nil {
				d = &counts{buckets: map[float64]float64{}}
				t.edges[k] = d
			}
			d.requests += delta(c.requests, o.requests)
			d.errors += delta(c.errors, o.errors)
			for b, v := range c.buckets {
				d.buckets[b] += delta(v, o.buckets[b])
			}
		}
		t.conns += delta(p.gatewayConns, old.gatewayConns)
	}
	for addr := range w.prev {
		if _, ok := pages[addr]; !ok {
			delete(w.prev, addr)
		}
	}
	if t.dt > 0 {
		w.ticks = append(w.ticks, t)
	}
	cut := 0
	for cut < len(w.ticks) && now.Sub(w.ticks[cut].at) >= w.span {
		cut++
	}
	w.ticks = w.ticks[cut:]
}

func delta(cur, old float64) float64 {
	if cur < old {
		return cur // reset
	}
	return cur - old
}

// EdgeRate is the traffic of one edge over the window.
type EdgeRate struct {
	EdgeKey
	// Requests counts the requests of the window; RequestRate is per
	// second.
	Requests    float64
	RequestRate float64
	// ErrorRate is failed requests per second; ErrorRatio their share.
	ErrorRate  float64
	ErrorRatio float64
	// P99 is the 99th percentile of latency; NaN when unknown.
	P99 float64
}

// rates sums the window: the traffic of every edge that carried any, and
// gateway connections per second. seconds is the time the window spans.
func (w *window) rates() (edges map[EdgeKey]EdgeRate, connRate, seconds float64) {
	sum := map[EdgeKey]*counts{}
	var dt time.Duration
	var conns float64
	for _, t := range w.ticks {
		dt += t.dt
		conns += t.conns
		for k, c := range t.edges {
			s := sum[k]
			if s == nil {
				s = &counts{buckets: map[float64]float64{}}
				sum[k] = s
			}
			s.requests += c.requests
			s.errors += c.errors
			for b, v := range c.buckets {
				s.buckets[b] += v
			}
		}
	}
	edges = map[EdgeKey]EdgeRate{}
	seconds = dt.Seconds()
	if seconds <= 0 {
		return edges, 0, 0
	}
	for k, s := range sum {
		if s.requests == 0 {
			continue
		}
		edges[k] = EdgeRate{
			EdgeKey: k, Requests: s.requests, RequestRate: s.requests / seconds,
			ErrorRate: s.errors / seconds, ErrorRatio: math.Min(1, s.errors/s.requests),
			P99: quantile(0.99, s.buckets),
		}
	}
	return edges, conns / seconds, seconds
}
