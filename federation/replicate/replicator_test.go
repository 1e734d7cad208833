package replicate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/addrlock"
	"github.com/fedmesh/fedmesh/internal/faultproxy"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
)

// history records the peer's export set after every write, by revision,
// so that any snapshot can be checked against the truth at its revision.
type history struct {
	revs []int64
	sets [][]catalog.Export
}

func (h *history) write(t *testing.T, s *store.Store, set []catalog.Export) int64 {
	t.Helper()
	rev, err := s.SetExports(testCtx(t), set)
	if err != nil {
		t.Fatalf("SetExports: %v", err)
	}
	h.revs = append(h.revs, rev)
	sorted := slices.Clone(set)
	slices.SortFunc(sorted, func(a, b catalog.Export) int {
		return strings.Compare(a.Service.Key().String(), b.Service.Key().String())
	})
	h.sets = append(h.sets, sorted)
	return rev
}

// at returns the set at revision rev: that of the last write at or before it.
func (h *history) at(rev int64) ([]catalog.Export, bool) {
	i, found := slices.BinarySearch(h.revs, rev)
	if !found {
		i--
	}
	if i < 0 {
		return nil, false
	}
	return h.sets[i], true
}

func (h *history) lastRev() int64 { return h.revs[len(h.revs)-1] }

