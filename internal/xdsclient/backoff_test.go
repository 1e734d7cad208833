package xdsclient

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestBackoffPolicy: the delays grow by 1.6 from the initial one up to the
// cap, jitter spreads each by at most 20% either way, and a reset starts
// again from the initial delay. rand is fixed, so the sequence is exact.
func TestBackoffPolicy(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		rand float64
		n    int
		want []time.Duration
	}{
		{name: "no jitter at the middle", rand: 0.5, n: 8,
			want: []time.Duration{100 * ms, 160 * ms, 256 * ms, 409600 * time.Microsecond, 655360 * time.Microsecond, time.Second, time.Second, time.Second}},
		{name: "lowest jitter", rand: 0, n: 3, want: []time.Duration{80 * ms, 128 * ms, 204800 * time.Microsecond}},
		{name: "highest jitter stays within 20% of the cap", rand: 0.999999, n: 8,
			want: []time.Duration{119999, 191999, 307199, 491519, 786431, 1199999, 1199999, 1199999}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &backoffPolicy{initial: 100 * ms, max: time.Second, rand: func() float64 { return tt.rand }}
			var got []time.Duration
			for range tt.n {
				got = append(got, b.next())
			}
			if tt.name == "highest jitter stays within 20% of the cap" {
				// Compare in microseconds: the float product is not exact.
				for i := range got {
					got[i] /= time.Microsecond
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoffReset(t *testing.T) {
	b := &backoffPolicy{initial: 100 * time.Millisecond, max: time.Second, rand: func() float64 { return 0.5 }}
	for range 20 {
		b.next()
	}
	if got := b.next(); got != time.Second {
		t.Fatalf("after 20 attempts: %v, want the cap 1s", got)
	}
	b.reset()
	if got := b.next(); got != 100*time.Millisecond {
		t.Fatalf("after reset: %v, want the initial 100ms", got)
	}
}

// TestBackoffNeverOverflows: thousands of attempts stay at the cap.
func TestBackoffNeverOverflows(t *testing.T) {
	b := &backoffPolicy{initial: time.Nanosecond, max: time.Minute, rand: func() float64 { return 0.5 }}
	var d time.Duration
	for range 5000 {
		d = b.next()
	}
	if d != time.Minute {
		t.Fatalf("after 5000 attempts: %v, want the cap", d)
	}
}

// TestConnectParamsMatchPolicy: the gRPC channel backs off by the same
// numbers as the client.
func TestConnectParamsMatchPolicy(t *testing.T) {
	got := connectParams(100*time.Millisecond, time.Second)
	if got.BaseDelay != 100*time.Millisecond || got.MaxDelay != time.Second || got.Multiplier != backoffMultiplier || got.Jitter != backoffJitter {
		t.Fatalf("connect params %+v do not match the policy", got)
	}
}
