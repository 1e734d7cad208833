// Package addrlock hands out numbered address blocks (a loopback /16, a
// lab /24) that no other process on this machine holds: block B is held
// by an exclusive lock on a file in the temporary directory for as long
// as the Lock is open, and a crashed process's locks go with it. The
// end-to-end tests and the federation simulator (`fedmesh sim`) take
// their loopback blocks from the same files, so they never meet.
//
//	b, lock, err := addrlock.Reserve(addrlock.LoopbackPattern, addrlock.FirstLoopback, addrlock.LastLoopback)
//	if err != nil { ... }
//	defer lock.Release()
//	// bind in 127.b.0.0/16
package addrlock

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
)

// The loopback blocks 127.B.0.0/16 shared by the end-to-end tests and the
// simulator; the demo's own addresses (127.0.0.0/16, 127.0.1.0/24) are
// outside.
const (
	LoopbackPattern = "fedmesh-e2e-block-127.%d.lock"
	FirstLoopback   = 100
	LastLoopback    = 239
)

// ErrNoneFree is returned when every block of the range is held.
var ErrNoneFree = errors.New("every address block is held by another process")

// Lock holds one block until Release.
type Lock struct{ f *os.File }

// Release gives the block back. It may be called more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Reserve locks the first of the files named by pattern (one %d) from
// first to last that nobody else holds, and returns its number.
func Reserve(pattern string, first, last int) (int, *Lock, error) {
	for b := first; b <= last; b++ {
		path := filepath.Join(os.TempDir(), fmt.Sprintf(pattern, b))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, nil, fmt.Errorf("address block lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return b, &Lock{f: f}, nil
	}
	return 0, nil, fmt.Errorf("%w: %s from %d to %d", ErrNoneFree, pattern, first, last)
}

// PrivateLoopback returns "127.A.B.C:0" for a random address in
// 127.64.0.0/16 to 127.99.255.255, below the reserved blocks and away from
// the demo's. A test that stops a listener and binds its address again
// listens there: on 127.0.0.1 the port can meanwhile become the source
// port of some other connection, and the second bind fails with "address
// already in use". Connections out to it take 127.0.0.1 as their source.
func PrivateLoopback() string {
	return fmt.Sprintf("127.%d.%d.%d:0", 64+rand.IntN(FirstLoopback-64), rand.IntN(256), 1+rand.IntN(254))
}
