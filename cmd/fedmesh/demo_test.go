package main

import (
	"strings"
	"testing"

	"github.com/fedmesh/fedmesh/internal/demo"
)

// The summary shows each failover phase's trace (the clusters it crossed,
// its id and Jaeger UI URL) and the Jaeger UI among what --keep leaves
// running; without Jaeger it says tracing was off and why.
func TestPrintSummaryTracing(t *testing.T) {
	clusters, err := demo.Layout(3)
	if err != nil {
		t.Fatal(err)
	}
	id := "6ca858b9423c029111b97c1f3954affc"
	phases := []demo.Result{
		{Phase: demo.Phase{Name: "steady", Expect: "east-1"}, OK: true},
		{Phase: demo.Phase{Name: "east-1 echo killed", Expect: "east-2"}, OK: true,
			Trace: &demo.TraceCheck{ID: id, Clusters: []string{"east-1", "east-2"}, Spans: 2, URL: demo.TraceURL(id)}},
		{Phase: demo.Phase{Name: "east-2 echo killed too", Expect: "west-1"}, Reason: "tracing: no trace crossed",
			Trace: &demo.TraceCheck{Err: "no trace crossed from east-1 to west-1"}},
	}
	on := &demo.Summary{Clusters: clusters, Phases: phases, Running: []string{"jaeger (pid 12)"}, OK: false,
		Tracing: demo.Tracing{On: true, UI: demo.JaegerUI(), OTLP: demo.OTLPEndpoint(), SamplingPercent: demo.TraceSampling}}
	var b strings.Builder
	printSummary(&b, on)
	out := b.String()
	for _, want := range []string{
		"east-1->east-2",
		"none found",
		"traces in Jaeger http://127.0.0.10:16686 (service client.demo, 10% of traces sampled):",
		"TRACE  east-1 echo killed     " + id + "  east-1 -> east-2  http://127.0.0.10:16686/trace/" + id,
		"TRACE  east-2 echo killed too none found: no trace crossed from east-1 to west-1",
		"traces:  http://127.0.0.10:16686   (Jaeger UI; service client.demo)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(strings.SplitN(out, "\n", 4)[2], "TRACE") {
		t.Errorf("the table has no TRACE column:\n%s", out)
	}

	off := &demo.Summary{Clusters: clusters, Phases: phases[:1], OK: true, Tracing: demo.Tracing{Note: demo.JaegerMissing}}
	b.Reset()
	printSummary(&b, off)
	out = b.String()
	if !strings.Contains(out, "tracing was off: "+demo.JaegerMissing) {
		t.Errorf("summary without Jaeger does not say tracing was off:\n%s", out)
	}
	if strings.Contains(out, "traces in Jaeger") || strings.Contains(out, "16686") {
		t.Errorf("summary without Jaeger names Jaeger's UI:\n%s", out)
	}
}
