package demo

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/echo"
)

func TestJudgeShare(t *testing.T) {
	tests := []struct {
		name          string
		count, n      int
		want          float64
		wantShare     float64
		wantTolerance float64
		ok            bool
	}{
		// 4 sigma of 400 requests at 10%: 4*sqrt(0.1*0.9/400) = 6%.
		{name: "canary on target", count: 40, n: 400, want: 10, wantShare: 10, wantTolerance: 6, ok: true},
		{name: "canary at the upper bound", count: 64, n: 400, want: 10, wantShare: 16, wantTolerance: 6, ok: true},
		{name: "canary above the bound", count: 65, n: 400, want: 10, wantShare: 16.25, wantTolerance: 6},
		{name: "canary at the lower bound", count: 16, n: 400, want: 10, wantShare: 4, wantTolerance: 6, ok: true},
		{name: "canary below the bound", count: 15, n: 400, want: 10, wantShare: 3.75, wantTolerance: 6},
		{name: "canary ignored", count: 0, n: 400, want: 10, wantShare: 0, wantTolerance: 6},
		// 4*sqrt(0.2*0.8/100) = 16%: fewer requests, a wider bound.
		{name: "faults of few requests", count: 31, n: 100, want: 20, wantShare: 31, wantTolerance: 16, ok: true},
		{name: "none wanted, none seen", count: 0, n: 250, want: 0, ok: true},
		{name: "none wanted, one seen", count: 1, n: 250, want: 0, wantShare: 0.4},
		{name: "all wanted, all seen", count: 250, n: 250, want: 100, wantShare: 100, ok: true},
		{name: "all wanted, one missing", count: 249, n: 250, want: 100, wantShare: 99.6},
		{name: "no requests", count: 0, n: 0, want: 10},
		{name: "no requests, none wanted", count: 0, n: 0, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			share, tol, ok := JudgeShare(tt.count, tt.n, tt.want)
			if math.Abs(share-tt.wantShare) > 1e-9 || math.Abs(tol-tt.wantTolerance) > 1e-9 || ok != tt.ok {
				t.Errorf("JudgeShare(%d, %d, %g) = %g, %g, %v; want %g, %g, %v", tt.count, tt.n, tt.want, share, tol, ok, tt.wantShare, tt.wantTolerance, tt.ok)
			}
		})
	}
}

// mix makes n samples of variant: the first aborted answered by the
// caller's sidecar, the next failed for real, the next delayed ones
// answered by echo (delayed), the next v2 by echo-v2, the rest by echo.
func mix(variant string, n, aborted, failed, delayed, v2 int) []Sample {
	var out []Sample
	for i := 0; i < n; i++ {
		s := Sample{At: t0.Add(time.Duration(i) * 10 * time.Millisecond), Variant: variant, Code: 200}
		switch {
		case i < aborted:
			s.Code, s.Fault = 503, "abort"
		case i < aborted+failed:
			s.Code, s.Err = 503, errors.New("HTTP 503")
		case i < aborted+failed+v2:
			s.Cluster, s.Service, s.Version = "west-1", CanaryService, "v2"
		default:
			s.Cluster, s.Service, s.Version = "east-1", "echo", "v1"
		}
		if i >= aborted+failed && i < aborted+failed+delayed {
			s.Fault = "delay"
		}
		out = append(out, s)
	}
	return out
}

