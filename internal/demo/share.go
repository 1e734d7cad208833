package demo

import (
	"fmt"
	"math"
	"strings"
)

// Sigmas is the tolerance of a judged share: the observed share of n
// requests may differ from the configured p by Sigmas binomial standard
// deviations, Sigmas*sqrt(p(1-p)/n). At 4 a correct mesh fails one check
// in about 16,000; a share of 0% or 100% has no tolerance at all.
const Sigmas = 4

// Split is what a traffic phase expects of one class of a caller's
// requests (those with one VariantHeader value). Every request of a
// traffic phase must be answered or aborted by an injected fault: real
// errors are always 0.
type Split struct {
	// Variant is the VariantHeader of the requests; "" for none.
	Variant string `json:"variant,omitempty"`
	// V2 is the share of answered requests echo-v2 must answer, in
	// percent.
	V2 float64 `json:"v2"`
	// Abort and Delay are the shares of requests an injected fault must
	// abort and delay, in percent (CheckAborted, CheckDelayed).
	Abort float64 `json:"abort"`
	Delay float64 `json:"delay"`
}

// Check is one judged count of a traffic phase: Count of Of requests.
type Check struct {
	// Variant is the class of requests counted (VariantHeader, "" none).
	Variant string `json:"variant,omitempty"`
	// What is counted: CheckErrors, CheckAborted, CheckDelayed or
	// CheckV2.
	What  string `json:"what"`
	Count int    `json:"count"`
	Of    int    `json:"of"`
	// Share is Count/Of, Want the configured share and Tolerance the
	// allowed difference (Sigmas standard deviations), all in percent.
	Share     float64 `json:"share"`
	Want      float64 `json:"want"`
	Tolerance float64 `json:"tolerance"`
	OK        bool    `json:"ok"`
}

// What a Check counts.
const (
	// CheckErrors: failed requests that no injected fault explains, of
	// all requests.
	CheckErrors = "errors"
	// CheckAborted: requests answered by the caller's sidecar because of
	// an injected fault, of all requests.
	CheckAborted = "aborted"
	// CheckDelayed: requests delayed by an injected fault, of the
	// requests an echo replica answered. Delay and abort are drawn
	// apart (as Envoy's fault filter does), so the share is the same
	// among answered requests, where every delay is marked: an aborted
	// response need not say it was delayed too.
	CheckDelayed = "delayed"
	// CheckV2: requests answered by echo-v2, of the requests an echo
	// replica answered.
	CheckV2 = "echo-v2"
)

// Caller is how one client's requests went in a traffic phase.
type Caller struct {
	// Cluster is the client's cluster.
	Cluster  string `json:"cluster"`
	Requests int    `json:"requests"`
	// Errors are real errors; Faults the requests aborted by an
	// injected fault and Delayed those it delayed.
	Errors  int `json:"errors"`
	Faults  int `json:"faults"`
	Delayed int `json:"delayed"`
	// V2 counts the requests echo-v2 answered.
	V2     int     `json:"v2"`
	Checks []Check `json:"checks"`
	OK     bool    `json:"ok"`
}

// JudgeShare judges count of n against the share want (percent): it
// returns the observed share and the tolerance, both in percent, and
// whether the share is within the tolerance. A share of 0 or 100 must
// hold exactly; no requests at all never pass.
func JudgeShare(count, n int, want float64) (share, tolerance float64, ok bool) {
	if n <= 0 {
		return 0, 0, false
	}
	share = 100 * float64(count) / float64(n)
	switch {
	case want <= 0:
		return share, 0, count == 0
	case want >= 100:
		return share, 0, count == n
	}
	p := want / 100
	tolerance = 100 * Sigmas * math.Sqrt(p*(1-p)/float64(n))
	return share, tolerance, math.Abs(share-want) <= tolerance
}

