//go:build !linux

package proxy

import (
	"syscall"
	"time"
)

// controlUserTimeout does nothing where TCP_USER_TIMEOUT is not known;
// TCP keepalives still close idle connections to a blackholed peer.
func controlUserTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