func TestEvaluateCaller(t *testing.T) {
	canary := []Split{{V2: 10}}
	faults := []Split{{Abort: 20, Delay: 10}}
	ab := []Split{{Variant: "b", V2: 100}, {V2: 0}}
	tests := []struct {
		name    string
		splits  []Split
		samples []Sample
		// want is the failed checks' strings, in order; none when the
		// caller passed.
		want                              []string
		errors, faults, delayed, v2, reqs int
	}{
		{name: "canary within the bound", splits: canary, samples: mix("", 400, 0, 0, 0, 44), v2: 44, reqs: 400},
		{name: "canary ignored", splits: canary, samples: mix("", 400, 0, 0, 0, 0), reqs: 400,
			want: []string{"echo-v2 answered 0 of 400, 0.0% (want 10% ± 6.0%)"}},
		{name: "canary with a real error", splits: canary, samples: mix("", 400, 0, 1, 0, 40), errors: 1, v2: 40, reqs: 400,
			want: []string{"real errors 1 of 400, 0.2% (want 0%)"}},
		{name: "faults counted apart from errors", splits: faults, samples: mix("", 400, 80, 0, 40, 0), faults: 80, delayed: 40, reqs: 400},
		// 10% ± 6.7% of the 320 answered requests: 14 pass (of all 400
		// requests they would not: 3.5% < 10% - 6%), 10 do not.
		{name: "delays counted among the answered requests", splits: faults, samples: mix("", 400, 80, 0, 14, 0), faults: 80, delayed: 14, reqs: 400},
		{name: "too few delays", splits: faults, samples: mix("", 400, 80, 0, 10, 0), faults: 80, delayed: 10, reqs: 400,
			want: []string{"delayed by the fault 10 of 320, 3.1% (want 10% ± 6.7%)"}},
		{name: "faults not injected", splits: faults, samples: mix("", 400, 0, 0, 0, 0), reqs: 400,
			want: []string{"aborted by the fault 0 of 400, 0.0% (want 20% ± 8.0%)", "delayed by the fault 0 of 400, 0.0% (want 10% ± 6.0%)"}},
		{name: "an error status without the fault header is a real error", splits: faults, samples: mix("", 400, 0, 80, 40, 0), errors: 80, delayed: 40, reqs: 400,
			want: []string{"real errors 80 of 400, 20.0% (want 0%)", "aborted by the fault 0 of 400, 0.0% (want 20% ± 8.0%)"}},
		{name: "a fault where none is configured", splits: canary, samples: mix("", 400, 1, 0, 0, 40), faults: 1, v2: 40, reqs: 400,
			want: []string{"aborted by the fault 1 of 400, 0.2% (want 0%)"}},
		{name: "a/b obeyed", splits: ab, samples: append(mix("b", 200, 0, 0, 0, 200), mix("", 200, 0, 0, 0, 0)...), v2: 200, reqs: 400},
		{name: "a/b: one b request to echo, one other to echo-v2", splits: ab,
			samples: append(mix("b", 200, 0, 0, 0, 199), mix("", 200, 0, 0, 0, 1)...), v2: 200, reqs: 400,
			want: []string{"[x-variant: b] echo-v2 answered 199 of 200, 99.5% (want 100%)", "echo-v2 answered 1 of 200, 0.5% (want 0%)"}},
		{name: "a/b without requests of a variant", splits: ab, samples: mix("", 200, 0, 0, 0, 0), reqs: 200,
			want: []string{"[x-variant: b] real errors: no requests", "[x-variant: b] aborted by the fault: no requests",
				"[x-variant: b] delayed by the fault: no requests", "[x-variant: b] echo-v2 answered: no requests"}},
		{name: "a variant no split names counts, unjudged", splits: canary, samples: append(mix("", 400, 0, 0, 0, 40), mix("c", 10, 0, 10, 0, 0)...),
			errors: 10, v2: 40, reqs: 410},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := EvaluateCaller("west-1", tt.splits, tt.samples)
			var failed []string
			for _, ck := range c.Checks {
				if !ck.OK {
					failed = append(failed, ck.String())
				}
			}
			if diff := cmp.Diff(tt.want, failed); diff != "" {
				t.Errorf("failed checks (-want +got):\n%s", diff)
			}
			if c.OK != (len(tt.want) == 0) {
				t.Errorf("OK = %v, want %v", c.OK, len(tt.want) == 0)
			}
			if got, want := len(c.Checks), 4*len(tt.splits); got != want {
				t.Errorf("%d checks, want %d (errors, aborted, delayed, echo-v2 per split)", got, want)
			}
			got := []int{c.Requests, c.Errors, c.Faults, c.Delayed, c.V2}
			if diff := cmp.Diff([]int{tt.reqs, tt.errors, tt.faults, tt.delayed, tt.v2}, got); diff != "" {
				t.Errorf("requests, errors, faults, delayed, v2 (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJudgeCallers(t *testing.T) {
	ok := EvaluateCaller("east-1", []Split{{V2: 10}}, mix("", 400, 0, 0, 0, 40))
	bad := EvaluateCaller("west-1", []Split{{V2: 10}}, mix("", 400, 0, 0, 0, 0))
	r := Result{OK: true}
	r.judgeCallers([]Caller{ok, bad})
	want := "west-1's client: echo-v2 answered 0 of 400, 0.0% (want 10% ± 6.0%)"
	if r.OK || r.Reason != want || len(r.Callers) != 2 {
		t.Errorf("OK=%v reason=%q callers=%d; want failed with %q and both callers", r.OK, r.Reason, len(r.Callers), want)
	}
	r = Result{OK: true}
	r.judgeCallers([]Caller{ok})
	if !r.OK || r.Reason != "" {
		t.Errorf("OK=%v reason=%q; want OK", r.OK, r.Reason)
	}
}

func TestCallerShare(t *testing.T) {
	ab := EvaluateCaller("east-1", []Split{{Variant: "b", V2: 100}, {V2: 0}}, append(mix("b", 10, 0, 0, 0, 10), mix("", 10, 0, 0, 0, 0)...))
	if got, want := ab.Share(CheckV2), "b 100.0%, others 0.0%"; got != want {
		t.Errorf("a/b Share = %q, want %q", got, want)
	}
	canary := EvaluateCaller("east-1", []Split{{V2: 10}}, mix("", 40, 0, 0, 0, 4))
	if got, want := canary.Share(CheckV2), "10.0%"; got != want {
		t.Errorf("canary Share = %q, want %q", got, want)
	}
	if got := (Caller{}).Share(CheckV2); got != "-" {
		t.Errorf("Share of nothing judged = %q, want -", got)
	}
	faults := EvaluateCaller("west-1", []Split{{Abort: 20, Delay: 10}}, mix("", 400, 80, 0, 40, 0))
	if got, want := faults.FaultShares(), "20.0%/12.5%"; got != want {
		t.Errorf("FaultShares = %q, want %q", got, want)
	}
	if got, want := canary.FaultShares(), "none"; got != want {
		t.Errorf("FaultShares without faults = %q, want %q", got, want)
	}
}

// TestEvaluateFaults checks that a phase counts aborted requests apart
// from errors and from what the clusters served.
func TestEvaluateFaults(t *testing.T) {
	p := Phase{Name: "fault injection", Expect: "east-1", Forbid: []string{"east-2"}, Duration: 4 * time.Second}
	samples := mix("", 400, 80, 2, 40, 0)
	r := Evaluate(p, t0, samples)
	if r.Requests != 400 || r.Errors != 2 || r.Faults != 80 || r.Delayed != 40 || r.Served["east-1"] != 318 || len(r.Served) != 1 {
		t.Errorf("requests %d errors %d faults %d delayed %d served %v; want 400, 2, 80, 40, east-1=318",
			r.Requests, r.Errors, r.Faults, r.Delayed, r.Served)
	}
	if !r.OK {
		t.Errorf("not OK: %s (MinShare 0 judges no share)", r.Reason)
	}
}

func TestSampleFaults(t *testing.T) {
	tests := []struct {
		s                Sample
		aborted, delayed bool
	}{
		{s: Sample{Code: 503, Fault: "abort"}, aborted: true},
		{s: Sample{Code: 503, Fault: "delay, abort"}, aborted: true, delayed: true},
		{s: Sample{Code: 200, Fault: "delay"}, delayed: true},
		{s: Sample{Code: 200, Fault: "abort"}}, // answered: the fault did not abort it
		{s: Sample{Code: 503, Fault: "aborted"}},
		{s: Sample{Code: 503, Err: errors.New("HTTP 503")}},
	}
	for _, tt := range tests {
		if tt.s.Aborted() != tt.aborted || tt.s.Delayed() != tt.delayed {
			t.Errorf("%+v: Aborted %v Delayed %v, want %v %v", tt.s, tt.s.Aborted(), tt.s.Delayed(), tt.aborted, tt.delayed)
		}
	}
}

// TestLoadOne sends requests to a server that answers as a sidecar
// does: from echo-v2 for "x-variant: b", with an injected abort for
// "x-variant: abort", with an error status otherwise for
// "x-variant: fail", from echo for the rest.
func TestLoadOne(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get(VariantHeader) {
		case "abort":
			w.Header().Add(FaultHeader, "delay")
			w.Header().Add(FaultHeader, "abort")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case "fail":
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case "b":
			echo.New(echo.Config{Cluster: "west-1", Workload: "echo-v2-1", Service: CanaryService, Version: "v2"}).ServeHTTP(w, r)
			return
		}
		echo.New(echo.Config{Cluster: "east-1", Workload: "echo-1", Service: "echo", Version: "v1"}).ServeHTTP(w, r)
	}))
	defer srv.Close()
	l := &Load{URL: srv.URL, Client: srv.Client()}
	ctx := context.Background()
	type got struct {
		Variant, Cluster, Service, Fault string
		Code                             int
		Aborted, Err                     bool
	}
	view := func(s Sample) got {
		return got{s.Variant, s.Cluster, s.Service, s.Fault, s.Code, s.Aborted(), s.Err != nil}
	}
	for _, tt := range []struct {
		variant string
		want    got
	}{
		{"", got{Cluster: "east-1", Service: "echo", Code: 200}},
		{"b", got{Variant: "b", Cluster: "west-1", Service: CanaryService, Code: 200}},
		{"abort", got{Variant: "abort", Fault: "delay,abort", Code: 503, Aborted: true}},
		{"fail", got{Variant: "fail", Code: 503, Err: true}},
	} {
		if diff := cmp.Diff(tt.want, view(l.one(ctx, tt.variant))); diff != "" {
			t.Errorf("variant %q (-want +got):\n%s", tt.variant, diff)
		}
	}
}

