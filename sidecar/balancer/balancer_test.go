package balancer

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/topology"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a settable clock for tests.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newBalancer(t testing.TB, cfg Config, eps []Endpoint) (*Balancer, *fakeClock) {
	t.Helper()
	clock := newClock()
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	if cfg.Name == "" {
		cfg.Name = "demo/echo:8080"
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Update(eps); err != nil {
		t.Fatalf("Update: %v", err)
	}
	return b, clock
}

// eps builds endpoints: for each priority, n hosts of which healthy are
// healthy. Addresses are 127.0.P.I:8080.
func eps(levels ...[2]int) []Endpoint {
	var out []Endpoint
	for p, lv := range levels {
		for i := range lv[0] {
			out = append(out, Endpoint{
				Address:  fmt.Sprintf("127.0.%d.%d:8080", p, i+1),
				Cluster:  fmt.Sprintf("c%d", p),
				Priority: p,
				Healthy:  i < lv[1],
			})
		}
	}
	return out
}

func pickOrFatal(t testing.TB, b *Balancer, exclude ...*Host) *Host {
	t.Helper()
	h, err := b.Pick(exclude...)
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	return h
}

func TestDistributionMatchesTopologyShares(t *testing.T) {
	tests := []struct {
		name   string
		levels [][2]int // hosts, healthy per priority
	}{
		{"all healthy", [][2]int{{4, 4}, {4, 4}}},
		{"P0 half healthy", [][2]int{{4, 2}, {4, 4}}},
		{"P0 quarter, P1 half", [][2]int{{4, 1}, {4, 2}, {4, 4}}},
		{"P0 dead", [][2]int{{2, 0}, {2, 2}, {2, 2}}},
		{"total panic", [][2]int{{2, 0}, {6, 1}}},
	}
	const picks = 20000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := newBalancer(t, Config{}, eps(tt.levels...))
			var counts topologyLevels
			for _, lv := range tt.levels {
				counts = append(counts, topology.Level{Hosts: lv[0], Healthy: lv[1]})
			}
			load := topology.ComputeLoad(counts, topology.LoadConfig{})
			got := make([]int, len(tt.levels))
			for range picks {
				h := pickOrFatal(t, b)
				got[h.Endpoint().Priority]++
			}
			for p := range tt.levels {
				want := float64(load.Healthy[p]) / 100
				share := float64(got[p]) / picks
				if math.Abs(share-want) > 0.02 {
					t.Errorf("priority %d got %.3f of picks, want %.2f (load %v, counts %v)", p, share, want, load.Healthy, got)
				}
			}
		})
	}
}

type topologyLevels = []topology.Level

func TestLeastRequestPrefersLessLoaded(t *testing.T) {
	b, _ := newBalancer(t, Config{Policy: LeastRequest}, eps([2]int{2, 2}))
	busy := b.Snapshot().Hosts[0].Endpoint.Address
	var busyHost *Host
	for busyHost == nil {
		if h := pickOrFatal(t, b); h.Address() == busy {
			busyHost = h
		}
	}
	for range 5 {
		busyHost.Begin()
	}
	for i := range 200 {
		// With two hosts both are always the candidates.
		if h := pickOrFatal(t, b); h == busyHost {
			t.Fatalf("pick %d chose the host with 5 outstanding requests", i)
		}
	}
	for range 5 {
		busyHost.End(Result{Kind: OK, Latency: time.Millisecond})
	}
	if got := b.Snapshot().ActiveRequests; got != 0 {
		t.Errorf("active requests after End = %d, want 0", got)
	}
}

func TestLeastRequestSpreadsLoad(t *testing.T) {
	// With outstanding requests held, P2C keeps hosts within a small
	// spread of each other.
	b, _ := newBalancer(t, Config{Policy: LeastRequest}, eps([2]int{8, 8}))
	for range 800 {
		pickOrFatal(t, b).Begin()
	}
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, h := range b.Snapshot().Hosts {
		lo, hi = min(lo, h.Active), max(hi, h.Active)
	}
	if hi-lo > 10 {
		t.Errorf("outstanding requests range from %d to %d, want a spread of at most 10", lo, hi)
	}
}

