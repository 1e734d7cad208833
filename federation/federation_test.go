package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/merge"
	"github.com/fedmesh/fedmesh/federation/proof/prooftest"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store/storetest"
)

// agree checks that every node's view holds every cluster's base exports,
// healthy, and that all views hash equal.
func agree(nodes []*node) func() error {
	return func() error {
		var hashes []string
		for _, n := range nodes {
			v := n.fed.View()
			if v == nil {
				return fmt.Errorf("%s: no view", n.name)
			}
			if got, want := len(v.Services), len(nodes)+1; got != want {
				return fmt.Errorf("%s: %d services, want %d", n.name, got, want)
			}
			echo := service(v, "echo")
			if echo == nil || len(echo.Endpoints) != 2*len(nodes) {
				return fmt.Errorf("%s: echo not merged from every cluster: %+v", n.name, echo)
			}
			for _, ep := range echo.Endpoints {
				if !ep.Healthy {
					return fmt.Errorf("%s: endpoint %s of %s unhealthy: %s", n.name, ep.Address, ep.Locality.Cluster, ep.HealthReason)
				}
			}
			hashes = append(hashes, merge.Hash(v))
		}
		if len(slices.Compact(slices.Clone(hashes))) != 1 {
			return fmt.Errorf("view hashes differ: %v", hashes)
		}
		return nil
	}
}

func TestFederate(t *testing.T) {
	tests := []struct {
		name     string
		clusters int
	}{
		{name: "3 clusters", clusters: 3},
		{name: "10 clusters", clusters: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := startCluster(t, tt.clusters, testOptions{fence: 5 * time.Second})
			for i, n := range nodes {
				n.setExports(t, baseExports(i))
			}
			poll.Until(t, 3*time.Minute, "every view equal and complete", agree(nodes))

			// The oldest echo export (c00's) sets the ports; every view
			// knows every cluster's locality, gateway and address ranges.
			v := nodes[len(nodes)-1].fed.View()
			for i := range nodes {
				ci, ok := v.Clusters[clusterName(i)]
				if !ok || ci.Locality != locality(i) || ci.GatewayAddress != fmt.Sprintf("127.0.0.1:%d", 20000+i) ||
					!slices.Equal(ci.CIDRs, cidrs(i)) {
					t.Errorf("cluster %s in the view of %s: %+v", clusterName(i), v.Local, ci)
				}
			}

			// One endpoint change in the last cluster reaches the first.
			last := len(nodes) - 1
			changed := baseExports(last)
			changed[0].Endpoints[0].Ready = false
			changed[0].Endpoints[0].Serving = false
			nodes[last].setExports(t, changed)
			poll.Until(t, time.Minute, "change propagated", func() error {
				for _, ep := range service(nodes[0].fed.View(), "echo").Endpoints {
					if ep.Locality.Cluster == clusterName(last) && ep.Address == changed[0].Endpoints[0].Address {
						if ep.Healthy || ep.HealthReason != merge.HealthNotReady {
							return fmt.Errorf("endpoint %+v, want not ready", ep)
						}
						return nil
					}
				}
				return fmt.Errorf("endpoint missing")
			})
		})
	}
}

// TestKillAndRestart kills one control plane: its peers fence its
// endpoints (kept, unhealthy, with a reason). Restarted from the same data
// dir and before it rejoins anyone, it serves its persisted imports; once
// it rejoins, everyone agrees again.
func TestKillAndRestart(t *testing.T) {
	const fence = 2 * time.Second
	nodes := startCluster(t, 3, testOptions{fence: fence})
	for i, n := range nodes {
		n.setExports(t, baseExports(i))
	}
	poll.Until(t, 2*time.Minute, "federated", agree(nodes))

	victim := nodes[2]
	// What the victim persisted lags its view a little: let it catch up,
	// so that the restart below has everything to serve.
	poll.Until(t, time.Minute, victim.name+" persisted its imports", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		imports, err := victim.st.ListImports(ctx)
		if err != nil {
			return err
		}
		for _, peer := range []string{"c00", "c01"} {
			if got := len(imports[peer].Exports); got != 2 {
				return fmt.Errorf("%d exports of %s persisted, want 2", got, peer)
			}
		}
		return nil
	})
	victim.kill(t)
	survivors := nodes[:2]
	for _, n := range survivors {
		poll.Until(t, time.Minute, n.name+" fences "+victim.name, func() error {
			v := n.fed.View()
			ci := v.Clusters[victim.name]
			if !ci.Fenced {
				return fmt.Errorf("%s not fenced: %+v", victim.name, ci)
			}
			echo := service(v, "echo")
			var kept int
			for _, ep := range echo.Endpoints {
				if ep.Locality.Cluster != victim.name {
					continue
				}
				kept++
				if ep.Healthy || !strings.HasPrefix(ep.HealthReason, "cluster "+victim.name+" fenced: ") {
					return fmt.Errorf("endpoint %s: healthy=%v reason=%q", ep.Address, ep.Healthy, ep.HealthReason)
				}
			}
			if kept != 2 {
				return fmt.Errorf("%d endpoints of %s kept, want 2", kept, victim.name)
			}
			return nil
		})
		poll.Until(t, time.Minute, n.name+" sees "+victim.name+" failed", func() error {
			for _, m := range statusOf(t, n).Members {
				if m.Name == victim.name && m.State != "failed" {
					return fmt.Errorf("state %s", m.State)
				}
			}
			return nil
		})
		st := statusOf(t, n)
		if len(st.Fenced) != 1 || st.Fenced[0].Name != victim.name || st.Fenced[0].Reason == "" {
			t.Errorf("status of %s: fenced = %+v, want %s with a reason", n.name, st.Fenced, victim.name)
		}
	}

	// Restart from the same data dir, joined to nobody: the persisted
	// imports are served at once, and healthy (the fence period has not
	// passed since the start).
	// Gossip comes back on the same address, as a restarted control plane
	// does on its fixed port.
	_, port, err := net.SplitHostPort(victim.mem.Local().Addr)
	if err != nil {
		t.Fatal(err)
	}
	bindPort, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	restarted := startNode(t, victim.i, victim.scfg, testOptions{fence: time.Hour, bindPort: bindPort})
	var first *catalog.View
	select {
	case first = <-restarted.views:
	case <-time.After(30 * time.Second):
		t.Fatal("restarted node published no view")
	}
	if first.Revision != 1 {
		t.Fatalf("first view has revision %d, want 1", first.Revision)
	}
	echo := service(first, "echo")
	if echo == nil {
		t.Fatalf("no echo in the first view after the restart: %+v", first)
	}
	byCluster := map[string]int{}
	for _, ep := range echo.Endpoints {
		if !ep.Healthy {
			t.Errorf("persisted endpoint %s of %s unhealthy: %s", ep.Address, ep.Locality.Cluster, ep.HealthReason)
		}
		byCluster[ep.Locality.Cluster]++
	}
	if diff := cmp.Diff(map[string]int{"c00": 2, "c01": 2}, byCluster); diff != "" {
		t.Errorf("echo endpoints by cluster in the first view after the restart (-want +got):\n%s", diff)
	}

	restarted.setExports(t, baseExports(victim.i))
	restarted.join(t, nodes[0])
	all := []*node{nodes[0], nodes[1], restarted}
	poll.Until(t, 2*time.Minute, "federated again", agree(all))
	for _, n := range all {
		poll.Until(t, time.Minute, n.name+" unfenced", func() error {
			if st := statusOf(t, n); len(st.Fenced) != 0 {
				return fmt.Errorf("fenced: %+v", st.Fenced)
			}
			return nil
		})
	}
}

