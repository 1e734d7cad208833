package e2e

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fedmesh/fedmesh/internal/addrlock"
)

// Address blocks: every test that binds fixed ports (15014, 15443, 2379
// ...) takes a loopback block 127.B.0.0/16 of its own, so that two
// suites, two worktrees or a demo on the same machine never meet. A
// block is held by an exclusive lock on a file in the temporary
// directory for as long as the test runs; a crashed suite's locks go with
// its process. B runs from firstBlock to lastBlock; the demo's own
// addresses (127.0.0.0/16, 127.0.1.0/24) are outside.
const (
	firstBlock = addrlock.FirstLoopback
	lastBlock  = addrlock.LastLoopback
)

// reserveBlock returns the second octet of a loopback /16 no other test
// or suite on this machine holds, locked until the test ends.
func reserveBlock(t testing.TB) int {
	t.Helper()
	return reserve(t, addrlock.LoopbackPattern, firstBlock, lastBlock,
		fmt.Sprintf("every loopback block 127.%d-%d.0.0/16 is held by another test run", firstBlock, lastBlock))
}

// reserveLabBlock returns the third octet of a /24 of 198.18.0.0/16 no
// other network lab (netlab_test.go) on this machine holds, locked until
// the test ends: two labs on one subnet would route each other's
// traffic.
func reserveLabBlock(t testing.TB) int {
	t.Helper()
	return reserve(t, "fedmesh-e2e-netlab-198.18.%d.lock", 0, 255, "every lab subnet 198.18.0-255.0/24 is held by another test run")
}

// reserve locks the first of the files named by pattern (one %d) from
// first to last that nobody else holds (internal/addrlock, shared with
// `fedmesh sim`), and returns its number.
func reserve(t testing.TB, pattern string, first, last int, none string) int {
	t.Helper()
	b, lock, err := addrlock.Reserve(pattern, first, last)
	if errors.Is(err, addrlock.ErrNoneFree) {
		t.Fatal(none)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Release() })
	return b
}