func TestPeakEWMAPrefersFaster(t *testing.T) {
	b, clock := newBalancer(t, Config{Policy: PeakEWMA}, eps([2]int{2, 2}))
	hosts := b.state.Load().hosts
	slow, fast := hosts[0], hosts[1]
	for range 5 {
		slow.Begin()
		slow.End(Result{Kind: OK, Latency: 100 * time.Millisecond})
		fast.Begin()
		fast.End(Result{Kind: OK, Latency: 5 * time.Millisecond})
		clock.Advance(100 * time.Millisecond)
	}
	for i := range 200 {
		if h := pickOrFatal(t, b); h != fast {
			t.Fatalf("pick %d chose the slow host", i)
		}
	}
	// The peak reacts at once: one slow answer from the fast host makes
	// it the slower one.
	fast.Begin()
	fast.End(Result{Kind: OK, Latency: time.Second})
	if h := pickOrFatal(t, b); h != slow {
		t.Errorf("after a 1s answer from the fast host, picked %s, want the other", h.Address())
	}
}

func TestEjectionGrowsAndEnds(t *testing.T) {
	cfg := Config{Outlier: OutlierConfig{BaseEjectionTime: 10 * time.Second, MaxEjectionTime: 25 * time.Second, Interval: time.Hour}}
	b, clock := newBalancer(t, cfg, eps([2]int{3, 3}))
	victim := b.state.Load().hosts[0]
	fail := func() {
		for range 3 {
			victim.Begin()
			victim.End(Result{Kind: ConnectFailure})
		}
	}
	pickedVictim := func() bool {
		for range 100 {
			if pickOrFatal(t, b) == victim {
				return true
			}
		}
		return false
	}

	// Two failures do not eject; a success resets the count.
	for range 2 {
		victim.Begin()
		victim.End(Result{Kind: ConnectFailure})
	}
	victim.Begin()
	victim.End(Result{Kind: OK})
	for range 2 {
		victim.Begin()
		victim.End(Result{Kind: ConnectFailure})
	}
	if victim.ejected(clock.Now().UnixNano()) {
		t.Fatal("ejected after 2 consecutive failures, want 3")
	}

	wantDurations := []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second}
	for i, want := range wantDurations {
		fail()
		st := b.Snapshot().Hosts[0]
		if st.Available || st.Ejections != i+1 {
			t.Fatalf("ejection %d: available %v ejections %d, want ejected with %d", i+1, st.Available, st.Ejections, i+1)
		}
		if got := st.EjectedUntil.Sub(clock.Now()); got != want {
			t.Errorf("ejection %d lasts %v, want %v", i+1, got, want)
		}
		if pickedVictim() {
			t.Fatalf("ejection %d: ejected host was picked", i+1)
		}
		clock.Advance(want - time.Nanosecond)
		if pickedVictim() {
			t.Fatalf("ejection %d: picked 1ns before the ejection ends", i+1)
		}
		clock.Advance(time.Nanosecond)
		if !pickedVictim() {
			t.Fatalf("ejection %d: host not picked after its ejection ended", i+1)
		}
	}
	want := "3 consecutive connect failures"
	fail()
	if got := b.Snapshot().Hosts[0].Why; !contains(got, want) {
		t.Errorf("Why = %q, want it to mention %q", got, want)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestEjectionMultiplierDecays(t *testing.T) {
	cfg := Config{Outlier: OutlierConfig{BaseEjectionTime: 10 * time.Second, Interval: 10 * time.Second}}
	b, clock := newBalancer(t, cfg, eps([2]int{3, 3}))
	h := b.state.Load().hosts[0]
	fail := func() {
		for range 3 {
			h.End(Result{Kind: ConnectFailure})
		}
	}
	fail() // 1st: 10s
	clock.Advance(10 * time.Second)
	fail() // 2nd right away: 20s
	if got := b.Snapshot().Hosts[0].Ejections; got != 2 {
		t.Fatalf("ejections = %d, want 2", got)
	}
	clock.Advance(20*time.Second + 25*time.Second) // 25s in: multiplier 2 -> 0
	fail()
	st := b.Snapshot().Hosts[0]
	if st.Ejections != 1 || st.EjectedUntil.Sub(clock.Now()) != 10*time.Second {
		t.Errorf("after 25s in, ejections %d lasting %v, want 1 lasting 10s", st.Ejections, st.EjectedUntil.Sub(clock.Now()))
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name        string
		hosts       int
		failing     int
		kind        Kind
		maxPercent  int
		wantEjected int
	}{
		{"5xx capped at 10% but one always", 6, 3, Status5xx, 0, 1},
		{"5xx cap 10% of 20", 20, 5, Status5xx, 0, 2},
		{"5xx cap 50%", 6, 4, Status5xx, 50, 3},
		{"connect failures not capped by default", 6, 4, ConnectFailure, 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Outlier: OutlierConfig{MaxEjectionPercent: tt.maxPercent}}
			b, _ := newBalancer(t, cfg, eps([2]int{tt.hosts, tt.hosts}))
			for _, h := range b.state.Load().hosts[:tt.failing] {
				for range 5 {
					h.Begin()
					h.End(Result{Kind: tt.kind, Latency: time.Millisecond})
				}
			}
			got := 0
			for _, h := range b.Snapshot().Hosts {
				if !h.Available {
					got++
				}
			}
			if got != tt.wantEjected {
				t.Errorf("%d hosts ejected, want %d", got, tt.wantEjected)
			}
		})
	}
}