// TestCompactionMidWatch cuts a running watch, writes and compacts the
// peer's history while it is cut, and checks that the replicator lists
// again: every delivered snapshot equals the peer's set at its revision
// (nothing lost), and revisions strictly increase (nothing twice).
func TestCompactionMidWatch(t *testing.T) {
	peer, proxy, m, rec, r := proxied(t, Config{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: time.Second})

	var h history
	set := []catalog.Export{svc("west-1", "alpha", 0)}
	h.write(t, peer, set)
	run(t, r)

	caughtUp := func() bool { s, ok := rec.last(); return ok && s.Revision >= h.lastRev() }
	// Phase 1: a live watch.
	for i := 1; i <= 5; i++ {
		set = []catalog.Export{svc("west-1", "alpha", i), svc("west-1", "beta", i)}
		if i == 3 {
			set = set[:1] // a delete
		}
		h.write(t, peer, set)
	}
	poll.True(t, 30*time.Second, "replicator caught up before the cut", caughtUp)

	// Phase 2: cut, change, compact.
	proxy.Block()
	for i := 6; i <= 10; i++ {
		set = []catalog.Export{svc("west-1", "alpha", i), svc("west-1", "gamma", i)}
		h.write(t, peer, set)
	}
	if _, err := peer.Client().Compact(testCtx(t), h.lastRev(), clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	poll.True(t, 30*time.Second, "replicator sees the peer down", func() bool { return !r.State().Connected })

	// Phase 3: back, more changes.
	proxy.Unblock()
	for i := 11; i <= 13; i++ {
		set = []catalog.Export{svc("west-1", "gamma", i), svc("west-1", "delta", i)}
		h.write(t, peer, set)
	}
	poll.True(t, 30*time.Second, "replicator caught up after the cut", caughtUp)

	snaps := rec.all()
	resyncs := 0
	for i, s := range snaps {
		if i > 0 && s.Revision <= snaps[i-1].Revision {
			t.Errorf("snapshot %d at revision %d after revision %d: delivered twice or out of order", i, s.Revision, snaps[i-1].Revision)
		}
		want, ok := h.at(s.Revision)
		if !ok {
			t.Errorf("snapshot %d at revision %d precedes every write", i, s.Revision)
			continue
		}
		if diff := cmp.Diff(want, s.Exports, exportsEqual); diff != "" {
			t.Errorf("snapshot %d at revision %d (-want +got):\n%s", i, s.Revision, diff)
		}
		if s.Resync {
			resyncs++
		}
	}
	if resyncs != 2 {
		t.Errorf("%d resyncs, want 2 (the first list and the compaction)", resyncs)
	}
	if got := counterValue(t, m.Resyncs.WithLabelValues("west-1")); got != 2 {
		t.Errorf("resync metric = %v, want 2", got)
	}
	if got := r.State(); !got.Connected || got.Revision != h.lastRev() {
		t.Errorf("state = %+v, want connected at revision %d", got, h.lastRev())
	}
	if got := counterValue(t, m.Restarts.WithLabelValues("west-1", RestartDisconnected)); got < 1 {
		t.Errorf("disconnected restarts = %v, want at least 1", got)
	}
}

// TestResume starts from a persisted revision and set: it must deliver
// only later changes and never list, unless the history is gone.
func TestResume(t *testing.T) {
	tests := []struct {
		name        string
		compact     bool
		wantResyncs int
	}{
		{name: "history kept: watch resumes", compact: false, wantResyncs: 0},
		{name: "history compacted: list again", compact: true, wantResyncs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := storetest.Open(t, "west-1")
			var h history
			persisted := []catalog.Export{svc("west-1", "alpha", 1)}
			from := h.write(t, peer, persisted)
			h.write(t, peer, []catalog.Export{svc("west-1", "alpha", 2)})
			h.write(t, peer, []catalog.Export{svc("west-1", "beta", 3)})
			if tt.compact {
				if _, err := peer.Client().Compact(testCtx(t), h.lastRev()); err != nil {
					t.Fatal(err)
				}
			}
			rec := &recorder{}
			r, err := New(Config{
				Local: "east-1", Peer: "west-1", Logger: quiet, Endpoints: []string{peer.ClientURL()},
				FromRevision: from, Initial: persisted, OnExports: rec.onExports,
				ProbeInterval: 100 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			run(t, r)
			poll.True(t, 30*time.Second, "caught up", func() bool { s, ok := rec.last(); return ok && s.Revision == h.lastRev() })
			resyncs := 0
			for _, s := range rec.all() {
				want, _ := h.at(s.Revision)
				if diff := cmp.Diff(want, s.Exports, exportsEqual); diff != "" {
					t.Errorf("snapshot at revision %d (-want +got):\n%s", s.Revision, diff)
				}
				if s.Revision <= from {
					t.Errorf("snapshot at revision %d, not after the resumed revision %d", s.Revision, from)
				}
				if s.Resync {
					resyncs++
				}
			}
			if resyncs != tt.wantResyncs {
				t.Errorf("%d resyncs, want %d", resyncs, tt.wantResyncs)
			}
		})
	}
}

// TestHistoryReset resumes from a revision the peer never reached (its etcd
// was recreated): the probe notices and the replicator lists again.
func TestHistoryReset(t *testing.T) {
	peer := storetest.Open(t, "west-1")
	var h history
	h.write(t, peer, []catalog.Export{svc("west-1", "alpha", 1)})
	rec := &recorder{}
	r, err := New(Config{
		Local: "east-1", Peer: "west-1", Logger: quiet, Endpoints: []string{peer.ClientURL()},
		FromRevision: 1000, Initial: []catalog.Export{svc("west-1", "stale", 0)}, OnExports: rec.onExports,
		ProbeInterval: 100 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	poll.True(t, 30*time.Second, "listed again", func() bool { s, ok := rec.last(); return ok && s.Resync })
	s, _ := rec.last()
	if diff := cmp.Diff(h.sets[0], s.Exports, exportsEqual); diff != "" {
		t.Errorf("exports after reset (-want +got):\n%s", diff)
	}
}

// TestBadValues writes keys and values no control plane would write into
// the peer's exports prefix: each is refused and counted with its reason,
// and the last good export under a key is kept.
func TestBadValues(t *testing.T) {
	peer := storetest.Open(t, "west-1")
	good := svc("west-1", "alpha", 1)
	if _, err := peer.SetExports(testCtx(t), []catalog.Export{good}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	r, err := New(Config{Local: "east-1", Peer: "west-1", Logger: quiet, Endpoints: []string{peer.ClientURL()}, OnExports: rec.onExports, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	poll.True(t, 30*time.Second, "first list", func() bool { _, ok := rec.last(); return ok })

	wrongCluster := svc("east-9", "alpha", 2)
	invalid := svc("west-1", "alpha", 3)
	invalid.Service.Ports = nil
	tests := []struct {
		name, key, value, reason string
	}{
		{name: "not json", key: store.ExportKey("west-1", good.Service.Key()), value: "{", reason: ReasonBadValue},
		{name: "another cluster's export", key: store.ExportKey("west-1", good.Service.Key()), value: mustEncode(t, wrongCluster), reason: ReasonBadValue},
		{name: "invalid export", key: store.ExportKey("west-1", good.Service.Key()), value: mustEncode(t, invalid), reason: ReasonInvalid},
		{name: "bad key", key: store.ExportsPrefix("west-1") + "Bad_NS/x", value: mustEncode(t, good), reason: ReasonBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counterValue(t, m.BadValues.WithLabelValues("west-1", tt.reason))
			resp, err := peer.Client().Put(testCtx(t), tt.key, tt.value)
			if err != nil {
				t.Fatal(err)
			}
			poll.True(t, 30*time.Second, "delivered", func() bool { s, _ := rec.last(); return s.Revision >= resp.Header.Revision })
			if got := counterValue(t, m.BadValues.WithLabelValues("west-1", tt.reason)); got != before+1 {
				t.Errorf("bad values{reason=%s} = %v, want %v", tt.reason, got, before+1)
			}
			s, _ := rec.last()
			if diff := cmp.Diff([]catalog.Export{good}, s.Exports); diff != "" {
				t.Errorf("exports after a refused value (-want +got):\n%s", diff)
			}
		})
	}
}

func mustEncode(t *testing.T, e catalog.Export) string {
	t.Helper()
	b, err := store.EncodeExport(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigErrors(t *testing.T) {
	noop := func(Snapshot) {}
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "bad peer", cfg: Config{Peer: "West_1", Endpoints: []string{"http://127.0.0.1:1"}, OnExports: noop}},
		{name: "no endpoints", cfg: Config{Peer: "west-1", OnExports: noop}},
		{name: "https without TLS", cfg: Config{Peer: "west-1", Endpoints: []string{"https://127.0.0.1:1"}, OnExports: noop}},
		{name: "not a URL", cfg: Config{Peer: "west-1", Endpoints: []string{"127.0.0.1:1"}, OnExports: noop}},
		{name: "no callback", cfg: Config{Peer: "west-1", Endpoints: []string{"http://127.0.0.1:1"}}},
		{name: "backoff upside down", cfg: Config{Peer: "west-1", Endpoints: []string{"http://127.0.0.1:1"}, OnExports: noop, MinBackoff: time.Second, MaxBackoff: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestBackoffResetsAfterSync replaces the peer's etcd (same address, new
// and shorter history) again and again: each replacement ends a session
// with a history reset. Every session synced with the peer before it
// ended, so every wait is the first of a new run of failures, at most
// MinBackoff plus its jitter, never the grown backoff of earlier outages.
func TestBackoffResetsAfterSync(t *testing.T) {
	const (
		cycles     = 4
		minBackoff = 10 * time.Millisecond
	)
	cfg := storetest.Config(t, "west-1")
	// Its own loopback address, so that the port is still free when the
	// next etcd binds it.
	cfg.ListenClientURLs = []string{"http://" + addrlock.PrivateLoopback()}
	peer := storetest.OpenConfig(t, cfg)
	// Later etcds take the same client address, as a recreated peer does;
	// the proxy cuts the old one's clients so that it closes at once.
	proxy := faultproxy.New(t, strings.TrimPrefix(peer.ClientURL(), "http://"))
	fixed := store.Config{Cluster: "west-1", ListenClientURLs: []string{peer.ClientURL()}, ListenPeerURL: cfg.ListenPeerURL, Logger: cfg.Logger}

	rec := &recorder{}
	r, err := New(Config{
		Local: "east-1", Peer: "west-1", Logger: quiet, Endpoints: []string{"http://" + proxy.Addr()}, OnExports: rec.onExports,
		ProbeInterval: 50 * time.Millisecond, ProbeTimeout: time.Second, MinBackoff: minBackoff, MaxBackoff: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		waits []time.Duration
	)
	r.wait = func(ctx context.Context, d time.Duration) bool {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return sleepCtx(ctx, d)
	}
	waited := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(waits)
	}
	run(t, r)

	for cycle := range cycles {
		// A few revisions, so that the next etcd's history is shorter.
		var rev int64
		for v := range 4 {
			rev, err = peer.SetExports(testCtx(t), []catalog.Export{svc("west-1", "alpha", 10*cycle+v)})
			if err != nil {
				t.Fatal(err)
			}
		}
		want := svc("west-1", "alpha", 10*cycle+3)
		poll.True(t, 30*time.Second, fmt.Sprintf("cycle %d: synced with the current etcd", cycle), func() bool {
			s, ok := rec.last()
			return ok && s.Revision == rev && len(s.Exports) == 1 && cmp.Diff(want, s.Exports[0]) == ""
		})
		if got := len(waited()); got != cycle {
			t.Fatalf("cycle %d: %d restarts before the replacement, want %d", cycle, got, cycle)
		}
		proxy.Block()
		if err := peer.Close(); err != nil {
			t.Fatal(err)
		}
		next := fixed
		next.DataDir = t.TempDir()
		peer = storetest.OpenConfig(t, next)
		proxy.Unblock()
		// The new etcd has written nothing yet: its revision is below
		// what was applied, so the probe notices the replacement.
		poll.True(t, 30*time.Second, fmt.Sprintf("cycle %d: replacement noticed", cycle), func() bool { return len(waited()) == cycle+1 })
	}
	for i, d := range waited() {
		if d > minBackoff*3/2 {
			t.Errorf("wait %d after a session that synced = %s, want at most %s (MinBackoff with jitter)", i, d, minBackoff*3/2)
		}
	}
}

// TestConnectionTellsLiveness: with probes far apart (an hour), the peer
// is marked down when its connection is cut and refused, counted as a
// disconnection, and up again, with a probe of its revision, as soon as
// it is back.
func TestConnectionTellsLiveness(t *testing.T) {
	peer, proxy, m, _, r := proxied(t, Config{ProbeInterval: time.Hour})
	var h history
	h.write(t, peer, []catalog.Export{svc("west-1", "alpha", 0)})
	run(t, r)
	poll.True(t, 30*time.Second, "replicator connected", func() bool { return r.State().Connected })

	proxy.Block()
	poll.True(t, 30*time.Second, "replicator sees the peer down without a probe", func() bool { return !r.State().Connected })
	if got := counterValue(t, m.Restarts.WithLabelValues("west-1", RestartDisconnected)); got < 1 {
		t.Errorf("disconnected restarts = %v, want at least 1", got)
	}

	rev := h.write(t, peer, []catalog.Export{svc("west-1", "alpha", 1)})
	proxy.Unblock()
	poll.True(t, 30*time.Second, "replicator back, at the peer's revision", func() bool {
		st := r.State()
		return st.Connected && st.Revision == rev && st.PeerRevision >= rev
	})
}

// proxied is a replicator of west-1's etcd through a fault proxy, with
// cfg's probe settings, fast backoffs, metrics and a recorder.
func proxied(t *testing.T, cfg Config) (*store.Store, *faultproxy.Proxy, *Metrics, *recorder, *Replicator) {
	t.Helper()
	peer := storetest.Open(t, "west-1")
	proxy := faultproxy.New(t, peer.ClientURL()[len("http://"):])
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	cfg.Local, cfg.Peer, cfg.Logger, cfg.Endpoints = "east-1", "west-1", quiet, []string{"http://" + proxy.Addr()}
	cfg.OnExports, cfg.OnState, cfg.Metrics = rec.onExports, rec.onState, m
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return peer, proxy, m, rec, r
}
