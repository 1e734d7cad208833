package quota

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func d(id string, n int64) Demand { return Demand{ID: id, Requests: n} }
func s(id string, n int64) Share  { return Share{ID: id, Requests: n} }

func TestSplit(t *testing.T) {
	tests := []struct {
		name    string
		total   int64
		demands []Demand
		want    []Share
	}{
		{
			name:    "no demand splits equally",
			total:   600,
			demands: []Demand{d("a", 0), d("b", 0), d("c", 0)},
			want:    []Share{s("a", 200), s("b", 200), s("c", 200)},
		},
		{
			name:  "proportional above the floor",
			total: 600,
			// floor 50 each; 450 left split 3:1:0 = 337.5, 112.5, 0: the tie goes to "a"
			demands: []Demand{d("a", 300), d("b", 100), d("c", 0)},
			want:    []Share{s("a", 50+338), s("b", 50+112), s("c", 50)},
		},
		{
			name:    "demand shifts to the other cluster",
			total:   600,
			demands: []Demand{d("a", 0), d("b", 900)},
			want:    []Share{s("a", 75), s("b", 525)},
		},
		{
			name:    "one participant takes everything",
			total:   600,
			demands: []Demand{d("a", 5)},
			want:    []Share{s("a", 600)},
		},
		{
			name:  "rounding: remainders to the largest fractions, ties to the smaller ID",
			total: 10,
			// floor 1 each (10/(4*3) = 0, total >= n); 7 left, equal demand: 2 each + 1 to "a"
			demands: []Demand{d("c", 1), d("b", 1), d("a", 1)},
			want:    []Share{s("a", 4), s("b", 3), s("c", 3)},
		},
		{
			name:    "total smaller than participants: no floor, proportional",
			total:   2,
			demands: []Demand{d("a", 1), d("b", 1), d("c", 5)},
			want:    []Share{s("a", 0), s("b", 0), s("c", 2)},
		},
		{
			name:    "negative demand counts as zero, duplicate keeps the largest",
			total:   100,
			demands: []Demand{d("a", -5), d("b", 10), d("b", 30)},
			want:    []Share{s("a", 12), s("b", 88)},
		},
		{
			name:    "zero total",
			total:   0,
			demands: []Demand{d("a", 1)},
			want:    []Share{s("a", 0)},
		},
		{
			name:    "huge demands are clamped",
			total:   1 << 62,
			demands: []Demand{d("a", 1<<62), d("b", 1<<62)},
			want:    []Share{s("a", 1<<61), s("b", 1<<61)},
		},
		{name: "no participants", total: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.total, tt.demands)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Split(%d) (-want +got):\n%s", tt.total, diff)
			}
		})
	}
}

// TestSplitFloor: no participant starves, whatever the others ask.
func TestSplitFloor(t *testing.T) {
	for n := 1; n <= 10; n++ {
		demands := []Demand{d("idle", 0)}
		for i := 1; i < n; i++ {
			demands = append(demands, d(string(rune('a'+i)), 1_000_000))
		}
		got, _ := Of(Split(600, demands), "idle")
		if want := Floor(600, n); got < want || want < 1 {
			t.Errorf("%d participants: idle share %d, want >= floor %d >= 1", n, got, want)
		}
	}
}

// TestSplitLeave: a participant that leaves (its cluster fenced) gives its
// share to the others.
func TestSplitLeave(t *testing.T) {
	all := []Demand{d("a", 100), d("b", 100), d("c", 100)}
	before := Split(600, all)
	after := Split(600, all[:2])
	if _, ok := Of(after, "c"); ok {
		t.Fatalf("c still has a share after leaving: %v", after)
	}
	for _, id := range []string{"a", "b"} {
		b, _ := Of(before, id)
		a, _ := Of(after, id)
		if a <= b {
			t.Errorf("%s: share %d after c left, want more than %d", id, a, b)
		}
	}
	if got := Sum(after); got != 600 {
		t.Errorf("sum after c left = %d, want 600", got)
	}
}

// TestSplitProperties checks on random inputs that the shares add up to
// exactly the total, respect the floor, and do not depend on the order of
// the demands.
func TestSplitProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 2))
	for range 2000 {
		n := 1 + r.IntN(12)
		total := r.Int64N(5000)
		var demands []Demand
		for i := range n {
			demands = append(demands, d(string(rune('a'+i)), r.Int64N(3)*r.Int64N(10_000)))
		}
		got := Split(total, demands)
		if sum := Sum(got); sum != total {
			t.Fatalf("Split(%d, %v) sums to %d", total, demands, sum)
		}
		floor := Floor(total, n)
		for _, sh := range got {
			if sh.Requests < floor {
				t.Fatalf("Split(%d, %v): %s got %d, under the floor %d", total, demands, sh.ID, sh.Requests, floor)
			}
		}
		shuffled := append([]Demand(nil), demands...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if diff := cmp.Diff(got, Split(total, shuffled)); diff != "" {
			t.Fatalf("Split depends on input order (-first +shuffled):\n%s", diff)
		}
	}
}

// TestSplitTwoLevels: a cluster's share split among its sidecars by their
// demand never exceeds the cluster's share, so the sidecars of the whole
// clusterset never hold more than the quota.
func TestSplitTwoLevels(t *testing.T) {
	clusters := Split(1000, []Demand{d("east", 700), d("west", 300), d("north", 1)})
	var total int64
	for _, c := range clusters {
		sidecars := Split(c.Requests, []Demand{d(c.ID+"-1", 10), d(c.ID+"-2", 20), d(c.ID+"-3", 0)})
		if got := Sum(sidecars); got != c.Requests {
			t.Errorf("%s: sidecar shares sum to %d, cluster share %d", c.ID, got, c.Requests)
		}
		total += Sum(sidecars)
	}
	if total != 1000 {
		t.Errorf("all sidecars hold %d, quota 1000", total)
	}
}

func FuzzSplit(f *testing.F) {
	f.Add(int64(600), int64(10), int64(0), int64(-3), "a", "b", "c")
	f.Add(int64(1<<62), int64(1<<62), int64(1<<62), int64(1), "a", "a", "")
	f.Fuzz(func(t *testing.T, total, x, y, z int64, a, b, c string) {
		demands := []Demand{d(a, x), d(b, y), d(c, z)}
		got := Split(total, demands)
		want := max(total, 0)
		if sum := Sum(got); sum != want {
			t.Fatalf("Split(%d, %v) sums to %d, want %d", total, demands, sum, want)
		}
		for _, sh := range got {
			if sh.Requests < 0 {
				t.Fatalf("Split(%d, %v): negative share %v", total, demands, sh)
			}
		}
	})
}
