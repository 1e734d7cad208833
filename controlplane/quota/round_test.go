package quota

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var perMinute = Def{ID: "demo/limits/shared", Requests: 600, Interval: time.Minute}

func rec(demand, share int64) Record {
	return Record{Requests: 600, Interval: time.Minute, Rate: Rate{Admitted: demand}, Share: share}
}

// settle runs rounds until the state no longer changes.
func settle(t *testing.T, in Input, st State) (Result, State) {
	t.Helper()
	var res Result
	for i := range 10 {
		in.Now = in.Now.Add(time.Duration(i) * in.Hold)
		res = Run(in, st)
		if cmp.Equal(res.State, st) {
			return res, st
		}
		st = res.State
	}
	return res, st
}

func TestRunHoldsRaisesAndCutsAtOnce(t *testing.T) {
	in := Input{Def: perMinute, Local: "east", LocalRate: Rate{Admitted: 100}, Now: t0, Hold: 2 * time.Second,
		Peers: []Peer{{Cluster: "west", Record: rec(100, 300)}}}
	res := Run(in, State{})
	if res.Share != 0 {
		t.Fatalf("first round: share %d, want 0 until the hold passes", res.Share)
	}
	st := res.State
	in.Now = t0.Add(2 * time.Second)
	res = Run(in, st)
	if res.Share != 300 {
		t.Fatalf("after the hold: share %d, want 300 (%v)", res.Share, res.Clusters)
	}
	st = res.State
	// West's demand grows: east's share is cut in the same round.
	in.Peers[0].Record = rec(500, 300)
	in.Now = in.Now.Add(2 * time.Second)
	res = Run(in, st)
	if want := int64(75 + 450*100/600); res.Share != want {
		t.Errorf("after west's demand grew: share %d, want %d at once", res.Share, want)
	}
	st = res.State
	// Demand moves back to east: the raise waits for the hold.
	in.Peers[0].Record = rec(0, 0)
	in.LocalRate = Rate{Admitted: 900}
	st.Published.Rate = in.LocalRate // as published last round
	in.Now = in.Now.Add(time.Second)
	cut := res.Share
	res = Run(in, st)
	if res.Share != cut {
		t.Errorf("raise applied before the hold: share %d, want %d", res.Share, cut)
	}
	in.Now = in.Now.Add(2 * time.Second)
	res = Run(in, res.State)
	if res.Share != 525 {
		t.Errorf("raise after the hold: share %d, want 525", res.Share)
	}
}

func TestRunFencedPeerLeavesTheSplit(t *testing.T) {
	in := Input{Def: perMinute, Local: "east", LocalRate: Rate{Admitted: 100}, Now: t0, Hold: time.Second,
		Peers: []Peer{{Cluster: "west", Record: rec(100, 200)}, {Cluster: "north", Record: rec(100, 200)}}}
	res, st := settle(t, in, State{})
	if res.Share != 200 {
		t.Fatalf("three equal clusters: share %d, want 200", res.Share)
	}
	in.Peers[1].Fenced = true
	res, _ = settle(t, in, st)
	if res.Minority {
		t.Fatalf("two of three live is a majority")
	}
	if res.Share != 300 {
		t.Errorf("north fenced: share %d, want 300", res.Share)
	}
	if _, ok := Of(res.Clusters, "north"); ok {
		t.Errorf("fenced north still in the split %v", res.Clusters)
	}
}

func TestRunMinorityKeepsWhatItHad(t *testing.T) {
	in := Input{Def: perMinute, Local: "east", LocalRate: Rate{Admitted: 100}, Now: t0, Hold: time.Second,
		Peers: []Peer{{Cluster: "west", Record: rec(300, 400)}, {Cluster: "north", Record: rec(0, 75)}}}
	res, st := settle(t, in, State{})
	had := res.Share
	in.Peers[0].Fenced, in.Peers[1].Fenced = true, true
	res, _ = settle(t, in, st)
	if !res.Minority {
		t.Fatalf("one of three live: want Minority")
	}
	if res.Share != had {
		t.Errorf("partitioned minority: share %d, want what it had, %d", res.Share, had)
	}
}

