package membership

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/topology"
)

func TestParseCIDRs(t *testing.T) {
	nine := make([]string, MaxCIDRs+1)
	for i := range nine {
		nine[i] = fmt.Sprintf("10.%d.0.0/16", i)
	}
	long := make([]string, MaxCIDRs)
	for i := range long {
		long[i] = fmt.Sprintf("2001:db8:1234:5678:%x::/80", 0x1000+i)
	}
	for _, tc := range []struct {
		name string
		in   []string
		want []netip.Prefix
		err  string
	}{
		{name: "none", in: nil, want: []netip.Prefix{}},
		{name: "v4 and v6 in order", in: []string{"127.0.1.0/24", "10.244.0.0/16", "fd00::/64"},
			want: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24"), netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00::/64")}},
		{name: "a host", in: []string{"192.0.2.7/32"}, want: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")}},
		{name: "no bits", in: []string{"10.0.0.1"}, err: `"10.0.0.1" is not a CIDR prefix`},
		{name: "garbage", in: []string{"east"}, err: `"east" is not a CIDR prefix`},
		{name: "bits too many", in: []string{"10.0.0.0/33"}, err: "is not a CIDR prefix"},
		{name: "host bits", in: []string{"10.1.2.3/16"}, err: "host bits set: did you mean 10.1.0.0/16?"},
		{name: "mapped v4", in: []string{"::ffff:10.0.0.0/104"}, err: "plain IPv4 or IPv6"},
		{name: "twice", in: []string{"10.0.0.0/8", "10.0.0.0/8"}, err: "given twice"},
		{name: "too many", in: nine, err: "9 CIDRs: at most 8"},
		{name: "too long", in: long, err: "bytes in the gossip tags"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCIDRs(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseCIDRs(%q) error = %v, want it to contain %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("ParseCIDRs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCIDRTag: the cidrs tag round-trips through Encode and DecodeTags; a
// malformed one leaves the member valid without ranges, and DecodeCIDRs
// names the reason.
func TestCIDRTag(t *testing.T) {
	info, err := DecodeTags(goodTags())
	if err != nil {
		t.Fatal(err)
	}
	info.CIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24"), netip.MustParsePrefix("fd00:1::/64")}
	tags := info.Encode()
	if got := tags[TagCIDRs]; got != "127.0.1.0/24,fd00:1::/64" {
		t.Errorf("cidrs tag = %q", got)
	}
	back, err := DecodeTags(tags)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(info, back, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	for _, bad := range []string{"10.0.0.0/8,", "10.0.0.1/8", "10.0.0.0/8,10.0.0.0/8", "x", strings.Repeat("1", MaxCIDRTagLen+1)} {
		tags := goodTags()
		tags[TagCIDRs] = bad
		info, err := DecodeTags(tags)
		if err != nil {
			t.Errorf("cidrs %q: the member was refused: %v", bad, err)
		}
		if info.CIDRs != nil {
			t.Errorf("cidrs %q: decoded %v, want none", bad, info.CIDRs)
		}
		_, err = DecodeCIDRs(tags)
		var te *TagError
		if !errors.As(err, &te) || te.Reason != ReasonBadCIDRs || te.Tag != TagCIDRs || !errors.Is(err, ErrBadTags) {
			t.Errorf("DecodeCIDRs(%q) = %v, want a TagError with reason %s", bad, err, ReasonBadCIDRs)
		}
	}
	if ps, err := DecodeCIDRs(goodTags()); err != nil || ps != nil {
		t.Errorf("no cidrs tag: %v, %v; want none and no error", ps, err)
	}
}

// TestCIDRsGossiped: a member's declared CIDRs reach its peers; a peer
// with a malformed cidrs tag is kept (without ranges) and the tag counted.
func TestCIDRsGossiped(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfgA := testConfig(t, "a", testKey1)
	cfgA.Registerer = reg
	a := start(t, cfgA)
	cfgB := testConfig(t, "b", testKey1)
	cfgB.CIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.2.0/24")}
	b := start(t, cfgB)
	if _, err := b.Join([]string{a.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	kr, err := memberlist.NewKeyring(nil, testKey1)
	if err != nil {
		t.Fatal(err)
	}
	bad := MemberInfo{Cluster: "c", Locality: topology.Locality{Region: "r"}, GatewayAddr: "127.0.0.1:1",
		CatalogAddr: "https://127.0.0.1:2379", ProtocolVersion: 1, InstanceID: "abc"}
	tags := bad.Encode()
	tags[TagCIDRs] = "10.0.0.1/8"
	c := rawSerf(t, "c", tags, kr)
	if _, err := c.Join([]string{a.Local().Addr}, true); err != nil {
		t.Fatalf("raw join: %v", err)
	}
	poll.Until(t, 30*time.Second, "a sees b's CIDRs and c without any", func() error {
		got := map[string]string{}
		for _, m := range a.Members() {
			got[m.Name] = encodeCIDRs(m.CIDRs)
		}
		if diff := cmp.Diff(map[string]string{"a": "", "b": "127.0.2.0/24", "c": ""}, got); diff != "" {
			return fmt.Errorf("members' CIDRs (-want +got):\n%s", diff)
		}
		if n := counterValue(t, a.met.tagsIgnored.WithLabelValues(ReasonBadCIDRs)); n < 1 {
			return fmt.Errorf("bad cidrs counted %v times", n)
		}
		return nil
	})
	if n := counterValue(t, a.met.membersIgnored.WithLabelValues(ReasonBadCIDRs)); n != 0 {
		t.Errorf("c was ignored as a member (%v)", n)
	}
}

func TestCIDRsConfigRejected(t *testing.T) {
	cfg := testConfig(t, "a", testKey1)
	cfg.CIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/16")}
	m, err := New(cfg)
	if err == nil {
		_ = m.Shutdown()
		t.Fatal("New accepted a CIDR with host bits")
	}
	if !strings.Contains(err.Error(), "cluster CIDRs") || !strings.Contains(err.Error(), "host bits") {
		t.Errorf("New error = %q", err)
	}
}

func FuzzDecodeCIDRs(f *testing.F) {
	f.Add("127.0.1.0/24")
	f.Add("10.0.0.0/8,fd00::/8")
	f.Add("10.0.0.1/8,")
	f.Add(",,,")
	f.Fuzz(func(t *testing.T, v string) {
		ps, err := DecodeCIDRs(map[string]string{TagCIDRs: v})
		if err != nil {
			if ps != nil {
				t.Fatalf("error %v with prefixes %v", err, ps)
			}
			return
		}
		if len(ps) > MaxCIDRs {
			t.Fatalf("%d prefixes", len(ps))
		}
		for _, p := range ps {
			if !p.IsValid() || p.Masked() != p {
				t.Fatalf("prefix %v is not canonical", p)
			}
		}
		// What decodes encodes to a tag that decodes the same.
		again, err := DecodeCIDRs(map[string]string{TagCIDRs: encodeCIDRs(ps)})
		if err != nil || len(again) != len(ps) {
			t.Fatalf("re-decoding %q: %v, %v", encodeCIDRs(ps), again, err)
		}
	})
}
