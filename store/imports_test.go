package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
	"github.com/fedmesh/fedmesh/topology"
)

// smallTxnOps is the --max-txn-ops of the stores below: an import set of
// more services than this needs several transactions.
const smallTxnOps = 8

// importSet is n services of west-1, the endpoints told apart by version.
func importSet(n, version int) []catalog.Export {
	out := manyExports("west-1", n)
	for i := range out {
		out[i].Endpoints[0].Workload = fmt.Sprintf("v%d", version)
	}
	return out
}

func importState(rev int64) store.ImportState {
	return store.ImportState{Revision: rev, LastSync: t0, Locality: topology.Locality{Region: "us-west", Cluster: "west-1"}}
}

// importKeys counts the keys under this cluster's imports prefixes: what
// a finished write leaves is exactly its set.
func importKeys(t *testing.T, s *store.Store) int {
	t.Helper()
	n := 0
	for _, p := range []string{store.ImportsPrefix("east-1"), store.ImportGenerationsPrefix("east-1")} {
		resp, err := s.Client().Get(testCtx(t), p, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		n += int(resp.Count)
	}
	return n
}

// TestLargeImportsAcrossTransactions persists import sets larger than one
// transaction may hold, with an embedded etcd whose --max-txn-ops is
// small, as an external etcd's default of 128 is for a peer with more
// services: every write succeeds, and what ListImports (the restart path)
// reads is each time exactly the set written, with nothing left behind.
func TestLargeImportsAcrossTransactions(t *testing.T) {
	ctx := testCtx(t)
	cfg := storetest.Config(t, "east-1")
	cfg.MaxTxnOps = smallTxnOps
	s := storetest.OpenConfig(t, cfg)

	type step struct {
		name string
		// set is the whole set after the step; update, if set, is how
		// the step gets there with UpdateImports.
		set    []catalog.Export
		update func() ([]catalog.Export, []catalog.ServiceKey)
	}
	changed := importSet(40, 2)
	steps := []step{
		{name: "first large set", set: importSet(50, 1)},
		{name: "every export changed, fewer of them", set: changed},
		{name: "small change in place", set: append(importSet(40, 2)[:39:39], importSet(40, 3)[39]),
			update: func() ([]catalog.Export, []catalog.ServiceKey) { return importSet(40, 3)[39:], nil }},
		{name: "large incremental change", set: importSet(30, 4),
			update: func() ([]catalog.Export, []catalog.ServiceKey) {
				var deletes []catalog.ServiceKey
				for _, e := range changed[30:] {
					deletes = append(deletes, e.Service.Key())
				}
				return importSet(30, 4), deletes
			}},
		{name: "shrink to a few", set: importSet(3, 5)},
		{name: "small set in place", set: importSet(2, 5)},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			state := importState(int64(100 + i))
			var err error
			if st.update != nil {
				puts, deletes := st.update()
				err = s.UpdateImports(ctx, "west-1", puts, deletes, state)
			} else {
				err = s.SetImports(ctx, "west-1", st.set, state)
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.ListImports(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]store.PeerImports{"west-1": {State: state, Exports: st.set}}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("imports (-want +got):\n%s", d)
			}
			if n := importKeys(t, s); n != len(st.set) {
				t.Errorf("%d keys under the imports prefixes, want %d", n, len(st.set))
			}
		})
	}

	// What a restarted control plane reads: the last set.
	last := steps[len(steps)-1]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.OpenConfig(t, cfg)
	got, err := s.ListImports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]store.PeerImports{"west-1": {State: importState(int64(100 + len(steps) - 1)), Exports: last.set}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("imports after a restart (-want +got):\n%s", d)
	}
	if err := s.DeleteImports(ctx, "west-1"); err != nil {
		t.Fatal(err)
	}
	if n := importKeys(t, s); n != 0 {
		t.Errorf("%d keys under the imports prefixes after DeleteImports, want 0", n)
	}
}

// TestLargeImportsNeverMix writes two large import sets in turn while a
// reader lists the imports as a restarted control plane would: every
// list holds one set or the other, whole, never a mix of the two.
func TestLargeImportsNeverMix(t *testing.T) {
	ctx := testCtx(t)
	cfg := storetest.Config(t, "east-1")
	cfg.MaxTxnOps = smallTxnOps
	s := storetest.OpenConfig(t, cfg)
	sets := [][]catalog.Export{importSet(60, 1), importSet(45, 2)}
	if err := s.SetImports(ctx, "west-1", sets[0], importState(0)); err != nil {
		t.Fatal(err)
	}

	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var (
		mu    sync.Mutex
		reads int
		bad   []string
	)
	wg.Go(func() {
		for rctx.Err() == nil {
			got, err := s.ListImports(rctx)
			if err != nil {
				continue // the context ended
			}
			mu.Lock()
			reads++
			pi := got["west-1"]
			want := sets[pi.State.Revision%2]
			if d := cmp.Diff(want, pi.Exports, cmpopts.EquateEmpty()); d != "" && len(bad) < 3 {
				bad = append(bad, fmt.Sprintf("state at revision %d with other exports (-want +got):\n%s", pi.State.Revision, d))
			}
			mu.Unlock()
		}
	})
	for i := 1; i <= 10; i++ {
		if err := s.SetImports(ctx, "west-1", sets[i%2], importState(int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Let the reader see the last set at least once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := reads
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if reads == 0 {
		t.Fatal("the reader never read")
	}
	for _, b := range bad {
		t.Error(b)
	}
}

// TestInterruptedImportsWrite leaves a partial generation behind, as a
// write cut off between its transactions would: the reader ignores it,
// and the next write deletes it.
func TestInterruptedImportsWrite(t *testing.T) {
	ctx := testCtx(t)
	cfg := storetest.Config(t, "east-1")
	cfg.MaxTxnOps = smallTxnOps
	s := storetest.OpenConfig(t, cfg)
	set := importSet(20, 1)
	if err := s.SetImports(ctx, "west-1", set, importState(1)); err != nil {
		t.Fatal(err)
	}
	// A partial next generation, and one of a peer never flipped to.
	partial := importSet(20, 2)[:5]
	for gen := uint64(2); gen <= 9; gen++ {
		for _, e := range partial {
			v, err := store.EncodeExport(e)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Client().Put(ctx, store.ImportGenerationKey("east-1", "west-1", gen, e.Service.Key()), string(v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	other := export("east-2", "demo", "echo", "127.0.2.1")
	v, err := store.EncodeExport(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Put(ctx, store.ImportGenerationKey("east-1", "east-2", 1, other.Service.Key()), string(v)); err != nil {
		t.Fatal(err)
	}

	got, err := s.ListImports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]store.PeerImports{"west-1": {State: importState(1), Exports: set}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("imports with partial generations (-want +got):\n%s", d)
	}

	next := importSet(20, 3)
	if err := s.SetImports(ctx, "west-1", next, importState(2)); err != nil {
		t.Fatal(err)
	}
	got, err = s.ListImports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]store.PeerImports{"west-1": {State: importState(2), Exports: next}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("imports after the next write (-want +got):\n%s", d)
	}
	// west-1's leftovers are gone; east-2's are not west-1's to delete.
	if n := importKeys(t, s); n != len(next)+1 {
		t.Errorf("%d keys under the imports prefixes, want %d", n, len(next)+1)
	}
}
