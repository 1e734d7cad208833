package federation

import (
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation/fence"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store/storetest"
)

// fencedCount reads fedmesh_federation_fence_changes_total{direction="fenced"}.
func fencedCount(t *testing.T, n *node) float64 {
	t.Helper()
	var m dto.Metric
	if err := n.fed.met.fenceChanges.WithLabelValues("fenced").Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// memberOf returns the status of member name as n sees it; a zero
// status (no rule, no probe) when n does not know it yet.
func memberOf(t *testing.T, n *node, name string) MemberStatus {
	t.Helper()
	for _, m := range statusOf(t, n).Members {
		if m.Name == name {
			return m
		}
	}
	return MemberStatus{}
}

// echoHealth returns how many of cluster's echo endpoints n's view has,
// how many are healthy, and the health reason of one that is not.
func echoHealth(n *node, cluster string) (total, healthy int, reason string) {
	s := service(n.fed.View(), "echo")
	if s == nil {
		return 0, 0, ""
	}
	for _, ep := range s.Endpoints {
		if ep.Locality.Cluster != cluster {
			continue
		}
		total++
		if ep.Healthy {
			healthy++
		} else {
			reason = ep.HealthReason
		}
	}
	return total, healthy, reason
}

// TestPeerWithServingGatewayNotFenced: c01's control plane (serf, etcd)
// dies while its gateway and workload serve: c00, which probes c01's
// gateway through it to the workload's mTLS listener, sees serf report
// c01 failed and its catalog unreachable, and keeps c01's endpoints
// healthy (never fenced). Then c01's gateway dies too: c00 fences c01
// with the reason.
func TestPeerWithServingGatewayNotFenced(t *testing.T) {
	dp := startDataPlane(t, "c01")
	o := testOptions{fence: 2 * time.Second, probes: true}
	observer := startNode(t, 0, storetest.Config(t, clusterName(0)), o)
	victim := startNode(t, 1, storetest.Config(t, clusterName(1)), testOptions{fence: o.fence, gateway: dp.Gateway()})
	victim.join(t, observer)
	t.Cleanup(func() { observer.stopRun(t) })
	victim.setExports(t, []catalog.Export{export(victim.name, "echo", t0, 8080, "127.0.0.5")})

	poll.Until(t, time.Minute, "c00 sees c01's echo healthy and its gateway answering probes", func() error {
		if total, healthy, _ := echoHealth(observer, victim.name); total != 1 || healthy != 1 {
			return fmt.Errorf("%d of %d healthy", healthy, total)
		}
		m := memberOf(t, observer, victim.name)
		if m.GatewayProbe == nil || m.GatewayProbe.LastOK.IsZero() || m.FenceRule != fence.RuleHealthy {
			return fmt.Errorf("rule %s (%s), probe %+v", m.FenceRule, m.FenceDecision, m.GatewayProbe)
		}
		return nil
	})
	if n := dp.Refused.Load(); n != 0 {
		t.Errorf("the workload refused %d probe handshakes, want 0", n)
	}
	fenced0 := fencedCount(t, observer)

	victim.kill(t)
	poll.Until(t, time.Minute, "c00 sees c01's control plane gone and its gateway serving", func() error {
		m := memberOf(t, observer, victim.name)
		if m.Connected || m.FenceRule != fence.RuleGatewayServes {
			return fmt.Errorf("state %s, connected %v, rule %s (%s)", m.State, m.Connected, m.FenceRule, m.FenceDecision)
		}
		return nil
	})
	// The decision that holds while the gateway serves keeps the
	// endpoints; nothing fenced c01 on the way.
	m := memberOf(t, observer, victim.name)
	if m.Fenced {
		t.Errorf("c01 fenced: %s", m.FenceReason)
	}
	if total, healthy, reason := echoHealth(observer, victim.name); total != 1 || healthy != 1 {
		t.Errorf("c01's echo: %d of %d healthy (%s), want all", healthy, total, reason)
	}
	if n := fencedCount(t, observer); n != fenced0 {
		t.Errorf("fence changes to fenced: %v, want %v: c01 was fenced on the way", n, fenced0)
	}
	t.Logf("c01's control plane gone: %s", m.FenceDecision)

	dp.StopGateway()
	poll.Until(t, time.Minute, "c00 fences c01 once its gateway is gone too", func() error {
		m := memberOf(t, observer, victim.name)
		if !m.Fenced || (m.FenceRule != fence.RuleControlPlaneAndGatewayDown && m.FenceRule != fence.RuleGatewayDown) {
			return fmt.Errorf("fenced %v, rule %s (%s)", m.Fenced, m.FenceRule, m.FenceDecision)
		}
		if _, healthy, reason := echoHealth(observer, victim.name); healthy != 0 || reason == "" {
			return fmt.Errorf("%d healthy, reason %q", healthy, reason)
		}
		return nil
	})
	st := statusOf(t, observer)
	if len(st.Fenced) != 1 || st.Fenced[0].Name != victim.name || st.Fenced[0].Reason == "" {
		t.Errorf("fenced peers %+v, want c01 with a reason", st.Fenced)
	}
	t.Logf("c01's gateway gone too: fenced, %s", st.Fenced[0].Reason)
}

// TestDeadGatewayFencedWhileControlPlaneAlive: c01's control plane
// stays. Its gateway answers but finds no live endpoint: c01's live
// control plane stays the authority, nothing is fenced. Its gateway
// dies: after three unanswered probes c00 fences c01 (rule
// gateway_down); the gateway back, c01 is trusted again.
func TestDeadGatewayFencedWhileControlPlaneAlive(t *testing.T) {
	dp := startDataPlane(t, "c01")
	observer := startNode(t, 0, storetest.Config(t, clusterName(0)), testOptions{fence: time.Hour, probes: true})
	victim := startNode(t, 1, storetest.Config(t, clusterName(1)), testOptions{fence: time.Hour, gateway: dp.Gateway()})
	victim.join(t, observer)
	t.Cleanup(func() {
		observer.stopRun(t)
		victim.stopRun(t)
	})
	victim.setExports(t, []catalog.Export{export(victim.name, "echo", t0, 8080, "127.0.0.5")})
	poll.Until(t, time.Minute, "c00 probes c01's gateway", func() error {
		if m := memberOf(t, observer, victim.name); m.GatewayProbe == nil || m.GatewayProbe.LastOK.IsZero() || m.Fenced {
			return fmt.Errorf("fenced %v, probe %+v", m.Fenced, m.GatewayProbe)
		}
		return nil
	})
	dp.Route(t, false) // the gateway refuses: no healthy endpoint
	poll.Until(t, time.Minute, "c00's probes fail, refused", func() error {
		m := memberOf(t, observer, victim.name)
		if m.GatewayProbe == nil || m.GatewayProbe.Failures < 5 {
			return fmt.Errorf("probe %+v", m.GatewayProbe)
		}
		if m.Fenced || m.FenceRule != fence.RuleHealthy {
			t.Fatalf("c01 judged %s (%s) while its control plane is alive and its gateway answers", m.FenceRule, m.FenceDecision)
		}
		return nil
	})
	dp.Route(t, true)
	addr := dp.Gateway()
	dp.StopGateway()
	poll.Until(t, time.Minute, "c00 fences c01 for its gateway", func() error {
		if m := memberOf(t, observer, victim.name); !m.Fenced || m.FenceRule != fence.RuleGatewayDown || !m.Connected {
			return fmt.Errorf("fenced %v, connected %v, rule %s (%s)", m.Fenced, m.Connected, m.FenceRule, m.FenceDecision)
		}
		return nil
	})
	dp.StartGateway(t, victim.name, addr)
	poll.Until(t, time.Minute, "c00 trusts c01 again", func() error {
		if m := memberOf(t, observer, victim.name); m.Fenced || m.FenceRule != fence.RuleHealthy {
			return fmt.Errorf("fenced %v, rule %s (%s)", m.Fenced, m.FenceRule, m.FenceDecision)
		}
		return nil
	})
}
