package ratelimit

import "time"

// tokens is the state of one token bucket. Time is in nanoseconds since
// the Limiter's epoch. Its owner serialises calls.
type tokens struct {
	n    int64 // tokens left
	last int64 // time of the last fill, aligned on the fill interval
	init bool
}

// take refills the bucket for the time passed since the last fill
// (PerFill tokens per whole Interval, up to Max) and takes one token. It
// returns whether a token was taken, the tokens left and the time until
// the next fill. A Max lower than the tokens left (the bucket shrank)
// clamps them.
func (t *tokens) take(b Bucket, now int64) (bool, int64, time.Duration) {
	iv := int64(b.Interval)
	if !t.init || now < t.last {
		t.n, t.last, t.init = b.Max, now, true
	}
	if elapsed := now - t.last; elapsed >= iv {
		fills := elapsed / iv
		if fills >= (b.Max+b.PerFill-1)/b.PerFill {
			t.n = b.Max
		} else {
			t.n += fills * b.PerFill
		}
		t.last += fills * iv
	}
	if t.n > b.Max {
		t.n = b.Max
	}
	reset := time.Duration(t.last + iv - now)
	if t.n <= 0 {
		return false, 0, reset
	}
	t.n--
	return true, t.n, reset
}
