package tracing_test

import (
	"net/http"
	"testing"

	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

// BenchmarkSpan is one request's tracing work in one sidecar: extract the
// caller's context, start a span, inject its context, end it; a new
// trace at 0% (not sampled: propagation alone) and 100% (exported to
// memory), and a sampled caller's trace.
//
//	go test ./sidecar/tracing -run '^$' -bench Span -benchmem
func BenchmarkSpan(b *testing.B) {
	for _, tc := range []struct {
		name    string
		percent float64
		parent  string
	}{
		{"new-unsampled", 0, ""},
		{"new-sampled", 100, ""},
		{"w3c-parent-sampled", 0, "00-" + traceHex + "-" + spanHex + "-01"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tr, _, _ := newTestTracer(b, "east-1", tc.percent)
			h := http.Header{}
			b.ReportAllocs()
			for b.Loop() {
				clear(h)
				if tc.parent != "" {
					h["Traceparent"] = []string{tc.parent}
				}
				sp := tr.StartClient(h, "GET", "/", "demo/echo:8080")
				sp.Attempt(tracing.Endpoint{Address: "127.0.0.1:15006", Cluster: "east-1"})
				sp.End(200, "")
			}
		})
	}
}
