package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// memberFencing is how one control plane judges a peer: fenced or not,
// the rule of federation/fence that decided and why.
type memberFencing struct {
	State    string `json:"state"`
	Fenced   bool   `json:"fenced"`
	Rule     string `json:"fenceRule"`
	Decision string `json:"fenceDecision"`
}

func (m *mesh) fencingOf(c demo.Cluster, peer string) (memberFencing, error) {
	var st struct {
		Members []struct {
			Name string `json:"name"`
			memberFencing
		} `json:"members"`
	}
	if err := m.admin.Get(c.Admin(), "/federation/v1/status", &st); err != nil {
		return memberFencing{}, err
	}
	for _, mem := range st.Members {
		if mem.Name == peer {
			return mem.memberFencing, nil
		}
	}
	return memberFencing{}, fmt.Errorf("%s does not know %s", c.Name, peer)
}

// waitGatewayServes waits until each of observers judges peer's control
// plane gone and keeps it for its serving gateway (rule gateway_serves),
// and checks it was not fenced meanwhile.
func (m *mesh) waitGatewayServes(t *testing.T, peer string, observers ...demo.Cluster) {
	t.Helper()
	for _, c := range observers {
		poll.Until(t, 60*time.Second, c.Name+" keeps "+peer+" for its serving gateway", func() error {
			f, err := m.fencingOf(c, peer)
			if err != nil {
				return err
			}
			if f.Fenced {
				t.Fatalf("%s fenced %s: %s (%s)", c.Name, peer, f.Decision, f.Rule)
			}
			if f.Rule != "gateway_serves" {
				return fmt.Errorf("%s judges %s %s: %s (%s)", c.Name, peer, f.State, f.Decision, f.Rule)
			}
			return nil
		})
		f, _ := m.fencingOf(c, peer)
		t.Logf("%s on %s: %s", c.Name, peer, f.Decision)
	}
}

// servedOnlyBy fails the test unless every sample succeeded on cluster.
func servedOnlyBy(t *testing.T, what, cluster string, samples []demo.Sample) {
	t.Helper()
	var wrong []demo.Sample
	for _, s := range samples {
		if s.Err != nil || s.Cluster != cluster {
			wrong = append(wrong, s)
		}
	}
	if len(samples) == 0 {
		t.Errorf("%s: no request", what)
	}
	if len(wrong) > 0 {
		t.Errorf("%s: %d of %d requests failed or left %s: %s", what, len(wrong), len(samples), cluster, summarize(wrong))
	}
}

// TestControlPlaneKilledGatewayServes sends the client's traffic to
// east-2 (east-1's echo is down) and kills east-2's control plane only:
// its gateway and echo replicas keep serving, so east-1 and west-1 keep
// east-2 trusted (their probes of its gateway succeed) and no request
// fails or changes cluster.
func TestControlPlaneKilledGatewayServes(t *testing.T) {
	m := startMesh(t, meshSpec{})
	east1, east2, west1 := m.cluster("east-1"), m.cluster("east-2"), m.cluster("west-1")
	l := m.startLoad(50, 120*time.Second)
	m.killEcho(east1)
	l.waitServedBy(t, east2.Name, time.Now(), 30*time.Second)

	killedAt := time.Now()
	m.kill(cpName(east2))
	m.waitGatewayServes(t, east2.Name, east1, west1)
	judgedAt := time.Now()
	// Three more seconds of traffic (150 requests at 50/s) after both
	// judged east-2's control plane gone.
	poll.Until(t, 30*time.Second, "150 requests after the judgement", func() error {
		if n := len(l.Since(judgedAt)); n < 150 {
			return fmt.Errorf("%d so far", n)
		}
		return nil
	})
	for _, c := range []demo.Cluster{east1, west1} {
		if f, err := m.fencingOf(c, east2.Name); err != nil || f.Fenced {
			t.Errorf("%s on east-2: %+v %v", c.Name, f, err)
		}
	}
	samples := l.Since(killedAt)
	servedOnlyBy(t, "after east-2's control plane was killed", east2.Name, samples)
	t.Logf("east-2's control plane killed: %d requests, all served by east-2 (%s); judged gone and kept for its gateway %v after the kill",
		len(samples), summarize(samples), judgedAt.Sub(killedAt).Round(time.Millisecond))

	// Now east-2's gateway dies too (kill -9): a dead cluster is fenced
	// by both observers, and the traffic goes to west-1.
	gwKilledAt := time.Now()
	m.kill(gatewayName(east2))
	l.waitServedBy(t, west1.Name, gwKilledAt, 30*time.Second)
	for _, c := range []demo.Cluster{east1, west1} {
		poll.Until(t, 60*time.Second, c.Name+" fences east-2", func() error {
			f, err := m.fencingOf(c, east2.Name)
			if err != nil {
				return err
			}
			if !f.Fenced {
				return fmt.Errorf("%s judges east-2 %s: %s", c.Name, f.Rule, f.Decision)
			}
			return nil
		})
	}
	t.Logf("east-2's gateway killed too: fenced by east-1 and west-1 within %v (with this test's 5s fence period, local gossip profile, default probes)",
		time.Since(gwKilledAt).Round(100*time.Millisecond))
	l.stop()
}

