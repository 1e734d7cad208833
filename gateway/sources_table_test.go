package gateway

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// TestSourceTableLookup: the longest matching prefix wins, whatever the
// order the control plane sent; families never match each other; a
// prefix two clusters claim is refused.
func TestSourceTableLookup(t *testing.T) {
	tab, err := parseSourceClusters(xdsresource.WithGatewaySourceClusters(gatewayListener(t), map[string][]string{
		"east-1": {"127.0.0.0/16", "fd00::/8"},
		"east-2": {"127.0.2.0/24", "127.0.2.9"},
		"west-1": {"127.0.2.128/25", "::ffff:127.0.5.5", "0.0.0.0/0"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"127.0.1.1":       "east-1",
		"127.0.2.1":       "east-2",
		"127.0.2.9":       "east-2",
		"127.0.2.200":     "west-1",
		"127.0.5.5":       "west-1", // sent as a mapped address
		"10.0.0.1":        "west-1", // the default route
		"fd00::1":         "east-1",
		"fe80::1":         "",
		"::ffff:10.0.0.1": "", // the caller unmaps; a v6 address matches no v4 prefix
	} {
		if got := tab.lookup(netip.MustParseAddr(addr)); got != want {
			t.Errorf("lookup(%s) = %q, want %q", addr, got, want)
		}
	}
	if got := (sourceTable{}).lookup(netip.MustParseAddr("127.0.0.1")); got != "" {
		t.Errorf("empty table: %q", got)
	}
	if got := tab.lookup(netip.Addr{}); got != "" {
		t.Errorf("invalid address: %q", got)
	}

	_, err = parseSourceClusters(xdsresource.WithGatewaySourceClusters(gatewayListener(t), map[string][]string{
		"east-1": {"10.244.0.0/16"}, "east-2": {"10.244.0.0/16"},
	}))
	if err == nil || !strings.Contains(err.Error(), "10.244.0.0/16 is claimed by both east-1 and east-2") {
		t.Errorf("a prefix of two clusters: err = %v", err)
	}
}

func FuzzParseSourceClusters(f *testing.F) {
	f.Add("east-1", "127.0.1.0/24", "west-1", "127.0.1.7")
	f.Add("east-1", "fd00::/8", "EAST", "x")
	f.Add("a", "10.0.0.0/8", "a", "10.0.0.0/8")
	f.Fuzz(func(t *testing.T, c1, a1, c2, a2 string) {
		tab, err := parseSourceClusters(xdsresource.WithGatewaySourceClusters(gatewayListener(t), map[string][]string{c1: {a1}, c2: {a2}}))
		if err != nil {
			return
		}
		sent := []string{a1, a2}
		if c1 == c2 {
			sent = sent[1:] // one key: the second list replaced the first
		}
		for _, a := range sent {
			p, err := parsePrefix(a)
			if err != nil {
				t.Fatalf("%q accepted but does not parse: %v", a, err)
			}
			if got := tab.lookup(p.Addr()); !validClusterLabel(got) {
				t.Fatalf("lookup(%s) = %q, not a cluster", p.Addr(), got)
			}
		}
		if len(tab.bits) > 2 {
			t.Fatalf("%d prefix lengths from two prefixes", len(tab.bits))
		}
	})
}
