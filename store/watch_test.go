package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/faultproxy"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
)

// generation g of a test export set: services 0..n(g)-1, each with one
// endpoint whose address names g, so that a mix of generations shows.
func generation(cluster string, g int) []catalog.Export {
	n := 150 + g%7*10 // more than etcd's default 128 ops, and a varying set
	out := make([]catalog.Export, n)
	for i := range out {
		out[i] = export(cluster, "gen", fmt.Sprintf("svc-%03d", i), fmt.Sprintf("10.%d.%d.%d", g%200, i/200, i%200+1))
	}
	return out
}

// genOf reads the generation an export of generation() belongs to.
func genOf(t *testing.T, v []byte) int {
	t.Helper()
	var e catalog.Export
	if err := json.Unmarshal(v, &e); err != nil {
		t.Fatal(err)
	}
	var g, a, b, c int
	if _, err := fmt.Sscanf(e.Endpoints[0].Address, "10.%d.%d.%d", &g, &a, &b); err != nil {
		t.Fatalf("address %q: %v", e.Endpoints[0].Address, err)
	}
	_ = c
	return g
}

// recorder applies watch updates to a map and records every update.
type recorder struct {
	t *testing.T

	mu      sync.Mutex // guards the following
	state   map[string][]byte
	updates []store.Update
	lastRev int64
	errs    []string
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, state: map[string][]byte{}}
}

func (r *recorder) apply(u store.Update) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u.Rev <= r.lastRev {
		r.errs = append(r.errs, fmt.Sprintf("update at revision %d after revision %d (resync %v)", u.Rev, r.lastRev, u.Resync))
	}
	r.lastRev = u.Rev
	if u.Resync {
		r.state = map[string][]byte{}
	}
	seen := map[string]bool{}
	for _, kv := range u.Puts {
		if seen[kv.Key] {
			r.errs = append(r.errs, fmt.Sprintf("key %s twice in the update at %d", kv.Key, u.Rev))
		}
		seen[kv.Key] = true
		r.state[kv.Key] = kv.Value
	}
	for _, k := range u.Deletes {
		if seen[k] {
			r.errs = append(r.errs, fmt.Sprintf("key %s twice in the update at %d", k, u.Rev))
		}
		seen[k] = true
		if _, ok := r.state[k]; !ok && !u.Resync {
			r.errs = append(r.errs, fmt.Sprintf("delete of unknown key %s at %d", k, u.Rev))
		}
		delete(r.state, k)
	}
	r.updates = append(r.updates, u)
	// Every state a consumer can hold is one whole generation.
	if len(r.state) > 0 {
		gens := map[int]int{}
		for _, v := range r.state {
			gens[genOf(r.t, v)]++
		}
		if len(gens) != 1 {
			r.errs = append(r.errs, fmt.Sprintf("state at revision %d mixes generations %v", u.Rev, gens))
		} else {
			for g, n := range gens {
				if want := len(generation("east-1", g)); n != want {
					r.errs = append(r.errs, fmt.Sprintf("state at revision %d has %d services of generation %d, want %d", u.Rev, n, g, want))
				}
			}
		}
	}
	return nil
}

func (r *recorder) snapshot() (map[string][]byte, int64, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := make(map[string][]byte, len(r.state))
	for k, v := range r.state {
		st[k] = v
	}
	return st, r.lastRev, append([]string(nil), r.errs...)
}

// startWatch runs WatchPrefix until the test ends and checks that it ended
// because of its context.
func startWatch(t *testing.T, cli *clientv3.Client, prefix string, from int64, r *recorder, m *store.Metrics) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- store.WatchPrefix(ctx, cli, prefix, from, r.apply, store.WatchOptions{Metrics: m, Logger: quietLogger()})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("watch ended with %v, want context.Canceled", err)
		}
	})
}

func wantState(t *testing.T, s *store.Store, r *recorder) {
	t.Helper()
	ctx := testCtx(t)
	eventually(t, 30*time.Second, "watcher state equals etcd", func() (bool, error) {
		resp, err := s.Client().Get(ctx, store.ExportsPrefix(s.Cluster()), clientv3.WithPrefix())
		if err != nil {
			return false, err
		}
		want := map[string][]byte{}
		for _, kv := range resp.Kvs {
			want[string(kv.Key)] = kv.Value
		}
		got, rev, _ := r.snapshot()
		if d := cmp.Diff(want, got); d != "" || rev < resp.Header.Revision {
			return false, fmt.Errorf("at revision %d (want %d): %s", rev, resp.Header.Revision, d)
		}
		return true, nil
	})
	if _, _, errs := r.snapshot(); len(errs) > 0 {
		t.Fatalf("watcher saw %d errors, first: %v", len(errs), errs[:min(5, len(errs))])
	}
}

