package federation

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/proof"
	"github.com/fedmesh/fedmesh/federation/proof/prooftest"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store/storetest"
	"github.com/fedmesh/fedmesh/topology"
)

// startIntruder runs a plain serf node, as `serf agent -encrypt KEY
// -tag cluster=NAME ...` does: the federation's gossip key and
// fedmesh-shaped tags announcing catalog, and no control plane behind
// them. It joins the gossip at joinAddr and leaves when the test ends.
func startIntruder(tb testing.TB, name, catalog, joinAddr string) {
	tb.Helper()
	keyring, err := memberlist.NewKeyring(nil, testKey)
	if err != nil {
		tb.Fatal(err)
	}
	ml := memberlist.DefaultLocalConfig()
	ml.Name = name
	ml.BindAddr = "127.0.0.1"
	ml.BindPort = 0
	ml.Keyring = keyring
	ml.GossipVerifyIncoming = true
	ml.GossipVerifyOutgoing = true
	ml.LogOutput = io.Discard
	sc := serf.DefaultConfig()
	sc.NodeName = name
	sc.MemberlistConfig = ml
	sc.LogOutput = io.Discard
	sc.Tags = membership.MemberInfo{
		Cluster:         name,
		Locality:        topology.Locality{Region: "r0", Zone: "a", Cluster: name},
		GatewayAddr:     "127.0.0.1:29999",
		CatalogAddr:     catalog,
		ProtocolVersion: membership.ProtocolVersion,
		InstanceID:      "0123456789abcdef",
	}.Encode()
	s, err := serf.Create(sc)
	if err != nil {
		tb.Fatalf("serf agent %s: %v", name, err)
	}
	tb.Cleanup(func() { _ = s.Shutdown() })
	if _, err := s.Join([]string{joinAddr}, true); err != nil {
		tb.Fatalf("serf agent %s joins %s: %v", name, joinAddr, err)
	}
}

// intruderExports is what an intruder would like the federation to
// import: a service of its own and a share of echo.
func intruderExports(cluster string) []catalog.Export {
	return []catalog.Export{
		export(cluster, "echo", t0, 8080, "127.9.0.1"),
		export(cluster, "stolen-"+cluster, t0, 9090, "127.9.0.2"),
	}
}

// untrusted returns a node's untrusted members by name.
func untrusted(tb testing.TB, n *node) map[string]UntrustedMember {
	out := map[string]UntrustedMember{}
	for _, u := range statusOf(tb, n).Untrusted {
		out[u.Name] = u
	}
	return out
}

// etcdUsers lists the users of a node's etcd.
func etcdUsers(tb testing.TB, n *node) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := n.st.Client().UserList(ctx)
	if err != nil {
		tb.Fatalf("users of %s's etcd: %v", n.name, err)
	}
	users := slices.Clone(resp.Users)
	sort.Strings(users)
	return users
}

