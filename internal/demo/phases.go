package demo

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Phase is one step of the demo scenario: an action, then a period of
// traffic whose outcome is checked.
type Phase struct {
	// Name is shown in the live view and the summary.
	Name string `json:"name"`
	// Expect is the cluster that must serve the traffic after Settle.
	Expect string `json:"expect"`
	// Forbid lists clusters that must serve nothing after Settle.
	Forbid []string `json:"forbid,omitempty"`
	// Settle is how long after the phase's action the traffic may still
	// move (failover, recovery); it is reported, not checked.
	Settle time.Duration `json:"settle"`
	// Duration is the length of the phase, Settle included.
	Duration time.Duration `json:"duration"`
	// MinShare is the share of requests after Settle that Expect must
	// serve, in percent; 0 judges nothing.
	MinShare float64 `json:"minShare"`
	// Route, in a traffic phase, is what the route cluster's source
	// holds during the phase (the names of the traffic objects in
	// TrafficFile), "none" once they are removed; empty in the other
	// phases.
	Route string `json:"route,omitempty"`
	// Splits, in a traffic phase, are what every caller's requests must
	// show (JudgeShare, EvaluateCaller); empty in the other phases.
	Splits []Split `json:"splits,omitempty"`
}

// Result is how a phase went.
type Result struct {
	Phase Phase `json:"phase"`
	// Requests and Errors count the whole phase, Settle included.
	// Errors are real errors: a request an injected fault aborted is
	// counted in Faults instead.
	Requests int `json:"requests"`
	Errors   int `json:"errors"`
	// Faults and Delayed count the requests of the whole phase that an
	// injected fault aborted or delayed.
	Faults  int `json:"faults"`
	Delayed int `json:"delayed"`
	// Served counts answered requests per serving cluster, after
	// Settle; V2 counts those that echo-v2 answered.
	Served map[string]int `json:"served"`
	V2     int            `json:"v2"`
	// Share is Expect's share of requests after Settle, in percent.
	Share float64 `json:"share"`
	// SwitchedAfter is how long after the phase began every request was
	// served by Expect for at least one second (the failover or recovery
	// time); -1 when that never happened. In a traffic phase it is how
	// long after the route cluster's source changed every caller's
	// requests followed the change (the propagation time to the
	// slowest caller); -1 when they did not within the deadline.
	SwitchedAfter time.Duration `json:"switchedAfter"`
	// ErrorWindow is the time between the first and the last failed
	// request of the phase (0 when none failed).
	ErrorWindow time.Duration `json:"errorWindow"`
	P99         time.Duration `json:"p99"`
	OK          bool          `json:"ok"`
	// Reason says why the phase failed.
	Reason string `json:"reason,omitempty"`
	// Denial is the phase's policy probe, nil when none was sent.
	Denial *Denial `json:"denial,omitempty"`
	// Trace is the phase's trace check (a failover phase, with tracing
	// on): a trace from the first client to the cluster that served.
	// nil when none was made.
	Trace *TraceCheck `json:"trace,omitempty"`
	// Callers are a traffic phase's figures per client, judged against
	// Phase.Splits; the first is the client counted above. Empty in the
	// other phases.
	Callers []Caller `json:"callers,omitempty"`
}

// Denial is the outcome of a policy probe: at the end of a phase the
// client sends one request that the demo's DenyPolicy denies, and the
// demo looks for its audit record in every echo sidecar's audit log. The
// record says which cluster's sidecar denied it.
type Denial struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Code is the HTTP status the client got, 0 when the request failed.
	Code int `json:"code"`
	// Attempts is how many times the request was sent: a failure the
	// mesh made (a transport error, 502, 503, 504), as when the client's
	// endpoints return from ejection just as the probe is sent, is sent
	// again, as a client would, within a few seconds.
	Attempts int `json:"attempts"`
	// Err is why the request or the search for its record failed.
	Err string `json:"error,omitempty"`
	// Cluster and Workload name the echo replica whose sidecar wrote the
	// record, and AuditLog is that sidecar's audit log file; empty when
	// no record was found.
	Cluster  string `json:"cluster,omitempty"`
	Workload string `json:"workload,omitempty"`
	AuditLog string `json:"auditLog,omitempty"`
	// Record is the audit record, as the sidecar wrote it (one JSON
	// line).
	Record json.RawMessage `json:"record,omitempty"`
	// Decision, Policy and Rule are the record's.
	Decision string `json:"decision,omitempty"`
	Policy   string `json:"policy,omitempty"`
	Rule     *int   `json:"rule,omitempty"`
}

