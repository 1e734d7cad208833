package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// TestSerfIntruder runs what was seen on a demo: a stock serf node (as
// `serf agent -encrypt KEY -tag ...` runs it) with the federation's
// gossip key, taken from east-1's keyring file, and fedmesh-shaped tags
// naming cluster evil-1 with east-2's real catalog address. Every control
// plane refuses it (east-2's catalog proves east-2, not evil-1): it is
// never a member, never replicated, the federation stays converged, and
// the refusal is counted and shown with its reason.
func TestSerfIntruder(t *testing.T) {
	m := startMesh(t, meshSpec{})
	east1, east2 := m.cluster("east-1"), m.cluster("east-2")

	raw, err := os.ReadFile(m.path(east1.Name, "data", "serf", "keyring"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := json.Unmarshal(raw, &keys); err != nil || len(keys) == 0 {
		t.Fatalf("east-1's keyring %q: %v", raw, err)
	}
	key, err := base64.StdEncoding.DecodeString(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Members []struct {
			Name           string `json:"name"`
			CatalogAddress string `json:"catalogAddress"`
		} `json:"members"`
	}
	if err := m.admin.Get(east1.Admin(), "/federation/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	var catalog string
	for _, mem := range st.Members {
		if mem.Name == east2.Name {
			catalog = mem.CatalogAddress
		}
	}
	if catalog == "" {
		t.Fatalf("east-2's catalog address not in east-1's status: %+v", st)
	}

	keyring, err := memberlist.NewKeyring(nil, key)
	if err != nil {
		t.Fatal(err)
	}
	ml := memberlist.DefaultLocalConfig()
	ml.Name = "evil-1"
	ml.BindAddr = "127.0.0.1"
	ml.BindPort = 0
	ml.Keyring = keyring
	ml.GossipVerifyIncoming = true
	ml.GossipVerifyOutgoing = true
	ml.LogOutput = io.Discard
	sc := serf.DefaultConfig()
	sc.NodeName = "evil-1"
	sc.MemberlistConfig = ml
	sc.LogOutput = io.Discard
	sc.Tags = map[string]string{
		"cluster": "evil-1", "region": "us-east", "zone": "a", "gw": "127.0.0.1:15443",
		"catalog": catalog, "pv": "1", "iid": "0123456789abcdef",
	}
	agent, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Shutdown() })
	if _, err := agent.Join([]string{net.JoinHostPort(east1.IP, "7946")}, true); err != nil {
		t.Fatalf("the intruder joins east-1's gossip: %v", err)
	}

	type untrusted struct {
		Name     string `json:"name"`
		Reason   string `json:"reason"`
		Attempts int    `json:"attempts"`
	}
	for _, c := range m.clusters {
		poll.Until(t, 60*time.Second, c.Name+" refuses evil-1", func() error {
			var s struct {
				Members []struct {
					Name string `json:"name"`
				} `json:"members"`
				Untrusted []untrusted `json:"untrusted"`
			}
			if err := m.admin.Get(c.Admin(), "/federation/v1/status", &s); err != nil {
				return err
			}
			for _, mem := range s.Members {
				if mem.Name == "evil-1" {
					return fmt.Errorf("evil-1 is a member")
				}
			}
			if len(s.Untrusted) != 1 || s.Untrusted[0].Name != "evil-1" || s.Untrusted[0].Reason != "wrong_cluster" || s.Untrusted[0].Attempts < 2 {
				return fmt.Errorf("untrusted %+v, want evil-1 refused for wrong_cluster, tried twice or more", s.Untrusted)
			}
			return nil
		})
		page := scrape(t, c.Admin()+"/metrics")
		if got := metric(page, "fedmesh_federation_untrusted_members_total", `reason="wrong_cluster"`); got != 1 {
			t.Errorf("%s: fedmesh_federation_untrusted_members_total{reason=wrong_cluster} = %v, want 1", c.Name, got)
		}
		if got := metric(page, "fedmesh_federation_members_pending_proof", `reason="wrong_cluster"`); got != 1 {
			t.Errorf("%s: fedmesh_federation_members_pending_proof{reason=wrong_cluster} = %v, want 1", c.Name, got)
		}
		if got := metric(page, "fedmesh_federation_replicators"); got != float64(len(m.clusters)-1) {
			t.Errorf("%s: %v replicators, want %d", c.Name, got, len(m.clusters)-1)
		}
	}
	if err := m.converged(); err != nil {
		t.Errorf("the federation with an intruder in its gossip: %v", err)
	}
}
