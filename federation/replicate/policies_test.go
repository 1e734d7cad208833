package replicate

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/faultproxy"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/store/storetest"
)

// producerPolicies encodes a producer HTTPRoute of demo/name sending
// weight percent to NAME-v2, as a control plane attaches it to the
// export of demo/name.
func producerPolicies(t *testing.T, name string, weight int) *catalog.Policies {
	t.Helper()
	obj, err := policy.ParseObject(fmt.Appendf(nil, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: %[1]s}]
  rules:
  - backendRefs: [{name: %[1]s, port: 8080, weight: %[2]d}, {name: %[1]s-v2, port: 8080, weight: %[3]d}]
`, name, 100-weight, weight))
	if err != nil {
		t.Fatal(err)
	}
	var tr policy.Traffic
	if err := tr.Add(obj); err != nil {
		t.Fatal(err)
	}
	p, err := policy.EncodePolicies(tr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func withPolicies(e catalog.Export, p *catalog.Policies) catalog.Export {
	e.Policies = p
	return e
}

// policiesOf returns the policies of service name in s, and whether s
// has the service.
func policiesOf(s Snapshot, name string) (*catalog.Policies, bool) {
	for _, e := range s.Exports {
		if e.Service.Name == name {
			return e.Policies, true
		}
	}
	return nil, false
}

// TestPoliciesTravelWithExports checks that producer policies are
// replicated as the exports carrying them are: on the first list, across
// a restart of the replicating control plane during an outage of the
// peer (resuming from the persisted revision and set) while the peer's
// history is compacted, and on a live watch.
func TestPoliciesTravelWithExports(t *testing.T) {
	peer := storetest.Open(t, "west-1")
	proxy := faultproxy.New(t, peer.ClientURL()[len("http://"):])
	p10, p50 := producerPolicies(t, "alpha", 10), producerPolicies(t, "beta", 50)
	p90 := producerPolicies(t, "alpha", 90)
	newReplicator := func(rec *recorder, from int64, initial []catalog.Export) *Replicator {
		r, err := New(Config{
			Local: "east-1", Peer: "west-1", Logger: quiet, Endpoints: []string{"http://" + proxy.Addr()},
			FromRevision: from, Initial: initial, OnExports: rec.onExports,
			ProbeInterval: 100 * time.Millisecond, ProbeTimeout: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var h history
	check := func(rec *recorder, what string, want map[string]*catalog.Policies) Snapshot {
		t.Helper()
		poll.True(t, 30*time.Second, what, func() bool { s, ok := rec.last(); return ok && s.Revision >= h.lastRev() })
		s, _ := rec.last()
		truth, _ := h.at(s.Revision)
		if diff := cmp.Diff(truth, s.Exports, exportsEqual); diff != "" {
			t.Errorf("%s: snapshot at revision %d (-peer +replicated):\n%s", what, s.Revision, diff)
		}
		for name, wp := range want {
			got, ok := policiesOf(s, name)
			if !ok {
				t.Errorf("%s: no export of %s", what, name)
				continue
			}
			if diff := cmp.Diff(wp, got); diff != "" {
				t.Errorf("%s: policies of %s (-want +got):\n%s", what, name, diff)
			}
		}
		return s
	}

	h.write(t, peer, []catalog.Export{withPolicies(svc("west-1", "alpha", 1), p10), svc("west-1", "beta", 1)})
	rec1 := &recorder{}
	r1 := newReplicator(rec1, 0, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r1.Run(ctx) }()
	persisted := check(rec1, "first list", map[string]*catalog.Policies{"alpha": p10, "beta": nil})

	// The peer goes away and this control plane restarts meanwhile; the
	// peer changes its policies and compacts its history.
	proxy.Block()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	h.write(t, peer, []catalog.Export{withPolicies(svc("west-1", "alpha", 1), producerPolicies(t, "alpha", 50))})
	h.write(t, peer, []catalog.Export{withPolicies(svc("west-1", "alpha", 1), p90), withPolicies(svc("west-1", "beta", 1), p50)})
	if _, err := peer.Client().Compact(testCtx(t), h.lastRev(), clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	rec2 := &recorder{}
	r2 := newReplicator(rec2, persisted.Revision, persisted.Exports)
	run(t, r2)
	poll.True(t, 30*time.Second, "restarted replicator sees the peer down", func() bool { return !r2.State().Connected })
	if s, ok := rec2.last(); ok {
		t.Fatalf("snapshot at revision %d delivered while the peer is away", s.Revision)
	}
	proxy.Unblock()
	s := check(rec2, "after the outage and compaction", map[string]*catalog.Policies{"alpha": p90, "beta": p50})
	if !s.Resync {
		t.Errorf("snapshot after compaction is not a resync")
	}

	// Live: alpha's policies are withdrawn, beta's change.
	p70 := producerPolicies(t, "beta", 70)
	h.write(t, peer, []catalog.Export{svc("west-1", "alpha", 1), withPolicies(svc("west-1", "beta", 1), p70)})
	s = check(rec2, "watched change", map[string]*catalog.Policies{"alpha": nil, "beta": p70})
	if s.Resync {
		t.Errorf("a watched change came as a resync")
	}
}