// TestLocalDeathFailsOver is the scenario of the design: two local, two
// same-region and two remote endpoints; both local ones die. After three
// failed connects each, all traffic moves to the same-region priority with
// no Update from the control plane.
func TestLocalDeathFailsOver(t *testing.T) {
	b, clock := newBalancer(t, Config{}, eps([2]int{2, 2}, [2]int{2, 2}, [2]int{2, 2}))
	dead := map[*Host]bool{}
	for _, h := range b.state.Load().levels[0].hosts {
		dead[h] = true
	}
	failed := 0
	for i := range 1000 {
		h := pickOrFatal(t, b)
		h.Begin()
		if dead[h] {
			failed++
			// A retry goes elsewhere.
			if r := pickOrFatal(t, b, h); r == h {
				t.Fatalf("request %d: retry picked the failed host again", i)
			}
			h.End(Result{Kind: ConnectFailure})
			continue
		}
		h.End(Result{Kind: OK, Latency: time.Millisecond})
	}
	if failed != 6 {
		t.Errorf("%d requests hit dead hosts, want 6 (3 connect failures per host before ejection)", failed)
	}
	got := map[int]int{}
	for range 1000 {
		got[pickOrFatal(t, b).Endpoint().Priority]++
	}
	if diff := cmp.Diff(map[int]int{1: 1000}, got); diff != "" {
		t.Errorf("picks per priority after the local hosts died (-want +got):\n%s", diff)
	}
	snap := b.Snapshot()
	wantLevels := []LevelState{
		{Priority: 0, Hosts: 2, Available: 0, Percent: 0},
		{Priority: 1, Hosts: 2, Available: 2, Percent: 100},
		{Priority: 2, Hosts: 2, Available: 2, Percent: 0},
	}
	if diff := cmp.Diff(wantLevels, snap.Levels); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
	// After the ejection time the local hosts get traffic back.
	clock.Advance(30 * time.Second)
	if got := pickOrFatal(t, b).Endpoint().Priority; got != 0 {
		t.Errorf("after the ejection ended picked priority %d, want 0", got)
	}
}

func TestRetryExclusion(t *testing.T) {
	b, _ := newBalancer(t, Config{}, eps([2]int{3, 3}, [2]int{1, 1}))
	for range 100 {
		first := pickOrFatal(t, b)
		second := pickOrFatal(t, b, first)
		third := pickOrFatal(t, b, first, second)
		if second == first || third == first || third == second {
			t.Fatalf("retries repeated a host: %s %s %s", first.Address(), second.Address(), third.Address())
		}
	}
	// Excluding all of P0 falls over to P1.
	p0 := b.state.Load().levels[0].hosts
	if h := pickOrFatal(t, b, p0...); h.Endpoint().Priority != 1 {
		t.Errorf("with all of P0 excluded picked priority %d, want 1", h.Endpoint().Priority)
	}
	// With one host only, a retry goes back to it.
	single, _ := newBalancer(t, Config{}, eps([2]int{1, 1}))
	h := pickOrFatal(t, single)
	if again := pickOrFatal(t, single, h); again != h {
		t.Errorf("single host: retry picked %v, want the same host", again)
	}
}

