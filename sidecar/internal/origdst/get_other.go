//go:build !linux

package origdst

import (
	"errors"
	"net"
	"net/netip"
)

// Get has no original destination to read outside Linux: connections are
// never redirected there.
func Get(net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.Join(ErrNotRedirected, errors.New("original destinations are read on Linux only"))
}
