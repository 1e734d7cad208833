package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// TestPartition runs each cluster in its own network namespace, west-1
// behind 20 ms of netem delay, and sends the client's traffic to east-2
// (east-1's echo is down). Then east-2 is cut off from both other clusters
// by nftables drop rules: the client's traffic fails over to west-1, serf
// marks east-2 failed and the federation fences it, with a reason. After
// the rules are removed, with no other step, every control plane sees
// every member alive with the same view hash, and traffic returns to
// east-2.
func TestPartition(t *testing.T) {
	lab := newNetLab(t, 3)
	m := startMesh(t, meshSpec{lab: lab})
	east1, east2, west1 := m.cluster("east-1"), m.cluster("east-2"), m.cluster("west-1")
	if !lab.delay(west1.Index, "20ms") {
		t.Log("this kernel has no netem qdisc: west-1's link runs without the 20 ms delay")
	}

	l := m.startLoad(50, 180*time.Second)
	m.killEcho(east1)
	l.waitServedBy(t, "east-2", time.Now(), 30*time.Second)

	retries := m.routeRetries(t)
	rc0 := m.retryCounters(t)
	cutAt := time.Now()
	lab.isolate(east2.Index)
	switchedAt := l.waitServedBy(t, "west-1", cutAt, 60*time.Second)
	poll.Until(t, 60*time.Second, "east-2 failed and fenced on east-1 and west-1", func() error {
		for _, c := range []string{east1.Name, west1.Name} {
			s, err := m.status(m.cluster(c))
			if err != nil {
				return err
			}
			var state, reason string
			for _, mem := range s.Members {
				if mem.Name == east2.Name {
					state = mem.State
					if mem.Fenced {
						reason = mem.FenceReason
					}
				}
			}
			if state != "failed" || reason == "" {
				return fmt.Errorf("%s sees east-2 %q, fenced for %q", c, state, reason)
			}
			listed := false
			for _, f := range s.Fenced {
				listed = listed || (f.Name == east2.Name && f.Reason != "")
			}
			if !listed {
				return fmt.Errorf("%s's fenced peers %v lack east-2 with a reason", c, s.Fenced)
			}
		}
		return nil
	})
	fencedAt := time.Now()
	poll.Until(t, 60*time.Second, "east-2 sees both other clusters failed", func() error {
		s, err := m.status(east2)
		if err != nil {
			return err
		}
		for _, mem := range s.Members {
			if mem.Name == east2.Name {
				continue
			}
			if mem.State != "failed" {
				return fmt.Errorf("east-2 sees %s %s", mem.Name, mem.State)
			}
		}
		return nil
	})
	// Traffic stays on west-1 while east-2 is fenced.
	stayFrom := time.Now()
	poll.Until(t, 30*time.Second, "100 requests while east-2 is fenced", func() error {
		if n := len(l.Since(stayFrom)); n < 100 {
			return fmt.Errorf("%d so far", n)
		}
		return nil
	})
	healAt := time.Now()
	during := l.Between(cutAt, healAt)
	checkErrorsBounded(t, "failover from the partitioned east-2", during, rc0, m.retryCounters(t), retries)
	if late := failures(l.Between(switchedAt, healAt)); len(late) > 0 {
		t.Errorf("%d requests failed after traffic had moved to west-1: %s", len(late), summarize(late))
	}
	if wrong := l.Between(stayFrom, healAt); summarize(wrong) != fmt.Sprintf("west-1=%d", len(wrong)) {
		t.Errorf("while east-2 was fenced, traffic went to: %s; want only west-1", summarize(wrong))
	}

	lab.heal(east2.Index)
	poll.Until(t, 120*time.Second, "every control plane sees every member alive with one view hash", m.converged)
	convergedAt := time.Now()
	backAt := l.waitServedBy(t, "east-2", healAt, 90*time.Second)
	l.stop()
	if f := failures(l.Between(healAt, backAt)); len(f) > 0 {
		t.Errorf("%d requests failed while traffic returned to east-2: %s", len(f), summarize(f))
	}
	t.Logf("partition of east-2: traffic on west-1 %v after the cut (%d of %d requests failed before, error window %v: %s), east-2 fenced %v after the cut; healed: converged %v after, traffic back on east-2 %v after",
		switchedAt.Sub(cutAt).Round(time.Millisecond), len(failures(during)), len(during), errorWindow(during), summarize(failures(during)),
		fencedAt.Sub(cutAt).Round(time.Millisecond), convergedAt.Sub(healAt).Round(time.Millisecond), backAt.Sub(healAt).Round(time.Millisecond))
}
