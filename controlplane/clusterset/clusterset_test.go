package clusterset_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/clusterset"
)

func key(ns, name string) catalog.ServiceKey { return catalog.ServiceKey{Namespace: ns, Name: name} }

// colliding returns two keys of namespace ns with the same home slot in p.
func colliding(t *testing.T, p netip.Prefix, n uint64, ns string) (catalog.ServiceKey, catalog.ServiceKey) {
	t.Helper()
	seen := map[uint64]catalog.ServiceKey{}
	for i := range 10 * int(n) {
		k := key(ns, fmt.Sprintf("svc-%d", i))
		h := clusterset.Home(k, n)
		if o, ok := seen[h]; ok {
			return o, k
		}
		seen[h] = k
	}
	t.Fatalf("no collision among %d names in %s", 10*n, p)
	return catalog.ServiceKey{}, catalog.ServiceKey{}
}

func TestAllocate(t *testing.T) {
	p := netip.MustParsePrefix("10.254.0.0/16")
	small := netip.MustParsePrefix("198.18.0.0/29") // 6 usable addresses
	a, b := colliding(t, small, 6, "demo")          // a sorts before b
	if b.Name < a.Name {
		a, b = b, a
	}
	base := []catalog.ServiceKey{key("demo", "echo"), key("demo", "web"), key("shop", "cart")}
	tests := []struct {
		name   string
		prefix netip.Prefix
		keys   []catalog.ServiceKey
		check  func(t *testing.T, got map[catalog.ServiceKey]netip.Addr)
	}{
		{
			name: "every service gets a distinct address in the prefix", prefix: p, keys: base,
			check: func(t *testing.T, got map[catalog.ServiceKey]netip.Addr) {
				distinctIn(t, p, got, len(base))
			},
		},
		{
			name: "stable when other services are added and removed", prefix: p, keys: base,
			check: func(t *testing.T, got map[catalog.ServiceKey]netip.Addr) {
				more := append([]catalog.ServiceKey{key("a", "first"), key("zz", "last")}, base...)
				bigger := clusterset.Allocate(p, more)
				fewer := clusterset.Allocate(p, base[1:])
				for _, k := range base {
					if bigger[k] != got[k] {
						t.Errorf("%s moved from %s to %s when services were added", k, got[k], bigger[k])
					}
				}
				for _, k := range base[1:] {
					if fewer[k] != got[k] {
						t.Errorf("%s moved from %s to %s when %s was removed", k, got[k], fewer[k], base[0])
					}
				}
			},
		},
		{
			name: "order of the input does not matter", prefix: p, keys: base,
			check: func(t *testing.T, got map[catalog.ServiceKey]netip.Addr) {
				rev := []catalog.ServiceKey{base[2], base[1], base[0], base[1]}
				if d := cmp.Diff(got, clusterset.Allocate(p, rev), cmpopts.EquateComparable(netip.Addr{})); d != "" {
					t.Errorf("reordered input (-first +reordered):\n%s", d)
				}
			},
		},
		{
			name: "collision: the later name probes the next slot", prefix: small, keys: []catalog.ServiceKey{b, a},
			check: func(t *testing.T, got map[catalog.ServiceKey]netip.Addr) {
				distinctIn(t, small, got, 2)
				alone := clusterset.Allocate(small, []catalog.ServiceKey{a})
				if got[a] != alone[a] {
					t.Errorf("%s (sorts first) = %s, want its home %s", a, got[a], alone[a])
				}
				want := got[a].Next()
				if want == netip.MustParseAddr("198.18.0.7") { // broadcast: wrap to the first usable
					want = netip.MustParseAddr("198.18.0.1")
				}
				if got[b] != want {
					t.Errorf("%s = %s, want the slot after %s: %s", b, got[b], got[a], want)
				}
			},
		},
		{
			name: "released on delete: a re-created service gets its home slot back", prefix: small, keys: []catalog.ServiceKey{b},
			check: func(t *testing.T, got map[catalog.ServiceKey]netip.Addr) {
				both := clusterset.Allocate(small, []catalog.ServiceKey{a, b})
				again := clusterset.Allocate(small, []catalog.ServiceKey{a})
				if got[b] != both[a] {
					t.Errorf("with %s deleted, %s = %s, want the freed home slot %s", a, b, got[b], both[a])
				}
				if again[a] != both[a] {
					t.Errorf("re-created %s = %s, want %s", a, again[a], both[a])
				}
			},
		},
		{
			name: "full prefix: the rest get none, no address twice", prefix: small,
			keys: func() []catalog.ServiceKey {
				var ks []catalog.ServiceKey
				for i := range 9 {
					ks = append(ks, key("demo", fmt.Sprintf("s%d", i)))
				}
				return ks
			}(),
			check: func(t *testing.T, got map[catalog.ServiceKey]netip.Addr) {
				distinctIn(t, small, got, 6)
			},
		},
		{
			name: "IPv6 prefix", prefix: netip.MustParsePrefix("fd00:fed::/64"), keys: base,
			check: func(t *testing.T, got map[catalog.ServiceKey]netip.Addr) {
				distinctIn(t, netip.MustParsePrefix("fd00:fed::/64"), got, len(base))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, clusterset.Allocate(tt.prefix, tt.keys))
		})
	}
}

