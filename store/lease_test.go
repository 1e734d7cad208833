package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
	"github.com/fedmesh/fedmesh/topology"
)

// externalStore opens a store for cluster on the etcd of host, as with
// --etcd-endpoints.
func externalStore(t *testing.T, host *store.Store, cluster string, ttl time.Duration) *store.Store {
	t.Helper()
	return storetest.OpenConfig(t, store.Config{
		Cluster:   cluster,
		Endpoints: []string{host.ClientURL()},
		LeaseTTL:  ttl,
		Logger:    quietLogger(),
	})
}

func countExports(t *testing.T, s *store.Store, cluster string) (int, error) {
	t.Helper()
	es, _, err := s.ListExports(testCtx(t), cluster)
	return len(es), err
}

func TestExportsExpireAfterCrash(t *testing.T) {
	ctx := testCtx(t)
	host := storetest.Open(t, "east-1")
	crashing := externalStore(t, host, "east-2", 2*time.Second)
	if _, err := crashing.SetExports(ctx, manyExports("east-2", 3)); err != nil {
		t.Fatal(err)
	}
	if n, err := countExports(t, host, "east-2"); err != nil || n != 3 {
		t.Fatalf("before the crash: %d exports (%v), want 3", n, err)
	}
	if err := crashing.Abandon(); err != nil {
		t.Fatal(err)
	}
	// Still there right after: nobody revoked the lease.
	if n, err := countExports(t, host, "east-2"); err != nil || n != 3 {
		t.Fatalf("right after the crash: %d exports (%v), want 3", n, err)
	}
	poll.Until(t, 30*time.Second, "exports of the crashed control plane expire", func() error {
		n, err := countExports(t, host, "east-2")
		if err == nil && n != 0 {
			err = fmt.Errorf("%d exports left", n)
		}
		return err
	})
}

