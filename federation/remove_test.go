package federation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// persistedPeers lists the peers whose imports n's etcd holds.
func persistedPeers(n *node) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	imports, err := n.st.ListImports(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for name, pi := range imports {
		if len(pi.Exports) > 0 || pi.State.Revision != 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// viewClusters lists the clusters of n's view and of the endpoints of
// its echo service.
func viewClusters(n *node) (clusters, echo []string, err error) {
	v := n.fed.View()
	if v == nil {
		return nil, nil, errors.New("no view")
	}
	for name := range v.Clusters {
		clusters = append(clusters, name)
	}
	slices.Sort(clusters)
	if s := service(v, "echo"); s != nil {
		for _, ep := range s.Endpoints {
			if !slices.Contains(echo, ep.Locality.Cluster) {
				echo = append(echo, ep.Locality.Cluster)
			}
		}
	}
	slices.Sort(echo)
	return clusters, echo, nil
}

// removed checks that every node of nodes sees exactly the clusters
// named, in its view, its echo endpoints, its status and its etcd.
func removed(nodes []*node, want []string) func() error {
	return func() error {
		for _, n := range nodes {
			clusters, echo, err := viewClusters(n)
			if err != nil {
				return fmt.Errorf("%s: %w", n.name, err)
			}
			if d := cmp.Diff(want, clusters); d != "" {
				return fmt.Errorf("%s: view clusters (-want +got):\n%s", n.name, d)
			}
			if d := cmp.Diff(want, echo); d != "" {
				return fmt.Errorf("%s: echo endpoints by cluster (-want +got):\n%s", n.name, d)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			st, err := n.fed.Status(ctx)
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", n.name, err)
			}
			var members []string
			for _, m := range st.Members {
				members = append(members, m.Name)
			}
			slices.Sort(members)
			if d := cmp.Diff(want, members); d != "" {
				return fmt.Errorf("%s: status members (-want +got):\n%s", n.name, d)
			}
			persisted, err := persistedPeers(n)
			if err != nil {
				return err
			}
			peers := slices.DeleteFunc(slices.Clone(want), func(s string) bool { return s == n.name })
			if d := cmp.Diff(peers, persisted, cmpopts.EquateEmpty()); d != "" {
				return fmt.Errorf("%s: peers with persisted imports (-want +got):\n%s", n.name, d)
			}
		}
		return nil
	}
}

// persistedAll waits until every node persisted every other's exports.
func persistedAll(t *testing.T, nodes []*node) {
	t.Helper()
	var names []string
	for _, n := range nodes {
		names = append(names, n.name)
	}
	for _, n := range nodes {
		want := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == n.name })
		poll.Until(t, time.Minute, n.name+" persisted every peer", func() error {
			got, err := persistedPeers(n)
			if err != nil {
				return err
			}
			if d := cmp.Diff(want, got); d != "" {
				return fmt.Errorf("(-want +got):\n%s", d)
			}
			return nil
		})
	}
}

// TestLeftPeerIsRemoved: a control plane that leaves the federation on
// purpose disappears from every other view, status and etcd, as a serf
// member that leaves disappears from Consul.
func TestLeftPeerIsRemoved(t *testing.T) {
	nodes := startCluster(t, 3, testOptions{fence: 5 * time.Second})
	for i, n := range nodes {
		n.setExports(t, baseExports(i))
	}
	poll.Until(t, 2*time.Minute, "federated", agree(nodes))
	persistedAll(t, nodes)

	leaver := nodes[2]
	leaver.stopRun(t)
	if err := leaver.mem.Leave(); err != nil {
		t.Fatal(err)
	}
	leaver.kill(t)
	poll.Until(t, time.Minute, leaver.name+" removed everywhere", removed(nodes[:2], []string{"c00", "c01"}))
}

// TestFailedPeerFencedUntilForgotten: a control plane that fails stays
// in every view, fenced, with its persisted imports, so its traffic comes
// back when it does; forgotten with ForceLeave on one member, it is
// removed everywhere.
func TestFailedPeerFencedUntilForgotten(t *testing.T) {
	nodes := startCluster(t, 3, testOptions{fence: 2 * time.Second})
	for i, n := range nodes {
		n.setExports(t, baseExports(i))
	}
	poll.Until(t, 2*time.Minute, "federated", agree(nodes))
	persistedAll(t, nodes)

	victim := nodes[2]
	survivors := nodes[:2]
	victim.kill(t)
	for _, n := range survivors {
		poll.Until(t, time.Minute, n.name+" fences "+victim.name, func() error {
			st := statusOf(t, n)
			if len(st.Fenced) != 1 || st.Fenced[0].Name != victim.name || st.Fenced[0].Reason != ReasonFailed {
				return fmt.Errorf("fenced %+v, want %s: %s", st.Fenced, victim.name, ReasonFailed)
			}
			return nil
		})
	}
	// Still there, fenced, with its imports: failing is not leaving.
	if err := removed(survivors, []string{"c00", "c01", "c02"})(); err != nil {
		t.Fatalf("a failed peer was removed: %v", err)
	}

	if err := survivors[0].mem.ForceLeave(survivors[1].name); !errors.Is(err, membership.ErrMemberAlive) {
		t.Errorf("ForceLeave of an alive member = %v, want ErrMemberAlive", err)
	}
	if err := survivors[0].mem.ForceLeave(victim.name); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, victim.name+" removed everywhere", removed(survivors, []string{"c00", "c01"}))
}

// TestForgetPeerUnknownToGossip restarts a control plane alone, so that
// it knows a peer only from its persisted imports: forgetting it removes
// it although serf has nothing to report.
func TestForgetPeerUnknownToGossip(t *testing.T) {
	nodes := startCluster(t, 2, testOptions{fence: 2 * time.Second})
	for i, n := range nodes {
		n.setExports(t, baseExports(i))
	}
	poll.Until(t, 2*time.Minute, "federated", agree(nodes))
	persistedAll(t, nodes)

	n := nodes[0]
	n.kill(t)
	nodes[1].kill(t)
	restarted := startNode(t, n.i, n.scfg, testOptions{fence: 2 * time.Second})
	select {
	case <-restarted.views: // Run is running
	case <-time.After(30 * time.Second):
		t.Fatal("restarted node published no view")
	}
	restarted.setExports(t, baseExports(n.i))
	poll.Until(t, time.Minute, "the persisted peer is fenced", func() error {
		st := statusOf(t, restarted)
		if len(st.Fenced) != 1 || st.Fenced[0].Name != "c01" {
			return fmt.Errorf("fenced %+v, want c01", st.Fenced)
		}
		return nil
	})
	if err := restarted.mem.ForceLeave("c01"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "c01 removed", removed([]*node{restarted}, []string{"c00"}))
}
