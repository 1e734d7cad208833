package portset

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// DefaultOpaque are the ports where the mesh detects no protocol by
// default: the servers speak first there (SMTP 25 and 587, MySQL 3306,
// Galera 4444, Elasticsearch's transport 9300, memcached 11211) or the
// client's first bytes are not HTTP (PostgreSQL 5432, Redis 6379).
// They are Linkerd's default opaque ports.
const DefaultOpaque = "25,587,3306,4444,5432,6379,9300,11211"

// None is the written form of the empty set.
const None = "none"

// Range is the ports from Lo to Hi, both included.
type Range struct{ Lo, Hi uint16 }

// Set is a set of ports. The zero value is empty. Its ranges are sorted,
// disjoint and not adjacent.
type Set struct{ ranges []Range }

// Parse reads a comma-separated list of ports (1 to 65535) and ranges
// LO-HI; spaces around items are ignored. "" and "none" are the empty
// set.
func Parse(s string) (Set, error) {
	if t := strings.TrimSpace(s); t == "" || t == None {
		return Set{}, nil
	}
	var rs []Range
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		lo, hi, isRange := strings.Cut(f, "-")
		l, err := port(lo)
		if err != nil {
			return Set{}, fmt.Errorf("%q: %w", f, err)
		}
		h := l
		if isRange {
			if h, err = port(hi); err != nil {
				return Set{}, fmt.Errorf("%q: %w", f, err)
			}
			if h < l {
				return Set{}, fmt.Errorf("%q: the range ends before it starts", f)
			}
		}
		rs = append(rs, Range{l, h})
	}
	return Set{ranges: merge(rs)}, nil
}

// MustParse is Parse for constants; it panics on an error.
func MustParse(s string) Set {
	set, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return set
}

func port(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not a port from 1 to 65535", s)
	}
	return uint16(n), nil
}

// merge sorts rs and joins those that overlap or touch.
func merge(rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int { return int(a.Lo) - int(b.Lo) })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.Lo) <= int(out[n-1].Hi)+1 {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Contains reports whether p is in the set.
func (s Set) Contains(p uint16) bool {
	_, found := slices.BinarySearchFunc(s.ranges, p, func(r Range, p uint16) int {
		switch {
		case r.Hi < p:
			return -1
		case r.Lo > p:
			return 1
		}
		return 0
	})
	return found
}

// Empty reports whether the set has no port.
func (s Set) Empty() bool { return len(s.ranges) == 0 }

// Ranges returns the set's ranges, sorted.
func (s Set) Ranges() []Range { return slices.Clone(s.ranges) }

// String writes the set as Parse reads it: "none" when empty.
func (s Set) String() string {
	if s.Empty() {
		return None
	}
	var b strings.Builder
	for i, r := range s.ranges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(r.Lo)))
		if r.Hi != r.Lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(r.Hi)))
		}
	}
	return b.String()
}
