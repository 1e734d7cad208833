package origdst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ErrNotRedirected is wrapped when a connection has no original
// destination of its own: the kernel keeps no NAT record of it (it was
// not redirected, or conntrack does not track it).
var ErrNotRedirected = errors.New("connection was not redirected")

// ErrBadSockaddr is wrapped when the kernel's answer cannot be decoded.
var ErrBadSockaddr = errors.New("bad sockaddr")

// Address families of struct sockaddr (Linux values).
const (
	afInet  = 2
	afInet6 = 10
)

// Sizes of struct sockaddr_in and sockaddr_in6.
const (
	sizeofSockaddrInet4 = 16
	sizeofSockaddrInet6 = 28
)

// Parse decodes a struct sockaddr_in or sockaddr_in6, as the kernel
// answers SO_ORIGINAL_DST and IP6T_SO_ORIGINAL_DST: the family in host
// byte order, the port in network byte order, then the address. An
// IPv4-mapped IPv6 address is returned as IPv4.
func Parse(raw []byte) (netip.AddrPort, error) {
	if len(raw) < 2 {
		return netip.AddrPort{}, fmt.Errorf("%w: %d bytes", ErrBadSockaddr, len(raw))
	}
	family := binary.NativeEndian.Uint16(raw)
	var addr netip.Addr
	switch family {
	case afInet:
		if len(raw) < sizeofSockaddrInet4 {
			return netip.AddrPort{}, fmt.Errorf("%w: sockaddr_in of %d bytes, want %d", ErrBadSockaddr, len(raw), sizeofSockaddrInet4)
		}
		addr = netip.AddrFrom4([4]byte(raw[4:8]))
	case afInet6:
		if len(raw) < sizeofSockaddrInet6 {
			return netip.AddrPort{}, fmt.Errorf("%w: sockaddr_in6 of %d bytes, want %d", ErrBadSockaddr, len(raw), sizeofSockaddrInet6)
		}
		addr = netip.AddrFrom16([16]byte(raw[8:24])).Unmap()
	default:
		return netip.AddrPort{}, fmt.Errorf("%w: address family %d", ErrBadSockaddr, family)
	}
	port := binary.BigEndian.Uint16(raw[2:4])
	if port == 0 || addr.IsUnspecified() {
		return netip.AddrPort{}, fmt.Errorf("%w: %s port %d", ErrBadSockaddr, addr, port)
	}
	return netip.AddrPortFrom(addr, port), nil
}
