package xdsclient

import (
	"math"
	"time"

	grpcbackoff "google.golang.org/grpc/backoff"
)

// Reconnect policy. There is one exponential backoff with jitter and a low
// cap, applied in one place at a time:
//
//   - while the control plane cannot be reached, streams are opened with
//     grpc.WaitForReady, so the client waits on the gRPC channel, whose own
//     connection backoff (connectParams) is the only delay: the stream opens
//     as soon as the channel is Ready again, within one capped, jittered
//     interval of the control plane coming back;
//   - a stream that the channel carried but that ended before any response
//     (the control plane refused it) waits on the client's backoff, the
//     same policy, before the next one, so a refusing control plane is not
//     hammered. A response resets it.
//
// Before, the client's own backoff (up to 30s) came on top of the channel's
// (up to 120s), and a control plane that came back could wait tens of
// seconds for its clients.
const (
	// DefaultInitialBackoff is the first reconnect delay.
	DefaultInitialBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff caps the reconnect delay.
	DefaultMaxBackoff = time.Second
	// backoffMultiplier and backoffJitter follow gRPC's connection backoff
	// (grpc/doc/connection-backoff.md).
	backoffMultiplier = 1.6
	backoffJitter     = 0.2
	// minConnectTimeout bounds one connection attempt, so that an attempt
	// to an address that swallows packets does not hold the channel for
	// gRPC's default 20s.
	minConnectTimeout = 5 * time.Second
)

// backoffPolicy is an exponential backoff with proportional jitter: the
// n-th delay (from 0) is min(initial*multiplier^n, max), spread uniformly
// by ±jitter. It is not safe for concurrent use; the client's Run
// goroutine owns it.
type backoffPolicy struct {
	initial, max time.Duration
	// rand returns a number in [0, 1); tests pass a fixed one.
	rand    func() float64
	attempt int
}

// next returns the delay before the next attempt and counts the attempt.
func (b *backoffPolicy) next() time.Duration {
	d := float64(b.initial) * math.Pow(backoffMultiplier, float64(b.attempt))
	if d > float64(b.max) || math.IsInf(d, 0) {
		d = float64(b.max)
	} else {
		b.attempt++
	}
	d *= 1 + backoffJitter*(2*b.rand()-1)
	return time.Duration(d)
}

// reset starts the sequence again from the initial delay.
func (b *backoffPolicy) reset() { b.attempt = 0 }

// connectParams is the same policy for the gRPC channel's reconnects.
func connectParams(initial, max time.Duration) grpcbackoff.Config {
	return grpcbackoff.Config{BaseDelay: initial, Multiplier: backoffMultiplier, Jitter: backoffJitter, MaxDelay: max}
}
