package topology

// DefaultOverprovisioningFactor is Envoy's default overprovisioning factor
// in percent (1.4).
const DefaultOverprovisioningFactor = 140

// DefaultPanicThreshold is Envoy's default healthy panic threshold in
// percent.
const DefaultPanicThreshold = 50

// Level is the host counts of one priority level.
type Level struct {
	// Hosts is every host of the level, whatever its health.
	Hosts int
	// Healthy is how many hosts are healthy.
	Healthy int
	// Degraded is how many hosts are degraded: they serve, but only take
	// traffic once healthy hosts are not enough. Healthy+Degraded should
	// not exceed Hosts; counts are clamped to Hosts if they do.
	Degraded int
}

// LoadConfig tunes ComputeLoad. The zero value is Envoy's defaults.
type LoadConfig struct {
	// OverprovisioningFactor in percent; 0 means 140 (Envoy's 1.4).
	OverprovisioningFactor int
	// PanicThreshold in percent of available hosts; 0 means 50, a
	// negative value turns panic mode off (Envoy's threshold of 0).
	// Values above 100 count as 100.
	PanicThreshold int
}

// Load is the share of traffic per priority level, in whole percents.
type Load struct {
	// Healthy is the percent of traffic sent to healthy hosts per level.
	Healthy []uint32
	// Degraded is the percent of traffic sent to degraded hosts per level.
	Degraded []uint32
	// Panic marks levels in panic: picks there use all of the level's
	// hosts regardless of health.
	Panic []bool
	// TotalPanic is true when every level is in panic and Healthy holds
	// shares proportional to host counts.
	TotalPanic bool
	// Availability is the normalized total availability, 0 to 100.
	Availability uint32
}

// ComputeLoad spreads traffic over priority levels from their host counts,
// as Envoy does (see the package documentation). When any level has a
// host, the shares sum to exactly 100 and levels without hosts get none.
func ComputeLoad(levels []Level, cfg LoadConfig) Load {
	var l Load
	l.compute(levels, cfg)
	return l
}

// ComputeLoadInto is ComputeLoad reusing dst's slices, so that recomputing
// for the same number of levels does not allocate.
func ComputeLoadInto(dst *Load, levels []Level, cfg LoadConfig) {
	dst.compute(levels, cfg)
}