func TestWatchSeesWholeTransactions(t *testing.T) {
	ctx := testCtx(t)
	s := storetest.Open(t, "east-1")
	if _, err := s.SetExports(ctx, generation("east-1", 0)); err != nil {
		t.Fatal(err)
	}
	r := newRecorder(t)
	startWatch(t, s.Client(), store.ExportsPrefix("east-1"), 0, r, nil)
	for g := 1; g <= 20; g++ {
		if _, err := s.SetExports(ctx, generation("east-1", g)); err != nil {
			t.Fatalf("generation %d: %v", g, err)
		}
	}
	wantState(t, s, r)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.updates[0].Resync {
		t.Errorf("first update is not a resync")
	}
	if got, want := len(r.updates), 21; got != want {
		t.Errorf("%d updates, want %d: one resync and one per SetExports", got, want)
	}
}

func TestWatchResumesFromRevision(t *testing.T) {
	ctx := testCtx(t)
	s := storetest.Open(t, "east-1")
	var revs []int64
	for g := 0; g < 4; g++ {
		rev, err := s.SetExports(ctx, generation("east-1", g))
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	// A consumer that holds generation 1 resumes after its revision.
	r := newRecorder(t)
	resp, err := s.Client().Get(ctx, store.ExportsPrefix("east-1"), clientv3.WithPrefix(), clientv3.WithRev(revs[1]))
	if err != nil {
		t.Fatal(err)
	}
	r.apply(store.Update{Resync: true, Rev: revs[1], Puts: kvs(resp.Kvs)})
	startWatch(t, s.Client(), store.ExportsPrefix("east-1"), revs[1], r, nil)
	wantState(t, s, r)
	r.mu.Lock()
	defer r.mu.Unlock()
	var got []int64
	for _, u := range r.updates[1:] {
		if u.Resync {
			t.Errorf("resync at %d, want only changes", u.Rev)
		}
		got = append(got, u.Rev)
	}
	if d := cmp.Diff(revs[2:], got); d != "" {
		t.Errorf("revisions delivered (-want +got):\n%s", d)
	}
}

func kvs(in []*mvccpb.KeyValue) []store.KV {
	out := make([]store.KV, len(in))
	for i, kv := range in {
		out[i] = store.KV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}
	}
	return out
}

func TestWatchRelistsAfterCompaction(t *testing.T) {
	for _, tc := range []struct {
		name string
		// midWatch cuts the watch's connection, compacts, and lets it
		// reconnect; otherwise the watch starts from a compacted revision.
		midWatch bool
	}{
		{name: "start from compacted revision"},
		{name: "compaction while disconnected", midWatch: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			s := storetest.Open(t, "east-1")
			m, err := store.NewMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			proxy := faultproxy.New(t, trimScheme(s.ClientURL()))
			cli := newClient(t, "http://"+proxy.Addr(), nil)
			var revs []int64
			for g := 0; g < 3; g++ {
				rev, err := s.SetExports(ctx, generation("east-1", g))
				if err != nil {
					t.Fatal(err)
				}
				revs = append(revs, rev)
			}
			r := newRecorder(t)
			resp, err := s.Client().Get(ctx, store.ExportsPrefix("east-1"), clientv3.WithPrefix(), clientv3.WithRev(revs[0]))
			if err != nil {
				t.Fatal(err)
			}
			r.apply(store.Update{Resync: true, Rev: revs[0], Puts: kvs(resp.Kvs)})
			from := revs[0]
			if tc.midWatch {
				startWatch(t, cli, store.ExportsPrefix("east-1"), from, r, m)
				wantState(t, s, r)
				proxy.Block()
			}
			for g := 3; g < 8; g++ {
				rev, err := s.SetExports(ctx, generation("east-1", g))
				if err != nil {
					t.Fatal(err)
				}
				revs = append(revs, rev)
			}
			if _, err := s.Client().Compact(ctx, revs[len(revs)-2], clientv3.WithCompactPhysical()); err != nil {
				t.Fatal(err)
			}
			if tc.midWatch {
				proxy.Unblock()
			} else {
				startWatch(t, cli, store.ExportsPrefix("east-1"), from, r, m)
			}
			wantState(t, s, r)
			// The last generation written after the compaction still comes
			// as a change, or within the resync.
			if got := counterValue(t, m.WatchRelists); got < 1 {
				t.Errorf("watch_relists_total = %v, want at least 1", got)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			resyncs := 0
			for _, u := range r.updates[1:] {
				if u.Resync {
					resyncs++
					if u.Rev < revs[len(revs)-2] {
						t.Errorf("resync at %d, before the compaction at %d", u.Rev, revs[len(revs)-2])
					}
				}
			}
			if resyncs != 1 {
				t.Errorf("%d resyncs after the compaction, want 1", resyncs)
			}
		})
	}
}

func trimScheme(u string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(u) > len(p) && u[:len(p)] == p {
			return u[len(p):]
		}
	}
	return u
}

func TestWatchStopsOnConsumerError(t *testing.T) {
	ctx := testCtx(t)
	s := storetest.Open(t, "east-1")
	boom := errors.New("boom")
	err := s.Watch(ctx, store.ExportsPrefix("east-1"), 0, func(store.Update) error { return boom })
	if !errors.Is(err, boom) || !errors.Is(err, store.ErrWatchStopped) {
		t.Errorf("Watch = %v, want ErrWatchStopped wrapping boom", err)
	}
}