// TestConflicts exports one service with different ports from two
// clusters: the oldest export wins in every view, and the conditions show
// in the status, also through the admin handler.
func TestConflicts(t *testing.T) {
	nodes := startCluster(t, 2, testOptions{fence: 5 * time.Second})
	nodes[0].setExports(t, []catalog.Export{export("c00", "clash", t0.Add(time.Hour), 8080, "127.0.1.1")})
	nodes[1].setExports(t, []catalog.Export{export("c01", "clash", t0, 9090, "127.0.2.1")})

	want := []Conflict{
		{Service: "demo/clash", Cluster: "c00", Reason: catalog.ReasonPortConflict,
			Message: "export from c00 conflicts with the oldest export, from c01: ports [http:8080/TCP], not [http:9090/TCP]"},
		{Service: "demo/clash", Cluster: "c01", Reason: catalog.ReasonPortConflict,
			Message: "oldest export, from c01, wins; conflicting exports: c00 (PortConflict)"},
	}
	for _, n := range nodes {
		srv := httptest.NewServer(n.fed.Handler())
		poll.Until(t, 2*time.Minute, n.name+" reports the conflict", func() error {
			resp, err := http.Get(srv.URL + StatusPath)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var st Status
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				return err
			}
			if diff := cmp.Diff(want, st.Conflicts); diff != "" {
				return fmt.Errorf("conflicts (-want +got):\n%s", diff)
			}
			return nil
		})
		srv.Close()
		clash := service(n.fed.View(), "clash")
		if got := clash.Ports[0].Port; got != 9090 {
			t.Errorf("%s: merged port %d, want the oldest export's 9090", n.name, got)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	st := storetest.Open(t, "c00")
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "bad cluster", cfg: Config{Cluster: "C_0", Store: st}},
		{name: "no store", cfg: Config{Cluster: "c00"}},
		{name: "no membership", cfg: Config{Cluster: "c00", Store: st}},
		// A typed nil: New only looks at whether one is given.
		{name: "no prover", cfg: Config{Cluster: "c00", Store: st, Membership: (*membership.Membership)(nil)}},
		{name: "negative proof backoff", cfg: Config{Cluster: "c00", Store: st, Membership: (*membership.Membership)(nil),
			Prover: prooftest.Default(t).ControlPlane(t, "c00").Prover, MaxProofBackoff: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
}

// Status before Run answers ErrNotRunning at once rather than waiting for
// a loop that has not started.
func TestStatusBeforeRun(t *testing.T) {
	name := clusterName(1)
	st := storetest.Open(t, name)
	mem, err := membership.New(membership.Config{
		NodeName: name, Locality: locality(1), GatewayAddr: "127.0.0.1:15443", BindAddr: "127.0.0.1", Keys: [][]byte{testKey},
		CatalogAddr: st.ClientURL(), Profile: membership.ProfileLocal, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Shutdown() })
	prover := prooftest.Default(t).ControlPlane(t, name).Prover
	fed, err := New(Config{Cluster: name, Locality: locality(1), Store: st, Membership: mem, Prover: prover, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// The deadline only bounds a Status that wrongly waits.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := fed.Status(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Status before Run = %v, want ErrNotRunning", err)
	}
}
