package topology

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pct builds a level of 100 hosts with the given healthy and degraded
// percentages, the way Envoy's documentation tables state them.
func pct(healthy, degraded int) Level {
	return Level{Hosts: 100, Healthy: healthy, Degraded: degraded}
}

type share struct {
	Healthy, Degraded []uint32
	Panic             []bool
	TotalPanic        bool
	Availability      uint32
}

func shareOf(l Load) share { return share(l) }

func TestComputeLoadEnvoyDocs(t *testing.T) {
	tests := []struct {
		name   string
		levels []Level
		want   share
	}{
		// Source: Envoy docs, arch overview, load balancing, "Priority
		// levels": two levels, P=1 100% healthy; P=0 healthy -> traffic.
		{"priority levels P0 100%", []Level{pct(100, 0), pct(100, 0)},
			share{[]uint32{100, 0}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"priority levels P0 72%", []Level{pct(72, 0), pct(100, 0)},
			share{[]uint32{100, 0}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"priority levels P0 71%", []Level{pct(71, 0), pct(100, 0)},
			share{[]uint32{99, 1}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"priority levels P0 50%", []Level{pct(50, 0), pct(100, 0)},
			share{[]uint32{70, 30}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"priority levels P0 25%", []Level{pct(25, 0), pct(100, 0)},
			share{[]uint32{35, 65}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"priority levels P0 0%", []Level{pct(0, 0), pct(100, 0)},
			share{[]uint32{0, 100}, []uint32{0, 0}, []bool{false, false}, false, 100}},

		// Source: Envoy docs, "Degraded endpoints": one level,
		// healthy/degraded/unhealthy -> traffic to healthy, degraded.
		{"degraded 100/0/0", []Level{pct(100, 0)},
			share{[]uint32{100}, []uint32{0}, []bool{false}, false, 100}},
		{"degraded 71/0/29", []Level{pct(71, 0)},
			share{[]uint32{100}, []uint32{0}, []bool{false}, false, 99}},
		{"degraded 71/29/0", []Level{pct(71, 29)},
			share{[]uint32{99}, []uint32{1}, []bool{false}, false, 100}},
		{"degraded 25/65/10", []Level{pct(25, 65)},
			share{[]uint32{35}, []uint32{65}, []bool{false}, false, 100}},
		// 5% available is below the 50% panic threshold; with one level
		// that is total panic, which still sends 100% to P=0.
		{"degraded 5/0/95", []Level{pct(5, 0)},
			share{[]uint32{100}, []uint32{0}, []bool{true}, true, 7}},

		// Source: Envoy docs, "Panic threshold", first table: P=1 100%
		// healthy, normalized total health always 100%, no panic.
		{"panic table 1 P0 72%", []Level{pct(72, 0), pct(100, 0)},
			share{[]uint32{100, 0}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"panic table 1 P0 71%", []Level{pct(71, 0), pct(100, 0)},
			share{[]uint32{99, 1}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"panic table 1 P0 50%", []Level{pct(50, 0), pct(100, 0)},
			share{[]uint32{70, 30}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"panic table 1 P0 25%", []Level{pct(25, 0), pct(100, 0)},
			share{[]uint32{35, 65}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"panic table 1 P0 0%", []Level{pct(0, 0), pct(100, 0)},
			share{[]uint32{0, 100}, []uint32{0, 0}, []bool{false, false}, false, 100}},

		// Source: Envoy docs, "Panic threshold", second table (rows the
		// documented algorithm reproduces; see TestComputeLoadDocErrata).
		{"panic table 2 72/72", []Level{pct(72, 0), pct(72, 0)},
			share{[]uint32{100, 0}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"panic table 2 71/71", []Level{pct(71, 0), pct(71, 0)},
			share{[]uint32{99, 1}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"panic table 2 25/25 both in panic", []Level{pct(25, 0), pct(25, 0)},
			share{[]uint32{50, 50}, []uint32{0, 0}, []bool{true, true}, true, 70}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shareOf(ComputeLoad(tt.levels, LoadConfig{}))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ComputeLoad(%v) mismatch (-want +got):\n%s", tt.levels, diff)
			}
		})
	}
}

// TestComputeLoadDocErrata pins three rows of the second table of Envoy's
// "Panic threshold" page that contradict the algorithm the same docs
// describe (and Envoy's load_balancer_impl.cc, which we follow):
//
//   - 50%/60% is listed as 50%/50%; the priority-levels rule gives P=0
//     health 70, P=1 84, normalized total 100, so 70%/30%.
//   - 25%/100% is listed as 25%/75%; the "Priority levels" page lists the
//     same case as 35%/65%.
//   - 5%/65% is listed as 7%/93%; Envoy's distributeLoad gives 7 and 92
//     and adds the rounding remainder 1 to the first healthy level: 8%/92%.
func TestComputeLoadDocErrata(t *testing.T) {
	tests := []struct {
		name   string
		levels []Level
		want   share
	}{
		{"50/60", []Level{pct(50, 0), pct(60, 0)},
			share{[]uint32{70, 30}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"25/100", []Level{pct(25, 0), pct(100, 0)},
			share{[]uint32{35, 65}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"5/65", []Level{pct(5, 0), pct(65, 0)},
			share{[]uint32{8, 92}, []uint32{0, 0}, []bool{true, false}, false, 98}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shareOf(ComputeLoad(tt.levels, LoadConfig{}))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ComputeLoad(%v) mismatch (-want +got):\n%s", tt.levels, diff)
			}
		})
	}
}

func TestComputeLoadEdges(t *testing.T) {
	tests := []struct {
		name   string
		levels []Level
		cfg    LoadConfig
		want   share
	}{
		{"no levels", nil, LoadConfig{},
			share{nil, nil, nil, false, 0}},
		{"no hosts at all", []Level{{}, {}}, LoadConfig{},
			share{[]uint32{0, 0}, []uint32{0, 0}, []bool{false, false}, false, 0}},
		{"empty P0 skipped", []Level{{}, {Hosts: 3, Healthy: 3}}, LoadConfig{},
			share{[]uint32{0, 100}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"all unhealthy spreads by host count", []Level{{Hosts: 1}, {Hosts: 3}}, LoadConfig{},
			share{[]uint32{25, 75}, []uint32{0, 0}, []bool{true, true}, true, 0}},
		{"all unhealthy, empty P0 gets nothing", []Level{{}, {Hosts: 2}, {Hosts: 1}}, LoadConfig{},
			share{[]uint32{0, 67, 33}, []uint32{0, 0, 0}, []bool{true, true, true}, true, 0}},
		{"panic off, all unhealthy: first level with hosts", []Level{{}, {Hosts: 2}}, LoadConfig{PanicThreshold: -1},
			share{[]uint32{0, 100}, []uint32{0, 0}, []bool{false, false}, false, 0}},
		{"panic off, partial health", []Level{{Hosts: 4, Healthy: 1}, {Hosts: 4}}, LoadConfig{PanicThreshold: -1},
			share{[]uint32{100, 0}, []uint32{0, 0}, []bool{false, false}, false, 35}},
		{"factor 100: no overprovisioning", []Level{{Hosts: 4, Healthy: 3}, {Hosts: 4, Healthy: 4}}, LoadConfig{OverprovisioningFactor: 100},
			share{[]uint32{75, 25}, []uint32{0, 0}, []bool{false, false}, false, 100}},
		{"counts above hosts clamp", []Level{{Hosts: 2, Healthy: 5, Degraded: 5}}, LoadConfig{},
			share{[]uint32{100}, []uint32{0}, []bool{false}, false, 100}},
		{"two dead local, healthy fallbacks", []Level{{Hosts: 2}, {Hosts: 2, Healthy: 2}, {Hosts: 2, Healthy: 2}}, LoadConfig{},
			share{[]uint32{0, 100, 0}, []uint32{0, 0, 0}, []bool{false, false, false}, false, 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shareOf(ComputeLoad(tt.levels, tt.cfg))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ComputeLoad(%v, %+v) mismatch (-want +got):\n%s", tt.levels, tt.cfg, diff)
			}
		})
	}
}

func TestChoose(t *testing.T) {
	l := ComputeLoad([]Level{{Hosts: 100, Healthy: 25, Degraded: 65}}, LoadConfig{})
	// Healthy 35%, degraded 65%.
	type pick struct {
		Priority int
		Degraded bool
	}
	tests := []struct {
		name string
		r    uint32
		want pick
	}{
		{"first", 0, pick{0, false}},
		{"last healthy", 34, pick{0, false}},
		{"first degraded", 35, pick{0, true}},
		{"last", 99, pick{0, true}},
		{"wraps", 100, pick{0, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, d := l.Choose(tt.r)
			if diff := cmp.Diff(tt.want, pick{p, d}); diff != "" {
				t.Errorf("Choose(%d) mismatch (-want +got):\n%s", tt.r, diff)
			}
		})
	}
	var empty Load
	if p, _ := empty.Choose(3); p != -1 {
		t.Errorf("Choose on empty load = %d, want -1", p)
	}
}

func TestComputeLoadIntoReuses(t *testing.T) {
	levels := []Level{{Hosts: 3, Healthy: 1}, {Hosts: 3, Healthy: 3}}
	var l Load
	ComputeLoadInto(&l, levels, LoadConfig{})
	allocs := testing.AllocsPerRun(100, func() {
		ComputeLoadInto(&l, levels, LoadConfig{})
	})
	if allocs != 0 {
		t.Errorf("ComputeLoadInto allocated %v times per run, want 0", allocs)
	}
	if diff := cmp.Diff(shareOf(ComputeLoad(levels, LoadConfig{})), shareOf(l)); diff != "" {
		t.Errorf("ComputeLoadInto differs from ComputeLoad (-want +got):\n%s", diff)
	}
}

// FuzzComputeLoad checks the invariants of priority load over arbitrary
// host counts: shares sum to 100 whenever a host exists, empty levels get
// nothing, and equal inputs give equal outputs.
func FuzzComputeLoad(f *testing.F) {
	f.Add([]byte{10, 5, 0, 10, 10, 0}, int8(0), int8(0))
	f.Add([]byte{0, 0, 0, 4, 0, 0}, int8(0), int8(-1))
	f.Add([]byte{100, 25, 65}, int8(100), int8(100))
	f.Add([]byte{}, int8(0), int8(0))
	f.Add([]byte{2, 0, 0, 2, 0, 0, 2, 2, 0}, int8(127), int8(1))
	f.Fuzz(func(t *testing.T, raw []byte, of, panicThreshold int8) {
		var levels []Level
		for i := 0; i+2 < len(raw) && len(levels) < 32; i += 3 {
			levels = append(levels, Level{Hosts: int(raw[i]), Healthy: int(raw[i+1]), Degraded: int(raw[i+2])})
		}
		cfg := LoadConfig{OverprovisioningFactor: int(of), PanicThreshold: int(panicThreshold)}
		l := ComputeLoad(levels, cfg)
		again := ComputeLoad(levels, cfg)
		if diff := cmp.Diff(shareOf(l), shareOf(again)); diff != "" {
			t.Fatalf("not deterministic (-first +second):\n%s", diff)
		}
		hosts := 0
		var sum uint32
		for i, lv := range levels {
			hosts += lv.Hosts
			sum += l.Healthy[i] + l.Degraded[i]
			if lv.Hosts == 0 && l.Healthy[i]+l.Degraded[i] != 0 {
				t.Fatalf("empty level %d got load %d+%d: %+v", i, l.Healthy[i], l.Degraded[i], l)
			}
			if lv.Healthy <= 0 && l.Healthy[i] != 0 && !l.TotalPanic && l.Availability != 0 {
				t.Fatalf("level %d without healthy hosts got healthy load %d: %+v", i, l.Healthy[i], l)
			}
		}
		if hosts > 0 && sum != 100 {
			t.Fatalf("shares sum to %d, want 100: levels %v load %+v", sum, levels, l)
		}
		if hosts == 0 && sum != 0 {
			t.Fatalf("no hosts but shares sum to %d", sum)
		}
		if l.Availability > 100 {
			t.Fatalf("availability %d above 100", l.Availability)
		}
		if hosts > 0 {
			for r := uint32(0); r < 100; r++ {
				p, _ := l.Choose(r)
				if p < 0 || levels[p].Hosts == 0 {
					t.Fatalf("Choose(%d) = %d, an empty or missing level", r, p)
				}
			}
		}
	})
}

func BenchmarkComputeLoad(b *testing.B) {
	levels := make([]Level, 8)
	for i := range levels {
		levels[i] = Level{Hosts: 10, Healthy: 10 - i, Degraded: i / 2}
	}
	var l Load
	b.ReportAllocs()
	for b.Loop() {
		ComputeLoadInto(&l, levels, LoadConfig{})
	}
}