// EvaluateCaller judges the samples of one client (cluster names it)
// against splits: for each split, the errors, aborted and delayed shares
// of its requests and the echo-v2 share of its answered requests. A
// sample whose variant no split names counts but is not judged.
func EvaluateCaller(cluster string, splits []Split, samples []Sample) Caller {
	c := Caller{Cluster: cluster, OK: true}
	type counts struct{ requests, errors, aborted, delayed, answered, v2 int }
	// delayed counts answered requests only: see CheckDelayed.
	by := map[string]*counts{}
	for _, sp := range splits {
		by[sp.Variant] = &counts{}
	}
	for _, s := range samples {
		c.Requests++
		n := by[s.Variant]
		if n == nil {
			n = &counts{}
		}
		n.requests++
		if s.Delayed() {
			c.Delayed++
		}
		switch {
		case s.Err != nil:
			c.Errors++
			n.errors++
		case s.Aborted():
			c.Faults++
			n.aborted++
		default:
			n.answered++
			if s.Delayed() {
				n.delayed++
			}
			if s.Service == CanaryService {
				c.V2++
				n.v2++
			}
		}
	}
	for _, sp := range splits {
		n := by[sp.Variant]
		for _, k := range []struct {
			what      string
			count, of int
			want      float64
		}{
			{CheckErrors, n.errors, n.requests, 0},
			{CheckAborted, n.aborted, n.requests, sp.Abort},
			{CheckDelayed, n.delayed, n.answered, sp.Delay},
			{CheckV2, n.v2, n.answered, sp.V2},
		} {
			ck := Check{Variant: sp.Variant, What: k.what, Count: k.count, Of: k.of, Want: k.want}
			ck.Share, ck.Tolerance, ck.OK = JudgeShare(k.count, k.of, k.want)
			c.OK = c.OK && ck.OK
			c.Checks = append(c.Checks, ck)
		}
	}
	return c
}

// String says what the check found and wants, for reasons and the live
// view: `echo-v2 answered 9.8% of 400 (want 10% ± 6.0%)`.
func (ck Check) String() string {
	var what string
	switch ck.What {
	case CheckErrors:
		what = "real errors"
	case CheckAborted:
		what = "aborted by the fault"
	case CheckDelayed:
		what = "delayed by the fault"
	case CheckV2:
		what = "echo-v2 answered"
	default:
		what = ck.What
	}
	if ck.Variant != "" {
		what = fmt.Sprintf("[%s: %s] %s", VariantHeader, ck.Variant, what)
	}
	if ck.Of == 0 {
		return fmt.Sprintf("%s: no requests", what)
	}
	want := fmt.Sprintf("%g%%", ck.Want)
	if ck.Tolerance > 0 {
		want += fmt.Sprintf(" ± %.1f%%", ck.Tolerance)
	}
	return fmt.Sprintf("%s %d of %d, %.1f%% (want %s)", what, ck.Count, ck.Of, ck.Share, want)
}

// reason lists the failed checks of c; "" when every check passed.
func (c Caller) reason() string {
	var why []string
	for _, ck := range c.Checks {
		if !ck.OK {
			why = append(why, ck.String())
		}
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("%s's client: %s", c.Cluster, strings.Join(why, ", "))
}

// Share returns the observed share of what, per judged variant, for the
// summary table: "9.8%", or "b 100.0%, others 0.0%" when the phase
// judges several variants; "-" when what was not judged.
func (c Caller) Share(what string) string {
	var parts []string
	var n int
	for _, ck := range c.Checks {
		if ck.What == what {
			n++
		}
	}
	for _, ck := range c.Checks {
		if ck.What != what {
			continue
		}
		s := fmt.Sprintf("%.1f%%", ck.Share)
		if n > 1 {
			v := ck.Variant
			if v == "" {
				v = "others"
			}
			s = v + " " + s
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// FaultShares returns the share of the caller's requests that an
// injected fault aborted, and of its answered requests that one delayed
// (as CheckAborted and CheckDelayed count), for the summary table:
// "19.8%/10.3%"; "none" when there were none.
func (c Caller) FaultShares() string {
	if c.Requests == 0 || c.Faults == 0 && c.Delayed == 0 {
		return "none"
	}
	delayed := 0.0
	if answered := c.Requests - c.Errors - c.Faults; answered > 0 {
		delayed = 100 * float64(c.Delayed) / float64(answered)
	}
	return fmt.Sprintf("%.1f%%/%.1f%%", 100*float64(c.Faults)/float64(c.Requests), delayed)
}

// judgeCallers adds the callers of a traffic phase to r: the phase fails
// unless every caller passed every check.
func (r *Result) judgeCallers(callers []Caller) {
	r.Callers = callers
	for _, c := range callers {
		if why := c.reason(); why != "" {
			r.fail(why)
		}
	}
}