func TestHealthFromControlPlane(t *testing.T) {
	t.Run("unhealthy hosts get no traffic", func(t *testing.T) {
		b, _ := newBalancer(t, Config{}, eps([2]int{4, 3}))
		for range 500 {
			if h := pickOrFatal(t, b); !h.Endpoint().Healthy {
				t.Fatalf("picked unhealthy %s", h.Address())
			}
		}
	})
	t.Run("all unhealthy: panic uses them all", func(t *testing.T) {
		b, _ := newBalancer(t, Config{}, eps([2]int{2, 0}))
		pickOrFatal(t, b)
		if !b.Snapshot().Levels[0].Panic {
			t.Error("level not in panic")
		}
	})
	t.Run("all unhealthy, panic off: no healthy upstream", func(t *testing.T) {
		b, _ := newBalancer(t, Config{PanicThreshold: -1}, eps([2]int{2, 0}))
		if _, err := b.Pick(); !errors.Is(err, ErrNoHealthy) {
			t.Errorf("Pick error = %v, want ErrNoHealthy", err)
		}
	})
	t.Run("no hosts", func(t *testing.T) {
		b, _ := newBalancer(t, Config{}, nil)
		if _, err := b.Pick(); !errors.Is(err, ErrNoHosts) || !errors.Is(err, ErrNoHealthy) {
			t.Errorf("Pick error = %v, want ErrNoHosts wrapping ErrNoHealthy", err)
		}
	})
	t.Run("fenced peer: priority marked unhealthy fails over", func(t *testing.T) {
		e := eps([2]int{2, 2}, [2]int{2, 2})
		b, _ := newBalancer(t, Config{}, e)
		e[0].Healthy, e[0].HealthReason = false, "peer east-2 fenced"
		e[1].Healthy, e[1].HealthReason = false, "peer east-2 fenced"
		if err := b.Update(e); err != nil {
			t.Fatal(err)
		}
		for range 200 {
			if p := pickOrFatal(t, b).Endpoint().Priority; p != 1 {
				t.Fatalf("picked priority %d, want 1", p)
			}
		}
		if got, want := b.Snapshot().Hosts[0].Why, "unhealthy from control plane: peer east-2 fenced"; got != want {
			t.Errorf("Why = %q, want %q", got, want)
		}
	})
}

func TestUpdateKeepsHostsAndRefusesBadInput(t *testing.T) {
	e := eps([2]int{2, 2})
	b, _ := newBalancer(t, Config{}, e)
	h := b.state.Load().hosts[0]
	for range 3 {
		h.End(Result{Kind: ConnectFailure})
	}
	// Same address and SNI, new priority: same host, still ejected.
	e[0].Priority = 1
	if err := b.Update(e); err != nil {
		t.Fatal(err)
	}
	if b.state.Load().levels[1].hosts[0] != h {
		t.Fatal("host not reused across Update")
	}
	if st := b.Snapshot().Hosts[0]; st.Available || st.Ejections != 1 || st.Level != 1 {
		t.Errorf("after Update host state %+v, want ejected once at level 1", st)
	}

	tests := []struct {
		name string
		eps  []Endpoint
		want string
	}{
		{"no address", []Endpoint{{Healthy: true}}, "bad endpoints: endpoint 0 has no address"},
		{"negative priority", []Endpoint{{Address: "a:1", Priority: -1}}, "bad endpoints: endpoint 0 (a:1) has negative priority -1"},
		{"duplicate", []Endpoint{{Address: "a:1", SNI: "s"}, {Address: "a:1", SNI: "s"}}, `bad endpoints: endpoints 0 and 1 are both a:1 sni "s"`},
	}
	before := b.Snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.Update(tt.eps)
			if err == nil || !errors.Is(err, ErrBadEndpoints) {
				t.Fatalf("Update error = %v, want ErrBadEndpoints", err)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, b.Snapshot()); diff != "" {
				t.Errorf("state changed by a refused Update (-before +after):\n%s", diff)
			}
		})
	}
	// Same address through a different SNI is another host.
	if err := b.Update([]Endpoint{{Address: "gw:15443", SNI: "8080.a.ns.svc.clusterset.local", Healthy: true}, {Address: "gw:15443", SNI: "8080.b.ns.svc.clusterset.local", Healthy: true}}); err != nil {
		t.Errorf("two SNIs through one gateway refused: %v", err)
	}
}

