package e2e

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/demo"
)

// TestDemoBounds runs `fedmesh demo --scenario bounds` with the demo's
// local timings, in a loopback block of its own: every outage is fenced
// by both other clusters and healed, the client is served by the peer
// again, and the proxies reconnect to the restarted control plane. The
// figures are logged, not judged: bench/README.md ("Static stability")
// holds them.
func TestDemoBounds(t *testing.T) {
	e := newEnv(t)
	base := netip.MustParseAddr(demoBase(reserveBlock(t)))
	out := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bs, err := demo.RunBounds(ctx, demo.Config{Binary: fedmeshBin, Dir: e.logDir, Clusters: 3, BaseAddress: base, Out: out},
		[]demo.Federation{demo.LocalFederation})
	if err != nil {
		t.Fatalf("bounds: %v\n%s", err, out)
	}
	if len(bs) != 1 {
		t.Fatalf("%d reports, want 1", len(bs))
	}
	b := bs[0]
	for name, o := range map[string]demo.Outage{"kill": b.Fence, "freeze": b.Partition} {
		for _, c := range []string{"east-1", "west-1"} {
			if f, ok := o.FencedSeconds[c]; !ok || f < 0 {
				t.Errorf("%s: %s never fenced east-2 (%v)", name, c, o.FencedSeconds)
			}
			if h, ok := o.HealedSeconds[c]; !ok || h < 0 {
				t.Errorf("%s: %s never trusted east-2 again (%v)", name, c, o.HealedSeconds)
			}
		}
		if o.TrafficBackSeconds < 0 {
			t.Errorf("%s: the client was never served by east-2 again", name)
		}
		if o.RequestsFirst5s == 0 || o.RequestsAfter == 0 {
			t.Errorf("%s: no requests counted (%d in the first 5s, %d after)", name, o.RequestsFirst5s, o.RequestsAfter)
		}
		t.Logf("%s: fenced %v, errors %d/%d first 5s, %d/%d after (%s); healed %v, traffic back %.1fs",
			name, o.FencedSeconds, o.ErrorsFirst5s, o.RequestsFirst5s, o.ErrorsAfter, o.RequestsAfter, o.LastError, o.HealedSeconds, o.TrafficBackSeconds)
	}
	if len(b.Reconnect) != len(demo.ReconnectOutages) {
		t.Fatalf("%d reconnect measurements, want %d", len(b.Reconnect), len(demo.ReconnectOutages))
	}
	for _, r := range b.Reconnect {
		if r.Proxies == 0 || r.FirstSeconds < 0 || r.AllSeconds < 0 {
			t.Errorf("after %.0fs down: %d proxies, first back %.1fs, all %.1fs; want every one back", r.OutageSeconds, r.Proxies, r.FirstSeconds, r.AllSeconds)
		}
		t.Logf("control plane down %.1fs: ready %.1fs after start, first proxy back %.1fs later, all %d %.1fs later",
			r.OutageSeconds, r.ReadySeconds, r.FirstSeconds, r.Proxies, r.AllSeconds)
	}
}