func TestRunNodesSplitTheClusterShare(t *testing.T) {
	in := Input{Def: perMinute, Local: "east", LocalRate: Rate{Admitted: 100}, Now: t0,
		Nodes: map[string]Rate{"a": {Admitted: 30}, "b": {Refused: 90}, "c": {}}}
	res := Run(in, State{})
	if res.Share != 600 {
		t.Fatalf("alone with no hold: share %d, want 600", res.Share)
	}
	if got := Sum(res.Nodes); got != res.Share {
		t.Errorf("nodes hold %d, cluster share %d", got, res.Share)
	}
	want := []Share{{"a", 50 + 113}, {"b", 50 + 337}, {"c", 50}}
	if diff := cmp.Diff(want, res.Nodes); diff != "" {
		t.Errorf("node split (-want +got):\n%s", diff)
	}
}

// TestRunSameSplitEverywhere: every control plane computes the same split
// from the same published records, whichever cluster it is.
func TestRunSameSplitEverywhere(t *testing.T) {
	pub := map[string]Record{"east": rec(120, 0), "west": rec(30, 0), "north": rec(700, 0)}
	var first []Share
	for local := range pub {
		in := Input{Def: perMinute, Local: local, Now: t0}
		for c, r := range pub {
			if c != local {
				in.Peers = append(in.Peers, Peer{Cluster: c, Record: r})
			}
		}
		res := Run(in, State{Started: true, Published: pub[local]})
		if first == nil {
			first = res.Clusters
			continue
		}
		if diff := cmp.Diff(first, res.Clusters); diff != "" {
			t.Errorf("%s splits differently (-first +%s):\n%s", local, local, diff)
		}
	}
	if Sum(first) != 600 {
		t.Errorf("split sums to %d", Sum(first))
	}
}

func TestRunMismatchTakesTheSmallestDefinition(t *testing.T) {
	in := Input{Def: perMinute, Local: "east", Now: t0,
		Peers: []Peer{{Cluster: "west", Record: Record{Requests: 5, Interval: time.Second}}}} // 300 a minute
	res := Run(in, State{})
	if res.Total != 300 || Sum(res.Clusters) != 300 {
		t.Errorf("total %d, split %v; want 300", res.Total, res.Clusters)
	}
	if diff := cmp.Diff([]string{"west"}, res.Mismatch); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestTrackerRates(t *testing.T) {
	tr := NewTracker(4 * time.Second)
	for i := range 4 {
		tr.Add(Report{Node: "a", Quota: "q", Admitted: 20, Refused: 10, Interval: 2 * time.Second, At: t0.Add(time.Duration(2*i) * time.Second)})
	}
	tr.Add(Report{Node: "b", Quota: "q", Admitted: 1, Interval: 2 * time.Second, At: t0})
	got := tr.Nodes("q", time.Minute, t0.Add(6*time.Second), 5*time.Second)
	// a: the reports of the last 4s (at 2s, 4s, 6s): 60 admitted, 30 refused in 6s.
	want := map[string]Rate{"a": {Admitted: 600, Refused: 300}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rates (-want +got):\n%s", diff)
	}
	if a, r := tr.Totals("q"); a != 81 || r != 40 {
		t.Errorf("totals %d %d, want 81 40", a, r)
	}
	tr.Forget("a")
	if got := tr.Nodes("q", time.Minute, t0.Add(6*time.Second), 5*time.Second); len(got) != 0 {
		t.Errorf("after Forget: %v", got)
	}
}

func TestQuantize(t *testing.T) {
	for _, tt := range []struct{ in, want int64 }{
		{0, 0}, {7, 7}, {99, 99}, {100, 100}, {104, 100}, {105, 110}, {1234, 1200}, {1250, 1300}, {987654, 990000}, {-3, -3},
	} {
		if got := Quantize(tt.in); got != tt.want {
			t.Errorf("Quantize(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
