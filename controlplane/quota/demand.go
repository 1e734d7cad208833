package quota

import (
	"slices"
	"time"
)

// Report is one node's load for one quota over one reporting interval:
// what a sidecar's load report says (deltas).
type Report struct {
	Node     string
	Quota    string
	Admitted uint64
	Refused  uint64
	// Interval is the period the counts cover.
	Interval time.Duration
	// At is when the report arrived.
	At time.Time
}

// Rate is a demand as requests per quota interval.
type Rate struct {
	// Admitted and Refused are the requests admitted and refused per
	// interval of the quota.
	Admitted, Refused int64
}

// Demand returns admitted + refused.
func (r Rate) Demand() int64 { return r.Admitted + r.Refused }

// Tracker keeps the recent load reports of one cluster's nodes and turns
// them into rates. It is a plain data structure with no clock and no
// lock: the caller passes the time and serializes the calls.
type Tracker struct {
	window  time.Duration
	reports map[trackKey][]Report // newest last
	// totals are the counts since start per quota, for metrics.
	totals map[string][2]uint64
}

type trackKey struct{ quota, node string }

// NewTracker returns a tracker that averages the reports of the last
// window (at least one report is always kept per node and quota).
func NewTracker(window time.Duration) *Tracker {
	return &Tracker{window: window, reports: make(map[trackKey][]Report), totals: make(map[string][2]uint64)}
}

// Add records r.
func (t *Tracker) Add(r Report) {
	k := trackKey{r.Quota, r.Node}
	t.reports[k] = append(t.reports[k], r)
	tot := t.totals[r.Quota]
	tot[0] += r.Admitted
	tot[1] += r.Refused
	t.totals[r.Quota] = tot
}

// Forget drops every report of node (a sidecar that went away).
func (t *Tracker) Forget(node string) {
	for k := range t.reports {
		if k.node == node {
			delete(t.reports, k)
		}
	}
}

// Totals returns the admitted and refused requests reported for quota
// since the tracker was made.
func (t *Tracker) Totals(quota string) (admitted, refused uint64) {
	tot := t.totals[quota]
	return tot[0], tot[1]
}

// Quotas returns the quotas that nodes report, sorted.
func (t *Tracker) Quotas() []string {
	var out []string
	for k := range t.reports {
		out = append(out, k.quota)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Nodes returns the recent rate of every node that reports quota, in
// requests per interval, by node. Reports older than the window before
// now are dropped first; a node whose last report is older than stale
// is left out (and forgotten).
func (t *Tracker) Nodes(quota string, interval time.Duration, now time.Time, stale time.Duration) map[string]Rate {
	out := make(map[string]Rate)
	for k, rs := range t.reports {
		if k.quota != quota {
			continue
		}
		if now.Sub(rs[len(rs)-1].At) > stale {
			delete(t.reports, k)
			continue
		}
		i := 0
		for i < len(rs)-1 && now.Sub(rs[i].At) > t.window {
			i++
		}
		rs = rs[i:]
		t.reports[k] = rs
		var adm, ref uint64
		var span time.Duration
		for _, r := range rs {
			adm += r.Admitted
			ref += r.Refused
			span += r.Interval
		}
		out[k.node] = Rate{Admitted: perInterval(adm, span, interval), Refused: perInterval(ref, span, interval)}
	}
	return out
}

// perInterval scales n requests over span to requests per interval,
// rounded up so that a trickle still counts as demand.
func perInterval(n uint64, span, interval time.Duration) int64 {
	if n == 0 || span <= 0 {
		return 0
	}
	v := float64(n) * float64(interval) / float64(span)
	if v >= MaxDemand {
		return MaxDemand
	}
	iv := int64(v)
	if float64(iv) < v {
		iv++
	}
	return iv
}

// SumRates adds rates.
func SumRates(rates map[string]Rate) Rate {
	var s Rate
	for _, r := range rates {
		s.Admitted += r.Admitted
		s.Refused += r.Refused
	}
	return s
}

// Quantize rounds a demand to two significant digits (1234 -> 1200, 56
// -> 56), so that a steady demand publishes the same record round after
// round and the exports it rides on are not rewritten for noise; the
// split is as good with it, off by at most 5%.
func Quantize(n int64) int64 {
	if n < 100 {
		return n
	}
	p := int64(1)
	for n/p >= 100 {
		p *= 10
	}
	return (n + p/2) / p * p
}

// Quantized returns r with both counts quantized.
func (r Rate) Quantized() Rate {
	return Rate{Admitted: Quantize(r.Admitted), Refused: Quantize(r.Refused)}
}