// distinctIn checks that got has n distinct usable addresses of p.
func distinctIn(t *testing.T, p netip.Prefix, got map[catalog.ServiceKey]netip.Addr, n int) {
	t.Helper()
	if len(got) != n {
		t.Errorf("%d addresses, want %d: %v", len(got), n, got)
	}
	seen := map[netip.Addr]catalog.ServiceKey{}
	for k, a := range got {
		if !p.Contains(a) || a == p.Addr() {
			t.Errorf("%s = %s, not a usable address of %s", k, a, p)
		}
		if p.Addr().Is4() && a == lastOf(p) {
			t.Errorf("%s = %s, the broadcast address of %s", k, a, p)
		}
		if o, ok := seen[a]; ok {
			t.Errorf("%s and %s share %s", o, k, a)
		}
		seen[a] = k
	}
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := 32 - p.Bits()
	for i := range host {
		b[3-i/8] |= 1 << (i % 8)
	}
	return netip.AddrFrom4(b)
}

func TestCheckPrefix(t *testing.T) {
	for _, tt := range []struct {
		in, wantErr string
	}{
		{"10.254.0.0/16", ""},
		{"fd00::/64", ""},
		{"10.254.0.0/30", ""},
		{"10.254.0.1/16", "host bits set"},
		{"10.254.0.0/31", "fewer than two"},
		{"::ffff:10.0.0.0/104", "IPv4-mapped"},
		{"10.254.0.0", "ParsePrefix"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			_, err := clusterset.ParsePrefix(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParsePrefix(%q) = %v", tt.in, err)
				}
				return
			}
			if err == nil || !errors.Is(err, clusterset.ErrPrefix) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParsePrefix(%q) = %v, want ErrPrefix with %q", tt.in, err, tt.wantErr)
			}
		})
	}
	if got := clusterset.Allocate(netip.MustParsePrefix("10.0.0.1/8"), []catalog.ServiceKey{key("a", "b")}); got != nil {
		t.Errorf("Allocate with a bad prefix = %v, want nil", got)
	}
}

// FuzzAllocate checks, for any set of names and any prefix length, that
// addresses are distinct, inside the prefix and independent of input
// order.
func FuzzAllocate(f *testing.F) {
	f.Add("demo/echo,demo/web,shop/cart", uint8(16), false)
	f.Add("a/b,a/c,a/d,a/e,a/f,a/g,a/h", uint8(29), false)
	f.Add("x/y,x/z", uint8(120), true)
	f.Fuzz(func(t *testing.T, names string, bits uint8, v6 bool) {
		p := netip.PrefixFrom(netip.MustParseAddr("10.254.0.0"), int(bits%31))
		if v6 {
			p = netip.PrefixFrom(netip.MustParseAddr("fd00::"), int(bits%127))
		}
		p = p.Masked()
		var keys []catalog.ServiceKey
		for i, part := range strings.Split(names, ",") {
			if i == 64 {
				break
			}
			ns, name, _ := strings.Cut(part, "/")
			keys = append(keys, key(ns, name))
		}
		got := clusterset.Allocate(p, keys)
		seen := map[netip.Addr]bool{}
		for k, a := range got {
			if !p.Contains(a) || a == p.Addr() {
				t.Fatalf("%s = %s outside %s", k, a, p)
			}
			if seen[a] {
				t.Fatalf("%s shared", a)
			}
			seen[a] = true
		}
		rev := make([]catalog.ServiceKey, len(keys))
		for i, k := range keys {
			rev[len(keys)-1-i] = k
		}
		if d := cmp.Diff(got, clusterset.Allocate(p, rev), cmpopts.EquateComparable(netip.Addr{})); d != "" {
			t.Fatalf("order changed the result:\n%s", d)
		}
	})
}

func TestFromView(t *testing.T) {
	v := &catalog.View{Services: []catalog.ImportedService{
		{Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP},
		{Namespace: "demo", Name: "db", Type: catalog.Headless},
	}}
	got := clusterset.FromView(clusterset.DefaultPrefix, v)
	want := clusterset.Allocate(clusterset.DefaultPrefix, []catalog.ServiceKey{key("demo", "echo")})
	if d := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); d != "" {
		t.Errorf("FromView (-want +got):\n%s", d)
	}
	if _, ok := got[key("demo", "db")]; ok {
		t.Errorf("headless demo/db got a ClusterSetIP")
	}
}
