package balancer

import (
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// ring is a consistent hash ring (ketama-like, as Envoy's RING_HASH): each
// host owns points on a 64-bit circle, as many as its share of the
// weights gives it; a hash belongs to the first point at or after it.
// Adding or removing one host moves only the keys of that host's points.
type ring []ringEntry

type ringEntry struct {
	hash uint64
	host *Host
}

// buildRing places hosts on a ring of between minSize and maxSize points:
// at least minSize in all, at least one per host, in proportion to the
// hosts' weights. A point's hash is xxhash64 of "ADDRESS_I" (Envoy's
// scheme with XX_HASH), so that the ring depends only on the hosts.
func buildRing(hosts []*Host, minSize, maxSize uint64) ring {
	if len(hosts) == 0 {
		return nil
	}
	var total float64
	minW := 0.0
	for _, h := range hosts {
		w := h.weight()
		total += w
		if minW == 0 || w < minW {
			minW = w
		}
	}
	// Scale so that the lightest host gets at least one point and the
	// ring has at least minSize, capped at maxSize.
	size := max(float64(minSize), total/minW)
	size = min(size, float64(maxSize))
	out := make(ring, 0, int(size)+len(hosts))
	buf := make([]byte, 0, 64)
	for _, h := range hosts {
		n := max(1, int(size*h.weight()/total+0.5))
		addr := h.Address()
		for i := range n {
			buf = append(append(append(buf[:0], addr...), '_'), strconv.Itoa(i)...)
			out = append(out, ringEntry{hash: xxhash.Sum64(buf), host: h})
		}
	}
	slices.SortFunc(out, func(a, b ringEntry) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	return out
}

// pick returns the host of the first point at or after hash whose host
// is not excluded and, with checkAvail, healthy and not ejected at now;
// nil when there is none.
func (r ring) pick(hash uint64, now int64, checkAvail bool, exclude []*Host) *Host {
	n := len(r)
	if n == 0 {
		return nil
	}
	i, _ := slices.BinarySearchFunc(r, hash, func(e ringEntry, h uint64) int {
		switch {
		case e.hash < h:
			return -1
		case e.hash > h:
			return 1
		}
		return 0
	})
	var last *Host
	for k := range n {
		h := r[(i+k)%n].host
		if h == last {
			continue
		}
		last = h
		if checkAvail && (h.ejected(now) || !h.ep.Load().Healthy) || slices.Contains(exclude, h) {
			continue
		}
		return h
	}
	return nil
}
