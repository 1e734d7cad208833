package demo

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Tracing in the demo: every sidecar exports its spans over OTLP to one
// Jaeger (v1.75.0, all-in-one, in-memory storage) that the demo runs on
// JaegerIP, and after each failover phase the demo asks Jaeger's HTTP API
// for a trace that crossed clusters: the CLIENT span of east-1's client
// sidecar with a SERVER span, its child, of an echo sidecar in the cluster
// that served the phase.

// ClientService is the service name (WORKLOAD.NAMESPACE) under which the
// demo clients' sidecars report their spans.
const ClientService = "client.demo"

// JaegerTrace is the part of a trace in Jaeger's HTTP API
// (/api/traces, /api/traces/ID) that the demo reads.
type JaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []JaegerSpan             `json:"spans"`
	Processes map[string]JaegerProcess `json:"processes"`
}

// JaegerSpan is one span of a JaegerTrace.
type JaegerSpan struct {
	SpanID     string      `json:"spanID"`
	References []JaegerRef `json:"references"`
	// StartTime is in microseconds since the epoch.
	StartTime int64      `json:"startTime"`
	Tags      []JaegerKV `json:"tags"`
	ProcessID string     `json:"processID"`
}

// JaegerRef links a span to another (its parent: CHILD_OF).
type JaegerRef struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// JaegerKV is a span tag.
type JaegerKV struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// JaegerProcess is the process (resource) that reported spans.
type JaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

// ParseJaegerTraces parses an answer of Jaeger's HTTP API for traces:
// {"data": [TRACE, ...], "errors": [...]}. An answer with errors, or one
// that is not that shape, is an error that says what was wrong.
func ParseJaegerTraces(body []byte) ([]JaegerTrace, error) {
	var v struct {
		Data   []JaegerTrace `json:"data"`
		Errors []struct {
			Code int    `json:"code"`
			Msg  string `json:"msg"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("jaeger answer: %w", err)
	}
	if len(v.Errors) > 0 {
		var msgs []string
		for _, e := range v.Errors {
			msgs = append(msgs, fmt.Sprintf("%d %s", e.Code, e.Msg))
		}
		return nil, fmt.Errorf("jaeger answered errors: %s", strings.Join(msgs, "; "))
	}
	for i, t := range v.Data {
		if t.TraceID == "" {
			return nil, fmt.Errorf("jaeger answer: trace %d has no traceID", i)
		}
		for j, s := range t.Spans {
			if s.SpanID == "" {
				return nil, fmt.Errorf("jaeger answer: trace %s: span %d has no spanID", t.TraceID, j)
			}
		}
	}
	return v.Data, nil
}

// TraceCheck is the outcome of a phase's trace check.
type TraceCheck struct {
	// ID is the trace found, empty when none was.
	ID string `json:"id,omitempty"`
	// Clusters are the clusters the trace crossed: the client span's,
	// then those of its server spans in the order they started (a
	// failed attempt's cluster before the one that answered).
	Clusters []string `json:"clusters,omitempty"`
	// Spans counts the trace's spans.
	Spans int `json:"spans,omitempty"`
	// URL shows the trace in the Jaeger UI.
	URL string `json:"url,omitempty"`
	// Err says why no trace was found.
	Err string `json:"error,omitempty"`
}

// Crossing returns "east-1 -> east-2": the clusters the trace crossed.
func (tc TraceCheck) Crossing() string { return strings.Join(tc.Clusters, " -> ") }

// tracedSpan is a span with its tags as strings and its parent.
type tracedSpan struct {
	id, parent, service string
	start               int64
	tags                map[string]string
}

func spansOf(t JaegerTrace) []tracedSpan {
	out := make([]tracedSpan, 0, len(t.Spans))
	for _, s := range t.Spans {
		x := tracedSpan{id: s.SpanID, service: t.Processes[s.ProcessID].ServiceName, start: s.StartTime, tags: map[string]string{}}
		for _, kv := range s.Tags {
			x.tags[kv.Key] = fmt.Sprint(kv.Value)
		}
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" {
				x.parent = r.SpanID
			}
		}
		out = append(out, x)
	}
	return out
}

var errNoCrossing = errors.New("no trace crossed")

// FindCrossing looks among traces for one that crossed from cluster from
// to cluster to: a CLIENT span of ClientService in from (its
// fedmesh.cluster tag) with a SERVER span in to that is its child. Of
// several, it takes the one that started first. The error says what the
// traces held instead.
func FindCrossing(traces []JaegerTrace, from, to string) (TraceCheck, error) {
	type found struct {
		tc    TraceCheck
		start int64
	}
	var best *found
	clients := 0
	seen := map[string]int{} // server spans' clusters, under from's client spans
	for _, t := range traces {
		spans := spansOf(t)
		for _, c := range spans {
			if c.tags["span.kind"] != "client" || c.service != ClientService || c.tags["fedmesh.cluster"] != from {
				continue
			}
			clients++
			var children []tracedSpan
			reached := false
			for _, s := range spans {
				if s.parent != c.id || s.tags["span.kind"] != "server" {
					continue
				}
				children = append(children, s)
				seen[s.tags["fedmesh.cluster"]]++
				if s.tags["fedmesh.cluster"] == to {
					reached = true
				}
			}
			if !reached || (best != nil && best.start <= c.start) {
				continue
			}
			sort.SliceStable(children, func(i, j int) bool { return children[i].start < children[j].start })
			tc := TraceCheck{ID: t.TraceID, Clusters: []string{from}, Spans: len(t.Spans)}
			for _, s := range children {
				if cl := s.tags["fedmesh.cluster"]; cl != tc.Clusters[len(tc.Clusters)-1] {
					tc.Clusters = append(tc.Clusters, cl)
				}
			}
			best = &found{tc: tc, start: c.start}
		}
	}
	if best != nil {
		return best.tc, nil
	}
	var where []string
	for cl, n := range seen {
		where = append(where, fmt.Sprintf("%s (%d)", cl, n))
	}
	sort.Strings(where)
	detail := "no server spans under them"
	if len(where) > 0 {
		detail = "their server spans were in " + strings.Join(where, ", ")
	}
	return TraceCheck{}, fmt.Errorf("%w from %s to %s: %d traces, %d client spans of %s in %s, %s",
		errNoCrossing, from, to, len(traces), clients, ClientService, from, detail)
}

// judgeTrace adds the trace check tc to r: the phase fails when no trace
// crossed to the cluster that served it.
func (r *Result) judgeTrace(tc TraceCheck) {
	r.Trace = &tc
	if tc.ID == "" {
		r.fail("tracing: " + tc.Err)
	}
}