// TestControlPlaneRestartedWhilePeersDown: the client's traffic goes to
// east-2 (east-1's echo is down); east-2's and west-1's control planes
// are killed (their gateways and echo replicas serve on), then east-1's
// control plane is killed and restarted. Starting from its persisted
// imports, it probes the peers' gateways and fences neither: the client
// keeps being served by east-2, with no failed request.
func TestControlPlaneRestartedWhilePeersDown(t *testing.T) {
	m := startMesh(t, meshSpec{})
	east1, east2, west1 := m.cluster("east-1"), m.cluster("east-2"), m.cluster("west-1")
	l := m.startLoad(50, 180*time.Second)
	m.killEcho(east1)
	l.waitServedBy(t, east2.Name, time.Now(), 30*time.Second)

	downAt := time.Now()
	m.kill(cpName(east2))
	m.kill(cpName(west1))
	m.waitGatewayServes(t, east2.Name, east1)
	m.waitGatewayServes(t, west1.Name, east1)

	m.kill(cpName(east1))
	restartedAt := time.Now()
	cp := m.restart(cpName(east1))
	waitReady(t, cp, east1.Admin())
	m.waitGatewayServes(t, east2.Name, east1)
	m.waitGatewayServes(t, west1.Name, east1)
	// The client's sidecar takes its configuration from the restarted
	// control plane: what it serves from now on is that control plane's
	// judgement.
	poll.Until(t, 90*time.Second, "the client's sidecar reconnects to the restarted control plane", func() error {
		if v := metric(scrape(t, m.clientAdmin+"/stats/prometheus"), "fedmesh_xds_connected"); v != 1 {
			return fmt.Errorf("fedmesh_xds_connected = %v", v)
		}
		return nil
	})
	reconnectedAt := time.Now()
	poll.Until(t, 30*time.Second, "150 requests after the reconnect", func() error {
		if n := len(l.Since(reconnectedAt)); n < 150 {
			return fmt.Errorf("%d so far", n)
		}
		return nil
	})
	for _, peer := range []string{east2.Name, west1.Name} {
		if f, err := m.fencingOf(east1, peer); err != nil || f.Fenced {
			t.Errorf("restarted east-1 on %s: %+v %v", peer, f, err)
		}
	}
	l.stop()
	samples := l.Since(downAt)
	servedOnlyBy(t, "while the peers' control planes were down and east-1's restarted", east2.Name, samples)
	t.Logf("east-1's control plane restarted with its peers' down: %d requests since the peers went down, all on east-2 (%s); client reconnected %v after the restart",
		len(samples), summarize(samples), reconnectedAt.Sub(restartedAt).Round(time.Millisecond))
}