// judgeDenial adds the probe dn to r: the phase fails unless the request
// was refused with 403 and a sidecar of r's Expect cluster, the cluster
// that serves the phase's traffic, recorded the denial by DenyPolicy.
func (r *Result) judgeDenial(dn Denial) {
	r.Denial = &dn
	what := dn.Method + " " + dn.Path
	var why string
	switch {
	case dn.Code == 0:
		why = fmt.Sprintf("%s failed: %s", what, dn.Err)
	case dn.Code != http.StatusForbidden:
		why = fmt.Sprintf("%s answered %d, want 403 (denied by %s)", what, dn.Code, DenyPolicy)
	case dn.Cluster == "":
		why = fmt.Sprintf("%s answered 403 but no echo sidecar recorded it: %s", what, dn.Err)
	case dn.Decision != "deny" || dn.Policy != DenyPolicy:
		why = fmt.Sprintf("%s: the audit record says %s by %q, want deny by %s", what, dn.Decision, dn.Policy, DenyPolicy)
	case dn.Cluster != r.Phase.Expect:
		why = fmt.Sprintf("%s was denied in %s, want %s (the cluster that serves)", what, dn.Cluster, r.Phase.Expect)
	default:
		return
	}
	r.fail(why)
}

// fail marks r failed, adding why to its reason.
func (r *Result) fail(why string) {
	r.OK = false
	r.Reason = strings.TrimPrefix(r.Reason+"; "+why, "; ")
}

// Evaluate judges the samples of a phase that began at start.
func Evaluate(p Phase, start time.Time, samples []Sample) Result {
	r := Result{Phase: p, Served: map[string]int{}, SwitchedAfter: -1}
	settled := start.Add(p.Settle)
	var lat []time.Duration
	var after, good int
	var firstErr, lastErr time.Time
	for _, s := range samples {
		r.Requests++
		if s.Delayed() {
			r.Delayed++
		}
		switch {
		case s.Err != nil:
			r.Errors++
			if firstErr.IsZero() {
				firstErr = s.At
			}
			lastErr = s.At
		case s.Aborted():
			r.Faults++
		default:
			lat = append(lat, s.Latency)
		}
		if s.At.Before(settled) {
			continue
		}
		after++
		if s.answered() {
			r.Served[s.Cluster]++
			if s.Service == CanaryService {
				r.V2++
			}
			if s.Cluster == p.Expect {
				good++
			}
		}
	}
	if !firstErr.IsZero() {
		r.ErrorWindow = lastErr.Sub(firstErr)
	}
	r.P99 = percentile(lat, 99)
	r.SwitchedAfter = switchTime(start, samples, p.Expect)
	if after > 0 {
		r.Share = 100 * float64(good) / float64(after)
	}
	var why []string
	if after == 0 {
		why = append(why, "no requests after the settle time")
	} else if r.Share < p.MinShare {
		why = append(why, fmt.Sprintf("%s served %.1f%% of requests, want at least %.0f%% (%s)", p.Expect, r.Share, p.MinShare, servedString(r.Served)))
	}
	for _, f := range p.Forbid {
		if n := r.Served[f]; n > 0 {
			why = append(why, fmt.Sprintf("%s served %d requests, want none", f, n))
		}
	}
	r.OK = len(why) == 0
	r.Reason = strings.Join(why, "; ")
	return r
}

// switchTime is when, after start, a whole second of requests began in
// which every request succeeded and was served by cluster.
func switchTime(start time.Time, samples []Sample, cluster string) time.Duration {
	sorted := append([]Sample(nil), samples...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].At.Before(sorted[j].At) })
	runStart := -1
	for i, s := range sorted {
		if s.Err != nil || s.Cluster != cluster {
			runStart = -1
			continue
		}
		if runStart < 0 {
			runStart = i
		}
		if s.At.Sub(sorted[runStart].At) >= time.Second {
			return sorted[runStart].At.Sub(start)
		}
	}
	return -1
}

func servedString(served map[string]int) string {
	names := make([]string, 0, len(served))
	for n := range served {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", n, served[n]))
	}
	if len(parts) == 0 {
		return "none served"
	}
	return strings.Join(parts, " ")
}
