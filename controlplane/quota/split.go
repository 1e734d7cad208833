package quota

import (
	"cmp"
	"math/bits"
	"slices"
)

// FloorDivisor sets the floor of a split: every participant gets at
// least ⌊total / (FloorDivisor·n)⌋ of a total split among n participants,
// a quarter of an equal share, and at least 1 when total >= n. A
// participant whose demand was zero for a while therefore still admits
// requests when its demand comes back, before the next rebalance gives it
// more, and no cluster starves.
const FloorDivisor = 4

// Demand is one participant's demand in a split: a cluster (ID is the
// cluster name) or a sidecar (ID is its node ID).
type Demand struct {
	// ID names the participant; IDs are unique within one split.
	ID string
	// Requests is the participant's recent demand (admitted + refused)
	// in any unit that is the same for every participant of the split
	// (requests per interval, per second, ...). Negative counts as 0.
	Requests int64
}

// Share is what a split gives one participant.
type Share struct {
	ID       string
	Requests int64
}

// Floor returns the floor of a split of total among n participants (see
// FloorDivisor).
func Floor(total int64, n int) int64 {
	if n <= 0 || total <= 0 {
		return 0
	}
	f := total / (FloorDivisor * int64(n))
	if f == 0 && total >= int64(n) {
		f = 1
	}
	return f
}

// Split divides total among the participants of demands: each gets the
// floor (Floor), and what is left is divided in proportion to demand (in
// equal parts when no one has demand). Shares are integers; the
// remainders of the division go one by one to the largest fractional
// parts (ties to the smaller ID), so the shares add up to exactly total,
// never more. The result is sorted by ID and depends only on the set of
// demands, not on their order: every control plane that splits the same
// inputs gets the same shares.
//
// Duplicate IDs keep the largest demand. total <= 0 gives every
// participant 0.
func Split(total int64, demands []Demand) []Share {
	ds := normalize(demands)
	if len(ds) == 0 {
		return nil
	}
	shares := make([]Share, len(ds))
	for i, d := range ds {
		shares[i].ID = d.ID
	}
	if total <= 0 {
		return shares
	}
	n := int64(len(ds))
	floor := Floor(total, len(ds))
	rest := total - floor*n
	var sum uint64
	for _, d := range ds {
		sum += uint64(d.Requests) // <= MaxDemand each; see normalize
	}
	weights := make([]uint64, len(ds))
	if sum == 0 {
		for i := range weights {
			weights[i] = 1
		}
		sum = uint64(n)
	} else {
		for i, d := range ds {
			weights[i] = uint64(d.Requests)
		}
	}
	// rest·w/sum exactly, in 128 bits: rest < 2^63 and w <= sum.
	type frac struct {
		i   int
		rem uint64
	}
	fracs := make([]frac, len(ds))
	given := int64(0)
	for i, w := range weights {
		hi, lo := bits.Mul64(uint64(rest), w)
		q, r := bits.Div64(hi, lo, sum)
		shares[i].Requests = floor + int64(q)
		given += int64(q)
		fracs[i] = frac{i: i, rem: r}
	}
	left := rest - given // < n
	slices.SortStableFunc(fracs, func(a, b frac) int {
		return cmp.Compare(b.rem, a.rem) // larger remainder first; stable keeps ID order
	})
	for k := int64(0); k < left; k++ {
		shares[fracs[k].i].Requests++
	}
	return shares
}

// MaxDemand is the largest demand a split counts; larger demands count
// as MaxDemand (about 10^12 requests per interval, beyond any real
// service), so that the sum of demands of up to 2^22 participants fits
// in 63 bits.
const MaxDemand = 1 << 40

// normalize sorts demands by ID, merges duplicate IDs (largest demand
// wins) and clamps demands to [0, MaxDemand].
func normalize(demands []Demand) []Demand {
	ds := slices.Clone(demands)
	for i := range ds {
		ds[i].Requests = min(max(ds[i].Requests, 0), MaxDemand)
	}
	slices.SortFunc(ds, func(a, b Demand) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(b.Requests, a.Requests))
	})
	return slices.CompactFunc(ds, func(a, b Demand) bool { return a.ID == b.ID })
}

// Sum returns the total of shares.
func Sum(shares []Share) int64 {
	var s int64
	for _, sh := range shares {
		s += sh.Requests
	}
	return s
}

// Of returns the share of id in shares (sorted by ID, as Split returns
// them) and whether id is in it.
func Of(shares []Share, id string) (int64, bool) {
	i, ok := slices.BinarySearchFunc(shares, id, func(s Share, id string) int { return cmp.Compare(s.ID, id) })
	if !ok {
		return 0, false
	}
	return shares[i].Requests, true
}