func TestCloseWithdrawsExports(t *testing.T) {
	ctx := testCtx(t)
	host := storetest.Open(t, "east-1")
	s := externalStore(t, host, "east-2", 0)
	if _, err := s.SetExports(ctx, manyExports("east-2", 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n, err := countExports(t, host, "east-2"); err != nil || n != 0 {
		t.Errorf("after a clean Close: %d exports (%v), want 0", n, err)
	}
}

func TestLostLeaseIsReplacedAndExportsRewritten(t *testing.T) {
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	s := storetest.Open(t, "east-1", func(c *store.Config) { c.Registerer = reg })
	want := manyExports("east-1", 5)
	if _, err := s.SetExports(ctx, want); err != nil {
		t.Fatal(err)
	}
	old := s.LeaseID()
	if _, err := s.Client().Revoke(ctx, old); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "exports written again under a new lease", func() error {
		n, err := countExports(t, s, "east-1")
		if err == nil && (n != len(want) || s.LeaseID() == old) {
			err = fmt.Errorf("%d exports under lease %x", n, s.LeaseID())
		}
		return err
	})
	got, _, err := s.ListExports(ctx, "east-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("exports after the new lease (-want +got):\n%s", d)
	}
	if v := counterValue(t, s.Metrics().LeaseKeepaliveFailures); v < 1 {
		t.Errorf("lease_keepalive_failures_total = %v, want at least 1", v)
	}
	// Later writes go under the new lease.
	if _, err := s.SetExports(ctx, want[:2]); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Get(ctx, store.ExportKey("east-1", want[0].Service.Key()))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Kvs[0].Lease; got != int64(s.LeaseID()) {
		t.Errorf("export under lease %x, want the new lease %x", got, int64(s.LeaseID()))
	}
}

// A lost lease whose rewrite fails after the new lease was granted is
// retried until the exports are back, not taken as replaced. The rewrite
// fails here because the whole set is more than one transaction may hold
// (it was written in two steps); a smaller set lets it through.
func TestFailedRewriteUnderNewLeaseIsRetried(t *testing.T) {
	ctx := testCtx(t)
	host := storetest.Open(t, "east-1")
	s := externalStore(t, host, "east-2", 0) // at most 128 operations
	for _, n := range []int{100, 200} {
		if _, err := s.SetExports(ctx, manyExports("east-2", n)); err != nil {
			t.Fatalf("SetExports of %d: %v", n, err)
		}
	}
	old := s.LeaseID()
	if _, err := s.Client().Revoke(ctx, old); err != nil {
		t.Fatal(err)
	}
	// One failure for the lost lease, then one per failed rewrite.
	poll.True(t, 30*time.Second, "the failed rewrite retried", func() bool {
		return counterValue(t, s.Metrics().LeaseKeepaliveFailures) >= 3
	})
	want := manyExports("east-2", 100)
	if _, err := s.SetExports(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, _, err := host.ListExports(ctx, "east-2")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("exports under the new lease (-want +got):\n%s", d)
	}
}

func TestSetExportsRefusesBadInput(t *testing.T) {
	ctx := testCtx(t)
	s := storetest.Open(t, "east-1")
	good := []catalog.Export{export("east-1", "demo", "echo", "127.0.1.1")}
	if _, err := s.SetExports(ctx, good); err != nil {
		t.Fatal(err)
	}
	bad := export("east-1", "demo", "echo", "not-an-ip")
	for _, tc := range []struct {
		name    string
		exports []catalog.Export
	}{
		{"invalid export", []catalog.Export{bad}},
		{"other cluster", []catalog.Export{export("west-1", "demo", "echo", "127.0.1.1")}},
		{"twice", []catalog.Export{good[0], good[0]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.SetExports(ctx, tc.exports); !errors.Is(err, catalog.ErrInvalid) {
				t.Errorf("SetExports = %v, want catalog.ErrInvalid", err)
			}
			got, _, err := s.ListExports(ctx, "east-1")
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(good, got); d != "" {
				t.Errorf("a refused write changed the exports (-want +got):\n%s", d)
			}
		})
	}
}

func TestExternalEtcdRefusesOversizedTransactions(t *testing.T) {
	ctx := testCtx(t)
	host := storetest.Open(t, "east-1")
	s := externalStore(t, host, "east-2", 0) // MaxTxnOps defaults to etcd's 128
	if _, err := s.SetExports(ctx, manyExports("east-2", 100)); err != nil {
		t.Fatal(err)
	}
	// 100 changed puts and 100 new ones.
	bigger := manyExports("east-2", 200)
	for i := range bigger {
		bigger[i].Endpoints = bigger[i].Endpoints[:1]
	}
	_, err := s.SetExports(ctx, bigger)
	if !errors.Is(err, store.ErrTooManyOps) {
		t.Fatalf("SetExports of 200 = %v, want ErrTooManyOps", err)
	}
	if es, _, err := host.ListExports(ctx, "east-2"); err != nil || len(es) != 100 || len(es[0].Endpoints) != 2 {
		t.Errorf("after the refused write: %d exports (%v), want the 100 before, unchanged", len(es), err)
	}
	// The embedded etcd takes the same set in one transaction.
	if _, err := host.SetExports(ctx, manyExports("east-1", 200)); err != nil {
		t.Errorf("embedded SetExports of 200: %v", err)
	}
}

func TestRestartKeepsImportsAndMembers(t *testing.T) {
	ctx := testCtx(t)
	cfg := storetest.Config(t, "east-1")
	cfg.LeaseTTL = 2 * time.Second
	s := storetest.OpenConfig(t, cfg)

	west := []catalog.Export{export("west-1", "demo", "echo", "127.0.3.1"), export("west-1", "demo", "api", "127.0.3.2")}
	east2 := []catalog.Export{export("east-2", "demo", "echo", "127.0.2.1")}
	wantImports := map[string]store.PeerImports{
		"west-1": {State: store.ImportState{Revision: 42, LastSync: t0, Locality: topology.Locality{Region: "us-west", Cluster: "west-1"}, GatewayAddress: "127.0.0.13:15443"}},
		"east-2": {State: store.ImportState{Revision: 7, LastSync: t0.Add(time.Minute)}, Exports: east2},
	}
	if err := s.SetImports(ctx, "west-1", west, wantImports["west-1"].State); err != nil {
		t.Fatal(err)
	}
	if err := s.SetImports(ctx, "east-2", east2, wantImports["east-2"].State); err != nil {
		t.Fatal(err)
	}
	// An incremental change: drop api, change echo.
	echo := export("west-1", "demo", "echo", "127.0.3.1", "127.0.3.9")
	st := wantImports["west-1"].State
	st.Revision = 43
	if err := s.UpdateImports(ctx, "west-1", []catalog.Export{echo}, []catalog.ServiceKey{{Namespace: "demo", Name: "api"}}, st); err != nil {
		t.Fatal(err)
	}
	wantImports["west-1"] = store.PeerImports{State: st, Exports: []catalog.Export{echo}}
	members := []store.Member{
		{Name: "east-2", SerfAddress: "127.0.0.12:7946", EtcdAddress: "https://127.0.0.12:2379", LastSeen: t0},
		{Name: "west-1", SerfAddress: "127.0.0.13:7946", EtcdAddress: "https://127.0.0.13:2379", LastSeen: t0},
	}
	for _, m := range members {
		if err := s.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetExports(ctx, manyExports("east-1", 2)); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, s *store.Store) {
		t.Helper()
		got, err := s.ListImports(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(wantImports, got); d != "" {
			t.Errorf("imports (-want +got):\n%s", d)
		}
		gotMembers, err := s.ListMembers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(members, gotMembers); d != "" {
			t.Errorf("members (-want +got):\n%s", d)
		}
	}
	check(t, s)

	parent := t
	for _, stop := range []struct {
		name        string
		stop        func(*store.Store) error
		wantExports int
	}{
		{"clean close", (*store.Store).Close, 0},
		{"crash", (*store.Store).Abandon, 2},
	} {
		t.Run(stop.name, func(t *testing.T) {
			if _, err := s.SetExports(ctx, manyExports("east-1", 2)); err != nil {
				t.Fatal(err)
			}
			if err := stop.stop(s); err != nil {
				t.Fatal(err)
			}
			s = storetest.OpenConfig(parent, cfg) // same data dir
			check(t, s)
			if n, err := countExports(t, s, "east-1"); err != nil || n != stop.wantExports {
				t.Errorf("right after reopening: %d exports (%v), want %d", n, err, stop.wantExports)
			}
			// A crashed incarnation's exports expire with its lease.
			poll.Until(t, 30*time.Second, "old exports expire", func() error {
				n, err := countExports(t, s, "east-1")
				if err == nil && n != 0 {
					err = fmt.Errorf("%d exports left", n)
				}
				return err
			})
		})
	}

	if err := s.DeleteImports(ctx, "east-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMember(ctx, "east-2"); err != nil {
		t.Fatal(err)
	}
	delete(wantImports, "east-2")
	members = members[1:]
	check(t, s)
}

func TestImportsRefuseBadInput(t *testing.T) {
	ctx := testCtx(t)
	s := storetest.Open(t, "east-1")
	for i, tc := range []struct {
		name    string
		peer    string
		exports []catalog.Export
	}{
		{"self", "east-1", nil},
		{"bad peer name", "West_1", nil},
		{"export of another cluster", "west-1", []catalog.Export{export("east-2", "demo", "echo", "127.0.2.1")}},
		{"invalid export", "west-1", []catalog.Export{export("west-1", "demo", "echo", "nope")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.SetImports(ctx, tc.peer, tc.exports, store.ImportState{Revision: int64(i)}); !errors.Is(err, catalog.ErrInvalid) {
				t.Errorf("SetImports = %v, want catalog.ErrInvalid", err)
			}
		})
	}
	got, err := s.ListImports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("refused writes left imports: %v", got)
	}
	if err := s.PutMember(ctx, store.Member{Name: ""}); !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("PutMember without a name = %v, want catalog.ErrInvalid", err)
	}
}