// TestIntrudersNotTrusted: serf nodes that hold the gossip key and
// announce fedmesh tags, but cannot prove a control plane identity of the
// federation, are never granted read access, never replicated from (each
// has a real etcd with exports behind its catalog address), never shown
// as members, and counted by reason; a real cluster joining meanwhile is
// trusted and replicated as before.
func TestIntrudersNotTrusted(t *testing.T) {
	o := testOptions{fence: 5 * time.Second}
	nodes := startCluster(t, 2, o)
	for i, n := range nodes {
		n.setExports(t, baseExports(i))
	}
	poll.Until(t, 2*time.Minute, "federated", agree(nodes))

	// evil-1 serves its exports from a plain http etcd, as the stock
	// agent's operator can.
	plain := storetest.Open(t, "evil-1")
	// evil-2 points at c01's real catalog, which presents c01's identity.
	// evil-3 serves from an https etcd whose certificate names evil-3,
	// minted by c00's cluster CA (a CA that is not evil-3's).
	minted := prooftest.Default(t).ControlPlaneWith(t, prooftest.Default(t).Cert(t, "c00", cpID("evil-3")))
	mintedStore := storetest.OpenConfig(t, minted.Store(t, storetest.Config(t, "evil-3")))
	for _, s := range []struct {
		set  func(context.Context, []catalog.Export) (int64, error)
		name string
	}{{plain.SetExports, "evil-1"}, {mintedStore.SetExports, "evil-3"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := s.set(ctx, intruderExports(s.name)); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	intruders := map[string]string{ // name -> the reason it is refused
		"evil-1": proof.ReasonNotTLS,
		"evil-2": proof.ReasonWrongCluster,
		"evil-3": proof.ReasonWrongIssuer,
	}
	startIntruder(t, "evil-1", plain.ClientURL(), nodes[0].mem.Local().Addr)
	startIntruder(t, "evil-2", nodes[1].st.ClientURL(), nodes[0].mem.Local().Addr)
	startIntruder(t, "evil-3", mintedStore.ClientURL(), nodes[1].mem.Local().Addr)

	// A real cluster joins meanwhile.
	joined := startNode(t, 2, storetest.Config(t, clusterName(2)), o)
	joined.setExports(t, baseExports(2))
	joined.join(t, nodes[0])
	all := append(slices.Clone(nodes), joined)
	poll.Until(t, 2*time.Minute, "the new cluster federated", agree(all))

	// Every control plane has tried every intruder more than once.
	for _, n := range all {
		poll.Until(t, time.Minute, n.name+" refuses the intruders", func() error {
			got := untrusted(t, n)
			for name, reason := range intruders {
				u, ok := got[name]
				if !ok || u.Reason != reason || u.Attempts < 2 || u.Error == "" || u.State != "alive" {
					return fmt.Errorf("%s: %+v, want refused for %s after 2 attempts or more", name, u, reason)
				}
			}
			if len(got) != len(intruders) {
				return fmt.Errorf("untrusted %v, want only the intruders", got)
			}
			return nil
		})
	}

	for _, n := range all {
		st := statusOf(t, n)
		var members []string
		for _, m := range st.Members {
			members = append(members, m.Name)
			if !m.Local && m.Identity != cpID(m.Name) {
				t.Errorf("%s: member %s proved %q, want %s", n.name, m.Name, m.Identity, cpID(m.Name))
			}
		}
		sort.Strings(members)
		if diff := cmp.Diff([]string{"c00", "c01", "c02"}, members); diff != "" {
			t.Errorf("%s: members (-want +got):\n%s", n.name, diff)
		}
		v := n.fed.View()
		for name := range intruders {
			if _, ok := v.Clusters[name]; ok {
				t.Errorf("%s: intruder %s is a cluster of the view", n.name, name)
			}
			if s := service(v, "stolen-"+name); s != nil {
				t.Errorf("%s: the view imports %s's export: %+v", n.name, name, s)
			}
		}
		for _, ep := range service(v, "echo").Endpoints {
			if strings.HasPrefix(ep.Locality.Cluster, "evil") {
				t.Errorf("%s: echo endpoint %s from %s", n.name, ep.Address, ep.Locality.Cluster)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		imports, err := n.st.ListImports(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for peer := range imports {
			if strings.HasPrefix(peer, "evil") {
				t.Errorf("%s persisted imports of intruder %s", n.name, peer)
			}
		}
		var want []string
		for _, p := range all {
			if p != n {
				want = append(want, "fedmesh-cp-"+p.name)
			}
		}
		// Grants are written in the background: wait for the peers'.
		poll.Until(t, time.Minute, n.name+" grants its peers, and only them", func() error {
			if diff := cmp.Diff(want, etcdUsers(t, n)); diff != "" {
				return fmt.Errorf("etcd users (-want +got):\n%s", diff)
			}
			return nil
		})
		if got := value(t, n.fed.met.replicators); got != 2 {
			t.Errorf("%s: %v replicators, want 2", n.name, got)
		}
		// Counted once per intruder, however often it was tried.
		for _, reason := range intruders {
			if got := value(t, n.fed.met.untrusted.WithLabelValues(reason)); got != 1 {
				t.Errorf("%s: untrusted members counted for %s: %v, want 1", n.name, reason, got)
			}
			if got := value(t, n.fed.met.pending.WithLabelValues(reason)); got != 1 {
				t.Errorf("%s: members pending proof for %s: %v, want 1", n.name, reason, got)
			}
			if got := value(t, n.fed.met.proofs.WithLabelValues(reason)); got < 2 {
				t.Errorf("%s: proofs refused for %s: %v, want 2 or more", n.name, reason, got)
			}
		}
		if got := value(t, n.fed.met.proofs.WithLabelValues("ok")); got != 2 {
			t.Errorf("%s: %v proofs succeeded, want 2 (its peers)", n.name, got)
		}
	}
}

// TestMemberWithAnotherClustersCertificate: a control plane whose
// certificate names another cluster than its tag is refused; once it
// gets its own certificate (a restart) it is trusted.
func TestMemberWithAnotherClustersCertificate(t *testing.T) {
	o := testOptions{fence: 5 * time.Second}
	nodes := startCluster(t, 1, o)
	nodes[0].setExports(t, baseExports(0))
	other := prooftest.Default(t).Cert(t, "c05", cpID("c05"))
	wrong := startNode(t, 1, storetest.Config(t, clusterName(1)), testOptions{fence: o.fence, cert: &other})
	wrong.setExports(t, baseExports(1))
	wrong.join(t, nodes[0])
	for _, n := range []*node{nodes[0], wrong} {
		peer := "c01"
		if n == wrong {
			peer = "c00"
		}
		poll.Until(t, time.Minute, n.name+" has tried "+peer, func() error {
			u, ok := untrusted(t, n)[peer]
			if n == wrong {
				// c00 is real: c01 trusts it.
				if ok {
					return fmt.Errorf("c00 untrusted on c01: %+v", u)
				}
				for _, m := range statusOf(t, n).Members {
					if m.Name == "c00" && m.Identity == cpID("c00") {
						return nil
					}
				}
				return fmt.Errorf("c00 not a member of c01")
			}
			if !ok || u.Reason != proof.ReasonWrongCluster || u.Attempts < 2 {
				return fmt.Errorf("%+v, want refused for %s after 2 attempts or more", u, proof.ReasonWrongCluster)
			}
			return nil
		})
	}
	st := statusOf(t, nodes[0])
	if len(st.Members) != 1 {
		t.Errorf("c00's members: %+v, want only itself", st.Members)
	}
	if s := service(nodes[0].fed.View(), "own-c01"); s != nil {
		t.Errorf("c00 imports c01's export: %+v", s)
	}
	if diff := cmp.Diff([]string(nil), etcdUsers(t, nodes[0])); diff != "" {
		t.Errorf("c00's etcd users (-want +got):\n%s", diff)
	}
}

// TestProvenMemberDropped: a member that proved itself and comes back
// (a new instance, a new catalog) presenting another cluster's identity
// is dropped: no longer trusted nor replicated, its last exports fenced,
// counted; its identity refusal is logged as a drop.
func TestProvenMemberDropped(t *testing.T) {
	o := testOptions{fence: 2 * time.Second}
	nodes := startCluster(t, 2, o)
	for i, n := range nodes {
		n.setExports(t, baseExports(i))
	}
	poll.Until(t, 2*time.Minute, "federated", agree(nodes))
	victim := nodes[1]
	victim.kill(t)
	poll.Until(t, time.Minute, "c00 sees c01 failed", func() error {
		for _, m := range statusOf(t, nodes[0]).Members {
			if m.Name == victim.name && m.State != "failed" {
				return fmt.Errorf("state %s", m.State)
			}
		}
		return nil
	})

	other := prooftest.Default(t).Cert(t, "c05", cpID("c05"))
	back := startNode(t, victim.i, storetest.Config(t, victim.name), testOptions{fence: o.fence, cert: &other})
	back.setExports(t, baseExports(victim.i))
	poll.Until(t, time.Minute, "the impostor joins", func() error {
		_, err := back.mem.Join([]string{nodes[0].mem.Local().Addr})
		return err
	})
	poll.Until(t, time.Minute, "c00 drops c01", func() error {
		st := statusOf(t, nodes[0])
		var u *UntrustedMember
		for i := range st.Untrusted {
			if st.Untrusted[i].Name == victim.name {
				u = &st.Untrusted[i]
			}
		}
		if u == nil || u.Reason != proof.ReasonWrongCluster {
			return fmt.Errorf("untrusted %+v, want c01 refused for %s", st.Untrusted, proof.ReasonWrongCluster)
		}
		for _, m := range st.Members {
			if m.Name != victim.name {
				continue
			}
			if m.Identity != "" || !m.Fenced || m.CatalogAddress == back.st.ClientURL() {
				return fmt.Errorf("c01 still trusted, or its new catalog taken: %+v", m)
			}
			return nil
		}
		return fmt.Errorf("c01's last exports gone from the members: %+v", st.Members)
	})
	if got := value(t, nodes[0].fed.met.replicators); got != 0 {
		t.Errorf("%v replicators on c00, want 0", got)
	}
	if got := value(t, nodes[0].fed.met.untrusted.WithLabelValues(proof.ReasonWrongCluster)); got != 1 {
		t.Errorf("untrusted members counted for %s: %v, want 1", proof.ReasonWrongCluster, got)
	}
	for _, ep := range service(nodes[0].fed.View(), "echo").Endpoints {
		if ep.Locality.Cluster == victim.name && ep.Healthy {
			t.Errorf("endpoint %s of dropped c01 healthy", ep.Address)
		}
	}
}

// value reads a counter or a gauge.
func value(tb testing.TB, c prometheus.Metric) float64 {
	tb.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		tb.Fatal(err)
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// failedPeers reports every member of another cluster as failed, as serf
// does for members it suspects while a starved federation forms.
type failedPeers struct {
	Membership
	local string
}

func (m failedPeers) Members() []membership.Member {
	ms := m.Membership.Members()
	for i := range ms {
		if ms[i].Cluster != m.local {
			ms[i].Status = membership.StatusFailed
		}
	}
	return ms
}

// TestGrantOnProof: a member that proved its control plane identity is
// granted read access at once, whatever serf says of its liveness: c00
// sees c01 as failed, yet grants it, so c01 replicates c00's exports;
// an intruder c00 also sees as failed is still refused and not granted.
func TestGrantOnProof(t *testing.T) {
	o := testOptions{fence: time.Minute}
	suspicious := o
	suspicious.membership = func(m Membership) Membership { return failedPeers{Membership: m, local: clusterName(0)} }
	c00, c01 := startPair(t, suspicious, o)
	plain := storetest.Open(t, "evil-1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := plain.SetExports(ctx, intruderExports("evil-1")); err != nil {
		t.Fatal(err)
	}
	startIntruder(t, "evil-1", plain.ClientURL(), c00.mem.Local().Addr)

	poll.Until(t, time.Minute, "c00 grants c01 though serf reports it failed", func() error {
		if diff := cmp.Diff([]string{"fedmesh-cp-c01"}, etcdUsers(t, c00)); diff != "" {
			return fmt.Errorf("c00's etcd users (-want +got):\n%s", diff)
		}
		return nil
	})
	poll.Until(t, time.Minute, "c01 imports c00's exports", func() error {
		if s := service(c01.fed.View(), "own-c00"); s == nil || len(s.Endpoints) != 1 {
			return fmt.Errorf("c01's own-c00: %+v, want c00's endpoint", s)
		}
		return nil
	})
	poll.Until(t, time.Minute, "c00 refuses the intruder", func() error {
		if u, ok := untrusted(t, c00)["evil-1"]; !ok || u.Reason != proof.ReasonNotTLS || u.Attempts < 2 {
			return fmt.Errorf("evil-1: %+v, want refused for %s after 2 attempts or more", u, proof.ReasonNotTLS)
		}
		return nil
	})
	if diff := cmp.Diff([]string{"fedmesh-cp-c01"}, etcdUsers(t, c00)); diff != "" {
		t.Errorf("c00's etcd users after the intruder's attempts (-want +got):\n%s", diff)
	}
	if s := service(c00.fed.View(), "stolen-evil-1"); s != nil {
		t.Errorf("c00 imports the intruder's export: %+v", s)
	}
}
