package origdst

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDST is IP6T_SO_ORIGINAL_DST of linux/netfilter_ipv6/
// ip6_tables.h, which golang.org/x/sys/unix does not name.
const ip6tSOOriginalDST = 80

// Get returns the original destination of conn, an accepted TCP
// connection. It wraps ErrNotRedirected when the kernel has none.
func Get(conn net.Conn) (netip.AddrPort, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T has no socket", conn)
	}
	local, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T is not TCP", conn.LocalAddr())
	}
	// An IPv4 connection (also one accepted on a dual-stack socket, with
	// a v4-mapped address) has an IPv4 NAT record.
	level, opt := unix.SOL_IP, unix.SO_ORIGINAL_DST
	if local.IP.To4() == nil {
		level, opt = unix.SOL_IPV6, ip6tSOOriginalDST
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	var info *unix.IPv6MTUInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		// IPv6MTUInfo begins with a sockaddr_in6 and is large enough for
		// either answer; the kernel writes the sockaddr alone.
		info, serr = unix.GetsockoptIPv6MTUInfo(int(fd), level, opt)
	}); err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	if serr != nil {
		if errors.Is(serr, unix.ENOENT) {
			return netip.AddrPort{}, fmt.Errorf("original destination: %w", ErrNotRedirected)
		}
		return netip.AddrPort{}, fmt.Errorf("original destination: getsockopt: %w", serr)
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&info.Addr)), unsafe.Sizeof(info.Addr))
	return Parse(raw)
}