func TestListSkipsAndCountsBadValues(t *testing.T) {
	ctx := testCtx(t)
	s := storetest.Open(t, "east-1")
	good := export("west-1", "demo", "echo", "127.0.3.1")
	if err := s.SetImports(ctx, "west-1", []catalog.Export{good}, store.ImportState{}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		store.ImportKey("east-1", "west-1", catalog.ServiceKey{Namespace: "demo", Name: "bad"}):   "{not json",
		store.ImportKey("east-1", "west-1", catalog.ServiceKey{Namespace: "demo", Name: "other"}): mustEncode(t, good),
		store.ImportsPrefix("east-1") + "west-1/too/many/parts":                                   "{}",
		store.MemberKey("east-1", "ghost"):                                                        "[]",
	} {
		if _, err := s.Client().Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListImports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]store.PeerImports{"west-1": {Exports: []catalog.Export{good}}}, got); d != "" {
		t.Errorf("imports (-want +got):\n%s", d)
	}
	if ms, err := s.ListMembers(ctx); err != nil || len(ms) != 0 {
		t.Errorf("members %v (%v), want none", ms, err)
	}
	if v := counterValue(t, s.Metrics().InvalidValues); v != 4 {
		t.Errorf("invalid_values_total = %v, want 4", v)
	}
}

func mustEncode(t *testing.T, e catalog.Export) string {
	t.Helper()
	v, err := store.EncodeExport(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}