func TestRetryBudget(t *testing.T) {
	b, _ := newBalancer(t, Config{}, eps([2]int{2, 2}))
	h := pickOrFatal(t, b)
	for i := range 3 {
		if !b.TryRetry() {
			t.Fatalf("retry %d refused, want min concurrency 3 allowed", i)
		}
	}
	if b.TryRetry() {
		t.Fatal("4th concurrent retry allowed with no active requests")
	}
	for range 30 {
		h.Begin()
	}
	// 20% of 30 active requests is 6.
	allowed := 0
	for b.TryRetry() {
		allowed++
	}
	if allowed != 3 {
		t.Errorf("allowed %d more retries with 30 active, want 3 (6 total)", allowed)
	}
	for range 6 {
		b.RetryDone()
	}
	for range 30 {
		h.End(Result{Kind: Canceled})
	}
	if s := b.Snapshot(); s.ActiveRetries != 0 || s.ActiveRequests != 0 {
		t.Errorf("after done: %d retries, %d requests, want 0", s.ActiveRetries, s.ActiveRequests)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero is fine", Config{}, ""},
		{"unknown policy", Config{Policy: 7}, "bad balancer config: unknown policy 7"},
		{"negative factor", Config{OverprovisioningFactor: -1}, "bad balancer config: overprovisioning factor -1 is negative"},
		{"panic above 100", Config{PanicThreshold: 101}, "bad balancer config: panic threshold 101% is above 100"},
		{"max below base", Config{Outlier: OutlierConfig{BaseEjectionTime: time.Minute, MaxEjectionTime: time.Second}}, "bad balancer config: max ejection time 1s is below base ejection time 1m0s"},
		{"percent above 100", Config{Outlier: OutlierConfig{MaxEjectionPercent: 200}}, "bad balancer config: max ejection percent 200 is outside 0..100"},
		{"negative budget", Config{RetryBudget: RetryBudgetConfig{BudgetPercent: -1}}, "bad balancer config: negative retry budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			got := ""
			if err != nil {
				got = err.Error()
				if !errors.Is(err, ErrBadConfig) {
					t.Errorf("error %v does not wrap ErrBadConfig", err)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("New error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPickAllocatesNothing(t *testing.T) {
	for _, policy := range []Policy{LeastRequest, PeakEWMA} {
		t.Run(policy.String(), func(t *testing.T) {
			b, _ := newBalancer(t, Config{Policy: policy}, eps([2]int{10, 5}, [2]int{10, 10}))
			prev := pickOrFatal(t, b)
			allocs := testing.AllocsPerRun(1000, func() {
				h, err := b.Pick()
				if err != nil {
					panic(err)
				}
				h.Begin()
				h.End(Result{Kind: OK, Latency: time.Millisecond})
				r, err := b.Pick(h, prev)
				if err != nil {
					panic(err)
				}
				r.Begin()
				r.End(Result{Kind: Status5xx, Latency: 2 * time.Millisecond})
				r.Begin()
				r.End(Result{Kind: OK, Latency: time.Millisecond})
				if b.TryRetry() {
					b.RetryDone()
				}
			})
			if allocs != 0 {
				t.Errorf("Pick+Begin+End allocated %v times per run, want 0", allocs)
			}
		})
	}
}

// TestConcurrentPickAndUpdate runs pickers against Updates, for -race.
func TestConcurrentPickAndUpdate(t *testing.T) {
	b, clock := newBalancer(t, Config{Outlier: OutlierConfig{ConsecutiveConnectFailures: 1, BaseEjectionTime: time.Millisecond}}, eps([2]int{4, 4}, [2]int{4, 4}))
	var wg sync.WaitGroup
	var stop atomic.Bool
	var picks atomic.Int64
	for g := range 4 {
		wg.Go(func() {
			for i := 0; i < 20000 && !stop.Load(); i++ {
				h, err := b.Pick()
				if err != nil {
					t.Errorf("Pick: %v", err)
					return
				}
				h.Begin()
				kind := OK
				if (i+g)%17 == 0 {
					kind = ConnectFailure
				}
				h.End(Result{Kind: kind, Latency: time.Duration(i%7+1) * time.Millisecond})
				picks.Add(1)
			}
		})
	}
	for i := range 200 {
		e := eps([2]int{4, 4 - i%3}, [2]int{4 + i%2, 4})
		if err := b.Update(e); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Millisecond)
		_ = b.Snapshot()
	}
	stop.Store(true)
	wg.Wait()
	if picks.Load() == 0 {
		t.Fatal("no picks made")
	}
	if got := b.Snapshot().ActiveRequests; got != 0 {
		t.Errorf("active requests after all ended = %d, want 0", got)
	}
}

func benchmarkPick(b *testing.B, n int, policy Policy) {
	bal, err := New(Config{Name: "bench", Policy: policy})
	if err != nil {
		b.Fatal(err)
	}
	if err := bal.Update(eps([2]int{n / 2, n / 2}, [2]int{n - n/2, n - n/2})); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h, err := bal.Pick()
			if err != nil {
				b.Fatal(err)
			}
			h.Begin()
			h.End(Result{Kind: OK, Latency: time.Millisecond})
		}
	})
}

func BenchmarkPick(b *testing.B) {
	for _, policy := range []Policy{LeastRequest, PeakEWMA} {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", policy, n), func(b *testing.B) { benchmarkPick(b, n, policy) })
		}
	}
}

