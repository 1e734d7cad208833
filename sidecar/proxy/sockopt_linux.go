package proxy

import (
	"syscall"
	"time"
)

// tcpUserTimeout is Linux's TCP_USER_TIMEOUT (include/uapi/linux/tcp.h),
// which the syscall package does not name.
const tcpUserTimeout = 0x12

// controlUserTimeout returns a net.Dialer Control function that makes
// the kernel close a connection whose sent data has gone unacknowledged
// for d: a request written to a peer that a partition has blackholed
// fails within d instead of waiting for the request's timeout. A peer
// that is alive acknowledges at once, however slowly its app answers.
func controlUserTimeout(d time.Duration) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d.Milliseconds()))
		})
		if err != nil {
			return err
		}
		return serr
	}
}
