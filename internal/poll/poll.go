// Package poll waits in tests for a condition that another goroutine or
// process makes true. It is test support: it imports testing and is meant
// for _test.go files only.
package poll

import (
	"testing"
	"time"
)

// Interval is how long Until and True sleep between two checks.
const Interval = 10 * time.Millisecond

// Until calls cond every Interval until it returns nil, and fails tb with
// what and cond's last error once timeout has passed. cond runs at least
// once, and once more at the deadline.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not true after %s: %v", what, timeout, err)
			return
		}
		time.Sleep(Interval)
	}
}

// True calls cond every Interval until it returns true, and fails tb with
// what once timeout has passed. It is Until for conditions that have no
// error to tell.
func True(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not true after %s", what, timeout)
			return
		}
		time.Sleep(Interval)
	}
}
