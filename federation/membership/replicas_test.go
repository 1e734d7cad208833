package membership

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/poll"
)

func replicaConfig(t testing.TB, cluster, replica string) Config {
	cfg := testConfig(t, cluster, testKey1)
	cfg.Replica = replica
	return cfg
}

// TestReplicasGossipSideBySide runs two replicas of one cluster beside a
// peer: both are members, named CLUSTER.REPLICA with the cluster tag, and
// a second process claiming one replica's name is still refused.
func TestReplicasGossipSideBySide(t *testing.T) {
	r0 := start(t, replicaConfig(t, "a", "cp-0"))
	r1 := start(t, replicaConfig(t, "a", "cp-1"))
	b := start(t, testConfig(t, "b", testKey1))
	for _, m := range []*Membership{r1, b} {
		if _, err := m.Join([]string{r0.Local().Addr}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"a.cp-0", "a.cp-1", "b"}
	poll.Until(t, 30*time.Second, "replicas and peer federate", seeExactly(want, r0, r1, b))
	for _, mem := range b.Members() {
		wantCluster, wantReplica, _ := SplitMemberName(mem.Name)
		if mem.Cluster != wantCluster || mem.Replica != wantReplica {
			t.Errorf("b sees %s as cluster %q replica %q", mem.Name, mem.Cluster, mem.Replica)
		}
	}
	if got := r0.Local(); got.Name != "a.cp-0" || got.Cluster != "a" || got.Replica != "cp-0" {
		t.Errorf("r0.Local() = %s cluster %q replica %q", got.Name, got.Cluster, got.Replica)
	}
	poll.Until(t, 30*time.Second, "b records a.cp-0 alive", func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.peers["a.cp-0"]; !ok {
			return errors.New("b has no record of a.cp-0 yet")
		}
		return nil
	})

	impostor := start(t, replicaConfig(t, "a", "cp-0"))
	if _, err := impostor.Join([]string{b.Local().Addr}); !errors.Is(err, ErrDuplicateName) {
		t.Fatalf("impostor of a.cp-0: Join error %v, want ErrDuplicateName", err)
	}
	poll.Until(t, 30*time.Second, "federation unchanged", seeExactly(want, r0, r1, b))

	// One replica stops: the other stays alive, and so does the cluster.
	if err := r0.Shutdown(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "b sees a.cp-0 failed, a.cp-1 alive", func() error {
		got := map[string]Status{}
		for _, mem := range b.Members() {
			got[mem.Name] = mem.Status
		}
		if diff := cmp.Diff(map[string]Status{"a.cp-0": StatusFailed, "a.cp-1": StatusAlive, "b": StatusAlive}, got); diff != "" {
			return fmt.Errorf("members (-want +got):\n%s", diff)
		}
		return nil
	})

	// A cluster's name forgets every replica, and is refused while one
	// of them is alive.
	if err := b.ForceLeave("a"); !errors.Is(err, ErrMemberAlive) {
		t.Errorf("ForceLeave(a) with a.cp-1 alive = %v, want ErrMemberAlive", err)
	}
	if err := b.ForceLeave("a.cp-0"); err != nil {
		t.Errorf("ForceLeave(a.cp-0): %v", err)
	}
	if diff := cmp.Diff([]string{"a.cp-0"}, b.Forgotten()); diff != "" {
		t.Errorf("forgotten (-want +got):\n%s", diff)
	}
}

func TestReplicaConfig(t *testing.T) {
	cfg := replicaConfig(t, "a", "Cp_0")
	if _, err := New(cfg); err == nil {
		t.Fatal("New accepted replica Cp_0")
	}
}
