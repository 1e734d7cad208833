package origdst

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// sockaddr builds what the kernel answers for addr: a sockaddr_in for
// IPv4, a sockaddr_in6 otherwise, padded to n bytes.
func sockaddr(addr netip.AddrPort, n int) []byte {
	b := make([]byte, n)
	if addr.Addr().Is4() {
		binary.NativeEndian.PutUint16(b, afInet)
		a := addr.Addr().As4()
		copy(b[4:], a[:])
	} else {
		binary.NativeEndian.PutUint16(b, afInet6)
		a := addr.Addr().As16()
		copy(b[8:], a[:])
	}
	binary.BigEndian.PutUint16(b[2:], addr.Port())
	return b
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     []byte
		want    string
		wantErr bool
	}{
		{name: "IPv4", raw: sockaddr(netip.MustParseAddrPort("198.18.3.4:8080"), 16), want: "198.18.3.4:8080"},
		{name: "IPv4 in the IPv6MTUInfo buffer", raw: sockaddr(netip.MustParseAddrPort("10.96.0.10:53"), 32), want: "10.96.0.10:53"},
		{name: "IPv6", raw: sockaddr(netip.MustParseAddrPort("[fd00:10:96::a]:443"), 28), want: "[fd00:10:96::a]:443"},
		{name: "IPv4-mapped IPv6", raw: sockaddr(netip.MustParseAddrPort("[::ffff:198.18.0.1]:80"), 28), want: "198.18.0.1:80"},
		{name: "short IPv4", raw: sockaddr(netip.MustParseAddrPort("198.18.3.4:8080"), 16)[:8], wantErr: true},
		{name: "short IPv6", raw: sockaddr(netip.MustParseAddrPort("[fd00::1]:1"), 28)[:20], wantErr: true},
		{name: "unknown family", raw: []byte{1, 0, 0, 80, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0}, wantErr: true},
		{name: "port zero", raw: sockaddr(netip.AddrPortFrom(netip.MustParseAddr("198.18.3.4"), 0), 16), wantErr: true},
		{name: "unspecified", raw: sockaddr(netip.MustParseAddrPort("0.0.0.0:80"), 16), wantErr: true},
		{name: "empty", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.raw)
			if tc.wantErr {
				if !errors.Is(err, ErrBadSockaddr) {
					t.Fatalf("Parse = %v, %v; want ErrBadSockaddr", got, err)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("Parse = %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sockaddr(netip.MustParseAddrPort("198.18.3.4:8080"), 16))
	f.Add(sockaddr(netip.MustParseAddrPort("[fd00::1]:443"), 28))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := Parse(raw)
		if err != nil {
			return
		}
		if !got.IsValid() || got.Port() == 0 || got.Addr().Is4In6() {
			t.Errorf("Parse(%x) = %v", raw, got)
		}
		// What parses encodes back to the same bytes' meaning.
		if again, err := Parse(sockaddr(got, 28)); err != nil || again != got {
			t.Errorf("round trip of %v: %v, %v", got, again, err)
		}
	})
}