// TestLoadVariants runs a bounded load whose variant changes midway and
// checks what every request carried.
func TestLoadVariants(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(echo.Reply{Cluster: "east-1", Service: "echo", Path: r.Header.Get(VariantHeader)})
	}))
	defer srv.Close()
	l := &Load{URL: srv.URL, Client: srv.Client(), Rate: 200, MaxRequests: 10}
	l.SetVariant(Alternate)
	l.Run(context.Background())
	l.SetVariant(nil)
	l.MaxRequests = 4
	l.Run(context.Background())
	var got []string
	for _, s := range l.Since(time.Time{}) {
		if s.Err != nil {
			t.Fatal(s.Err)
		}
		got = append(got, s.Variant)
	}
	if n := strings.Count(strings.Join(got, ","), "b"); len(got) != 14 || n != 5 {
		t.Errorf("variants %q: want 14 requests, 5 of them b (every other one of the first 10)", got)
	}
}

// TestSince: the samples that began at from or later, in order.
func TestSince(t *testing.T) {
	t0 := time.Unix(100, 0)
	ss := []Sample{{At: t0}, {At: t0.Add(time.Second)}, {At: t0.Add(2 * time.Second)}}
	if got := since(ss, t0.Add(time.Second)); len(got) != 2 || !got[0].At.Equal(t0.Add(time.Second)) {
		t.Errorf("since 1s: %v", got)
	}
	if got := since(ss, t0.Add(3*time.Second)); len(got) != 0 {
		t.Errorf("since 3s: %v", got)
	}
}