// FuzzUpdate feeds arbitrary endpoint lists (as the xDS client would pass
// them on) and checks that a refused list changes nothing and an accepted
// one serves picks only from its own hosts, preferring available ones.
func FuzzUpdate(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 0, 1, 2, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0})
	f.Add([]byte{255, 3, 1, 7, 2, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, _ := newBalancer(t, Config{}, eps([2]int{1, 1}))
		var list []Endpoint
		for i := 0; i+2 < len(raw) && len(list) < 64; i += 3 {
			e := Endpoint{Address: fmt.Sprintf("127.0.0.%d:80", raw[i]%8), Priority: int(raw[i+1]%4) - 1, Healthy: raw[i+2]%2 == 1}
			if raw[i]%8 == 7 {
				e.Address = ""
			}
			if raw[i+2]&2 != 0 {
				e.SNI = "8080.echo.demo.svc.clusterset.local"
			}
			list = append(list, e)
		}
		before := b.Snapshot()
		if err := b.Update(list); err != nil {
			if !errors.Is(err, ErrBadEndpoints) {
				t.Fatalf("Update error %v does not wrap ErrBadEndpoints", err)
			}
			if diff := cmp.Diff(before, b.Snapshot()); diff != "" {
				t.Fatalf("refused Update changed state (-before +after):\n%s", diff)
			}
			return
		}
		for range 20 {
			h, err := b.Pick()
			if len(list) == 0 {
				if !errors.Is(err, ErrNoHosts) {
					t.Fatalf("Pick on no hosts: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pick: %v", err)
			}
			found := false
			for _, e := range list {
				if e == h.Endpoint() {
					found = true
				}
			}
			if !found {
				t.Fatalf("picked %+v, not in the list", h.Endpoint())
			}
			if !h.Endpoint().Healthy {
				// An unhealthy host serves only from a level in panic.
				panicAny := false
				for _, lv := range b.Snapshot().Levels {
					panicAny = panicAny || lv.Panic
				}
				if !panicAny {
					t.Fatalf("picked unhealthy %+v with no level in panic", h.Endpoint())
				}
			}
		}
	})
}
