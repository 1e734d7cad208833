package federation

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/proof"
	"github.com/fedmesh/fedmesh/federation/proof/prooftest"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store/storetest"
)

// peerStatus is n's status of peer, or an error if n has no such member.
func peerStatus(tb testing.TB, n *node, peer string) (MemberStatus, error) {
	for _, m := range statusOf(tb, n).Members {
		if m.Name == peer {
			return m, nil
		}
	}
	return MemberStatus{}, fmt.Errorf("%s has no member %s", n.name, peer)
}

// TestReplicasAreOnePeer runs cluster c00 as two control plane replicas
// (each its own etcd with the same exports, as every replica runs the
// source) beside c01. c01 sees one peer c00 with both replicas proven; a
// third member claiming c00 without c00's certificate is not trusted;
// the replica c01 follows is killed: c01 follows the other one, keeps
// c00 alive and never fences it.
func TestReplicasAreOnePeer(t *testing.T) {
	o := testOptions{fence: 10 * time.Second}
	r0 := startNode(t, 0, storetest.Config(t, clusterName(0)), testOptions{fence: o.fence, replica: "cp-0"})
	r1 := startNode(t, 0, storetest.Config(t, clusterName(0)), testOptions{fence: o.fence, replica: "cp-1"})
	b := startNode(t, 1, storetest.Config(t, clusterName(1)), o)
	for _, n := range []*node{r0, r1, b} {
		t.Cleanup(func() { n.stopRun(t) })
	}
	for _, r := range []*node{r0, r1} {
		r.setExports(t, baseExports(0))
	}
	b.setExports(t, baseExports(1))
	r1.join(t, r0)
	b.join(t, r0)

	poll.Until(t, time.Minute, "c01 trusts both replicas of c00 as one peer", func() error {
		m, err := peerStatus(t, b, "c00")
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{"c00.cp-0", "c00.cp-1"}, m.Replicas); diff != "" {
			return fmt.Errorf("replicas (-want +got):\n%s", diff)
		}
		if !m.Connected || m.Identity != cpID("c00") || m.Exports != 2 {
			return fmt.Errorf("c00 on c01: %+v", m)
		}
		return nil
	})
	for _, r := range []*node{r0, r1} {
		poll.Until(t, time.Minute, "replica "+r.mem.Local().Name+" imports c01", func() error {
			if service(r.fed.View(), "own-c01") == nil {
				return errors.New("no own-c01 in the view")
			}
			st := statusOf(t, r)
			for _, m := range st.Members {
				if !m.Local && m.Name != "c01" {
					return fmt.Errorf("a replica counts %s as a peer", m.Name)
				}
			}
			return nil
		})
	}

	// An impostor: a member of c00 with another cluster's certificate.
	other := prooftest.Default(t).Cert(t, "c05", cpID("c05"))
	evil := startNode(t, 0, storetest.Config(t, clusterName(0)), testOptions{fence: o.fence, replica: "evil", cert: &other})
	t.Cleanup(func() { evil.stopRun(t) })
	evil.setExports(t, []catalog.Export{export("c00", "hijack", t0, 80, "127.0.0.66")})
	evil.join(t, b)
	poll.Until(t, time.Minute, "c01 refuses c00.evil", func() error {
		u, ok := untrusted(t, b)["c00.evil"]
		if !ok || u.Reason != proof.ReasonWrongCluster {
			return fmt.Errorf("c00.evil on c01: %+v, want untrusted for %s", u, proof.ReasonWrongCluster)
		}
		return nil
	})
	if m, err := peerStatus(t, b, "c00"); err != nil || m.Fenced || len(m.Replicas) != 2 {
		t.Errorf("c00 on c01 with an impostor about: %+v, %v", m, err)
	}
	if s := service(b.fed.View(), "hijack"); s != nil {
		t.Errorf("c01 imports the impostor's export: %+v", s)
	}
	evil.kill(t)

	// Kill the replica c01 replicates from; c01 moves to the other.
	m, err := peerStatus(t, b, "c00")
	if err != nil {
		t.Fatal(err)
	}
	followed, survivor := r0, r1
	if m.CatalogAddress == r1.st.ClientURL() {
		followed, survivor = r1, r0
	}
	followed.kill(t)
	survivor.setExports(t, append(baseExports(0), export("c00", "after-kill", t0, 80, "127.0.1.9")))
	poll.Until(t, time.Minute, "c01 replicates the surviving replica", func() error {
		if service(b.fed.View(), "after-kill") == nil {
			return errors.New("no after-kill in c01's view")
		}
		m, err := peerStatus(t, b, "c00")
		if err != nil {
			return err
		}
		if m.CatalogAddress != survivor.st.ClientURL() || m.State != string(membership.StatusAlive) || !m.Connected {
			return fmt.Errorf("c00 on c01: %+v", m)
		}
		return nil
	})
	if n := value(t, b.fed.met.fenceChanges.WithLabelValues("fenced")); n != 0 {
		t.Errorf("c01 fenced a peer %v times, want never", n)
	}
	if s := service(b.fed.View(), "echo"); s == nil {
		t.Error("no echo in c01's view")
	}
}