func (l *Load) compute(levels []Level, cfg LoadConfig) {
	of := uint64(cfg.OverprovisioningFactor)
	if cfg.OverprovisioningFactor <= 0 {
		of = DefaultOverprovisioningFactor
	}
	panicThreshold := uint64(DefaultPanicThreshold)
	switch {
	case cfg.PanicThreshold < 0:
		panicThreshold = 0
	case cfg.PanicThreshold > 100:
		panicThreshold = 100
	case cfg.PanicThreshold > 0:
		panicThreshold = uint64(cfg.PanicThreshold)
	}

	n := len(levels)
	l.Healthy = resize(l.Healthy, n)
	l.Degraded = resize(l.Degraded, n)
	if cap(l.Panic) >= n {
		l.Panic = l.Panic[:n]
		clear(l.Panic)
	} else {
		l.Panic = make([]bool, n)
	}
	l.TotalPanic = false
	l.Availability = 0
	if n == 0 {
		return
	}

	// Per-level health and degraded availability (reuse the share
	// slices as scratch: they are overwritten below).
	var totalHosts uint64
	var sumHealth, sumDegraded uint64
	for i, lv := range levels {
		hosts, healthy, degraded := clampLevel(lv)
		totalHosts += hosts
		if hosts == 0 {
			continue
		}
		h := min(100, of*healthy/hosts)
		d := min(100, of*degraded/hosts)
		l.Healthy[i], l.Degraded[i] = uint32(h), uint32(d)
		sumHealth += h
		sumDegraded += d
	}
	if totalHosts == 0 {
		clear(l.Healthy)
		clear(l.Degraded)
		return
	}
	total := min(100, sumHealth+sumDegraded)
	l.Availability = uint32(total)

	// Panic per level; never when the total availability is 100.
	allPanic := true
	for i, lv := range levels {
		hosts, healthy, degraded := clampLevel(lv)
		// Envoy compares (100*healthy/hosts + 100*degraded/hosts) as real
		// numbers with the threshold: a < t  <=>  100*(h+d) < t*hosts.
		// An empty level has 0% available, so it is in panic whenever
		// panic mode is on.
		inPanic := 100*(healthy+degraded) < panicThreshold*hosts
		if hosts == 0 {
			inPanic = panicThreshold > 0
		}
		if total == 100 {
			inPanic = false
		}
		l.Panic[i] = inPanic
		allPanic = allPanic && inPanic
	}

	if total == 0 && panicThreshold == 0 {
		// Panic disabled and nothing available: all load to the first
		// level with hosts; the picker finds nobody to serve.
		clear(l.Healthy)
		clear(l.Degraded)
		l.Healthy[firstWithHosts(levels)] = 100
		return
	}
	if allPanic || total == 0 {
		// Every level in panic; or (only with a small overprovisioning
		// factor) availability rounds to 0 although hosts are up, a
		// case Envoy leaves without load: treat it as total panic too.
		l.TotalPanic = true
		for i := range l.Panic {
			l.Panic[i] = levels[i].Hosts > 0 || panicThreshold > 0
		}
		clear(l.Degraded)
		remaining := uint64(100)
		for i, lv := range levels {
			hosts, _, _ := clampLevel(lv)
			share := 100 * hosts / totalHosts
			l.Healthy[i] = uint32(share)
			remaining -= share
		}
		l.Healthy[firstWithHosts(levels)] += uint32(remaining)
		return
	}

	// total > 0 here: a level with no panic has available hosts.
	firstHealthy, remaining := distribute(l.Healthy, 100, total)
	firstDegraded, remaining := distribute(l.Degraded, remaining, total)
	if remaining != 0 {
		if firstHealthy >= 0 {
			l.Healthy[firstHealthy] += uint32(remaining)
		} else {
			l.Degraded[firstDegraded] += uint32(remaining)
		}
	}
}

// distribute turns availabilities (in place) into loads, Envoy's
// distributeLoad: each level gets availability*100/total, capped by what
// is left. It returns the first level with availability and the load left.
func distribute(shares []uint32, load, total uint64) (first int, left uint64) {
	first = -1
	for i, avail := range shares {
		if first < 0 && avail > 0 {
			first = i
		}
		s := min(load, uint64(avail)*100/total)
		shares[i] = uint32(s)
		load -= s
	}
	return first, load
}

func clampLevel(lv Level) (hosts, healthy, degraded uint64) {
	if lv.Hosts <= 0 {
		return 0, 0, 0
	}
	hosts = uint64(lv.Hosts)
	healthy = uint64(max(0, lv.Healthy))
	degraded = uint64(max(0, lv.Degraded))
	healthy = min(healthy, hosts)
	degraded = min(degraded, hosts-healthy)
	return hosts, healthy, degraded
}

func firstWithHosts(levels []Level) int {
	for i, lv := range levels {
		if lv.Hosts > 0 {
			return i
		}
	}
	return 0
}

func resize(s []uint32, n int) []uint32 {
	if cap(s) >= n {
		s = s[:n]
		clear(s)
		return s
	}
	return make([]uint32, n)
}

// Choose maps r, a uniform number in [0, 100), to a priority level and
// whether to pick among its degraded hosts, as Envoy's choosePriority
// does: healthy shares first in level order, then degraded shares. It
// returns -1 when the load is empty (no hosts). It never allocates.
func (l *Load) Choose(r uint32) (priority int, degraded bool) {
	r %= 100
	var acc uint32
	for i, s := range l.Healthy {
		acc += s
		if r < acc {
			return i, false
		}
	}
	for i, s := range l.Degraded {
		acc += s
		if r < acc {
			return i, true
		}
	}
	return -1, false
}
