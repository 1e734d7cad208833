package demo

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// series makes one sample every 100ms from offset from to offset to,
// served by cluster (or failing when cluster is "").
func series(from, to time.Duration, cluster string) []Sample {
	var out []Sample
	for d := from; d < to; d += 100 * time.Millisecond {
		s := Sample{At: t0.Add(d), Latency: 2 * time.Millisecond, Cluster: cluster}
		if cluster == "" {
			s.Err = errors.New("connection refused")
		}
		out = append(out, s)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	failover := Phase{Name: "east-1 down", Expect: "east-2", Forbid: []string{"west-1"}, Settle: 2 * time.Second, Duration: 6 * time.Second, MinShare: 95}
	tests := []struct {
		name    string
		phase   Phase
		samples []Sample
		wantOK  bool
		want    string // substring of the reason
		switch_ time.Duration
		window  time.Duration
	}{
		{
			name:  "clean failover",
			phase: failover,
			samples: append(append(series(0, 500*time.Millisecond, "east-1"), series(500*time.Millisecond, 800*time.Millisecond, "")...),
				series(800*time.Millisecond, 6*time.Second, "east-2")...),
			wantOK: true, switch_: 800 * time.Millisecond, window: 200 * time.Millisecond,
		},
		{
			name:    "failover to the wrong region",
			phase:   failover,
			samples: series(0, 6*time.Second, "west-1"),
			want:    "east-2 served 0.0% of requests, want at least 95% (west-1=40)", switch_: -1,
		},
		{
			name:    "no traffic",
			phase:   failover,
			samples: series(0, time.Second, "east-2"),
			want:    "no requests after the settle time", switch_: -1,
		},
		{
			name:    "some traffic leaks to a forbidden cluster",
			phase:   failover,
			samples: append(series(0, 6*time.Second, "east-2"), Sample{At: t0.Add(3 * time.Second), Cluster: "west-1"}),
			want:    "west-1 served 1 requests, want none", switch_: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Evaluate(tt.phase, t0, tt.samples)
			if r.OK != (tt.want == "") || !strings.Contains(r.Reason, tt.want) {
				t.Errorf("OK=%v reason=%q, want reason containing %q", r.OK, r.Reason, tt.want)
			}
			if r.SwitchedAfter != tt.switch_ {
				t.Errorf("SwitchedAfter = %v, want %v", r.SwitchedAfter, tt.switch_)
			}
			if r.ErrorWindow != tt.window {
				t.Errorf("ErrorWindow = %v, want %v", r.ErrorWindow, tt.window)
			}
		})
	}
}

func TestAggregate(t *testing.T) {
	samples := append(series(0, time.Second, "east-1"), series(0, 200*time.Millisecond, "")...)
	samples[0].Latency = 50 * time.Millisecond
	w := aggregate(t0, samples)
	want := Window{Start: t0, Requests: 12, Errors: 2, Served: map[string]int{"east-1": 10},
		P50: 2 * time.Millisecond, P99: 50 * time.Millisecond, LastError: "connection refused"}
	if diff := cmp.Diff(want, w); diff != "" {
		t.Errorf("window (-want +got):\n%s", diff)
	}
}

func TestJudgeDenial(t *testing.T) {
	rule := 0
	denied := func(cluster string) Denial {
		return Denial{Method: "GET", Path: DeniedPath, Code: 403, Cluster: cluster, Workload: "echo-1",
			Decision: "deny", Policy: DenyPolicy, Rule: &rule}
	}
	tests := []struct {
		name   string
		phase  Result
		denial Denial
		want   string // the reason; "" when OK
	}{
		{name: "denied where the traffic goes", phase: Result{OK: true}, denial: denied("east-2")},
		{name: "denied elsewhere", phase: Result{OK: true}, denial: denied("west-1"),
			want: "GET /admin was denied in west-1, want east-2 (the cluster that serves)"},
		{name: "allowed", phase: Result{OK: true}, denial: Denial{Method: "GET", Path: DeniedPath, Code: 200},
			want: "GET /admin answered 200, want 403 (denied by demo/deny-admin)"},
		{name: "request failed", phase: Result{OK: true}, denial: Denial{Method: "GET", Path: DeniedPath, Err: "connection refused"},
			want: "GET /admin failed: connection refused"},
		{name: "no audit record", phase: Result{OK: true}, denial: Denial{Method: "GET", Path: DeniedPath, Code: 403, Err: "timed out"},
			want: "GET /admin answered 403 but no echo sidecar recorded it: timed out"},
		{name: "denied by another policy", phase: Result{OK: true},
			denial: Denial{Method: "GET", Path: DeniedPath, Code: 403, Cluster: "east-2", Decision: "deny"},
			want:   `GET /admin: the audit record says deny by "", want deny by demo/deny-admin`},
		{name: "reasons add up", phase: Result{Reason: "east-2 served 50.0% of requests"}, denial: denied("west-1"),
			want: "east-2 served 50.0% of requests; GET /admin was denied in west-1, want east-2 (the cluster that serves)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.phase
			r.Phase = Phase{Name: "east-1 echo killed", Expect: "east-2"}
			r.judgeDenial(tt.denial)
			if r.OK != (tt.want == "" && tt.phase.OK) || r.Reason != tt.want {
				t.Errorf("OK=%v reason=%q, want OK=%v reason %q", r.OK, r.Reason, tt.want == "", tt.want)
			}
			if r.Denial == nil || r.Denial.Cluster != tt.denial.Cluster {
				t.Errorf("Denial = %+v, want the probe", r.Denial)
			}
		})
	}
}
