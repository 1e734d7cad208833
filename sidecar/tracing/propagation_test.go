package tracing_test

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

const (
	traceHex  = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanHex   = "00f067aa0ba902b7"
	parentHex = "a3ce929d0e0e4736"
)

func mustIDs(t *testing.T, tid, sid string) (trace.TraceID, trace.SpanID) {
	t.Helper()
	ti, err := trace.TraceIDFromHex(tid)
	if err != nil {
		t.Fatal(err)
	}
	si, err := trace.SpanIDFromHex(sid)
	if err != nil {
		t.Fatal(err)
	}
	return ti, si
}

func TestExtract(t *testing.T) {
	tid, sid := mustIDs(t, traceHex, spanHex)
	short, _ := mustIDs(t, "0000000000000000a3ce929d0e0e4736", spanHex)
	tests := []struct {
		name    string
		h       map[string]string
		format  tracing.Format
		trace   trace.TraceID
		sampled bool
		invalid tracing.Format // counted as malformed
	}{
		{name: "w3c sampled", h: map[string]string{"traceparent": "00-" + traceHex + "-" + spanHex + "-01"}, format: tracing.W3C, trace: tid, sampled: true},
		{name: "w3c not sampled", h: map[string]string{"traceparent": "00-" + traceHex + "-" + spanHex + "-00"}, format: tracing.W3C, trace: tid},
		{name: "b3 single sampled", h: map[string]string{"b3": traceHex + "-" + spanHex + "-1"}, format: tracing.B3Single, trace: tid, sampled: true},
		{name: "b3 single debug with parent", h: map[string]string{"b3": traceHex + "-" + spanHex + "-d-" + parentHex}, format: tracing.B3Single, trace: tid, sampled: true},
		{name: "b3 single no decision", h: map[string]string{"b3": traceHex + "-" + spanHex}, format: tracing.B3Single, trace: tid},
		{name: "b3 single 64-bit trace id", h: map[string]string{"b3": "a3ce929d0e0e4736-" + spanHex + "-1"}, format: tracing.B3Single, trace: short, sampled: true},
		{name: "b3 multi sampled", h: map[string]string{"X-B3-TraceId": traceHex, "X-B3-SpanId": spanHex, "X-B3-Sampled": "1", "X-B3-ParentSpanId": parentHex}, format: tracing.B3Multi, trace: tid, sampled: true},
		{name: "b3 multi debug flag", h: map[string]string{"X-B3-TraceId": traceHex, "X-B3-SpanId": spanHex, "X-B3-Flags": "1"}, format: tracing.B3Multi, trace: tid, sampled: true},
		{name: "b3 multi not sampled", h: map[string]string{"X-B3-TraceId": traceHex, "X-B3-SpanId": spanHex, "X-B3-Sampled": "0"}, format: tracing.B3Multi, trace: tid},
		{name: "w3c wins over b3", h: map[string]string{"traceparent": "00-" + traceHex + "-" + spanHex + "-01", "b3": "0000000000000000a3ce929d0e0e4736-" + spanHex + "-0"}, format: tracing.W3C, trace: tid, sampled: true},
		{name: "malformed w3c falls back to b3", h: map[string]string{"traceparent": "00-xyz-" + spanHex + "-01", "b3": traceHex + "-" + spanHex + "-1"}, format: tracing.B3Single, trace: tid, sampled: true, invalid: tracing.W3C},
		{name: "b3 sampling only names no parent", h: map[string]string{"b3": "0"}},
		{name: "b3 multi sampling only names no parent", h: map[string]string{"X-B3-Sampled": "1"}},
		{name: "b3 upper case hex", h: map[string]string{"b3": "4BF92F3577B34DA6A3CE929D0E0E4736-" + spanHex + "-1"}, invalid: tracing.B3Single},
		{name: "b3 zero trace id", h: map[string]string{"b3": "00000000000000000000000000000000-" + spanHex + "-1"}, invalid: tracing.B3Single},
		{name: "b3 bad sampling state", h: map[string]string{"b3": traceHex + "-" + spanHex + "-x"}, invalid: tracing.B3Single},
		{name: "b3 multi span id missing", h: map[string]string{"X-B3-TraceId": traceHex}, invalid: tracing.B3Multi},
		{name: "b3 multi bad sampled", h: map[string]string{"X-B3-TraceId": traceHex, "X-B3-SpanId": spanHex, "X-B3-Sampled": "yes"}, invalid: tracing.B3Multi},
		{name: "nothing", h: map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.h {
				h.Set(k, v)
			}
			var invalid tracing.Format
			p := tracing.Propagator{Invalid: func(f tracing.Format) { invalid |= f }}
			ctx, f := p.Extract(context.Background(), h)
			if f != tc.format {
				t.Errorf("format = %v, want %v", f, tc.format)
			}
			if invalid != tc.invalid {
				t.Errorf("counted invalid %v, want %v", invalid, tc.invalid)
			}
			sc := trace.SpanContextFromContext(ctx)
			if tc.format == 0 {
				if sc.IsValid() {
					t.Errorf("extracted %v from %v, want nothing", sc, tc.h)
				}
				return
			}
			if sc.TraceID() != tc.trace || sc.SpanID() != sid || sc.IsSampled() != tc.sampled || !sc.IsRemote() {
				t.Errorf("extracted trace %s span %s sampled %v remote %v, want %s %s %v remote", sc.TraceID(), sc.SpanID(), sc.IsSampled(), sc.IsRemote(), tc.trace, sid, tc.sampled)
			}
		})
	}
}

func TestInject(t *testing.T) {
	tid, sid := mustIDs(t, traceHex, spanHex)
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	stale := func() http.Header {
		h := http.Header{}
		h.Set("traceparent", "00-11111111111111111111111111111111-2222222222222222-00")
		h.Set("tracestate", "old=1")
		h.Set("b3", "11111111111111111111111111111111-2222222222222222-0-3333333333333333")
		h.Set("X-B3-TraceId", "11111111111111111111111111111111")
		h.Set("X-B3-SpanId", "2222222222222222")
		h.Set("X-B3-ParentSpanId", "3333333333333333")
		h.Set("X-B3-Sampled", "0")
		h.Set("X-B3-Flags", "1")
		h.Set("X-Other", "kept")
		return h
	}
	tests := []struct {
		name string
		b3   tracing.Format
		want map[string]string
	}{
		{name: "w3c only", want: map[string]string{"Traceparent": "00-" + traceHex + "-" + spanHex + "-01", "Tracestate": "vendor=abc", "X-Other": "kept"}},
		{name: "w3c and b3 single", b3: tracing.B3Single, want: map[string]string{
			"Traceparent": "00-" + traceHex + "-" + spanHex + "-01", "Tracestate": "vendor=abc", "X-Other": "kept",
			"B3": traceHex + "-" + spanHex + "-1"}},
		{name: "w3c and b3 multi", b3: tracing.B3Multi | tracing.W3C, want: map[string]string{
			"Traceparent": "00-" + traceHex + "-" + spanHex + "-01", "Tracestate": "vendor=abc", "X-Other": "kept",
			"X-B3-Traceid": traceHex, "X-B3-Spanid": spanHex, "X-B3-Sampled": "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := stale()
			tracing.Propagator{}.Inject(ctx, h, tc.b3)
			if len(h) != len(tc.want) {
				t.Errorf("headers %v, want exactly %v", h, tc.want)
			}
			for k, v := range tc.want {
				if got := h.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	t.Run("no span context leaves the headers alone", func(t *testing.T) {
		h := stale()
		tracing.Propagator{}.Inject(context.Background(), h, tracing.B3Single)
		if h.Get("b3") == "" || h.Get("traceparent") == "" {
			t.Errorf("headers changed without a span context: %v", h)
		}
	})
}

// TestRoundTrip injects each format and extracts it again: what one
// sidecar writes, the next reads as the same span context.
func TestRoundTrip(t *testing.T) {
	tid, sid := mustIDs(t, traceHex, spanHex)
	for _, sampled := range []bool{true, false} {
		var flags trace.TraceFlags
		if sampled {
			flags = trace.FlagsSampled
		}
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})
		ctx := trace.ContextWithSpanContext(context.Background(), sc)
		for _, f := range []tracing.Format{tracing.B3Single, tracing.B3Multi} {
			h := http.Header{}
			tracing.Propagator{}.Inject(ctx, h, f)
			h.Del("traceparent") // read the B3 form alone
			var bad tracing.Format
			got, format := tracing.Propagator{Invalid: func(f tracing.Format) { bad |= f }}.Extract(context.Background(), h)
			gsc := trace.SpanContextFromContext(got)
			if format != f || bad != 0 || gsc.TraceID() != tid || gsc.SpanID() != sid || gsc.IsSampled() != sampled {
				t.Errorf("%v sampled=%v: extracted %v (format %v, invalid %v) from %v", f, sampled, gsc, format, bad, h)
			}
		}
	}
}

// FuzzExtract feeds arbitrary header values to every format: extraction
// never panics, and whatever it accepts is a valid span context that
// survives another inject and extract unchanged.
func FuzzExtract(f *testing.F) {
	f.Add("00-"+traceHex+"-"+spanHex+"-01", traceHex+"-"+spanHex+"-1-"+parentHex, traceHex, spanHex, "1")
	f.Add("", "0", "", "", "d")
	f.Add("ff-"+traceHex+"-"+spanHex+"-01-extra", "a3ce929d0e0e4736-"+spanHex, "a3ce929d0e0e4736", spanHex, "true")
	f.Fuzz(func(t *testing.T, tp, b3, tid, sid, sampled string) {
		h := http.Header{}
		set := func(k, v string) {
			if v != "" {
				h[http.CanonicalHeaderKey(k)] = []string{v}
			}
		}
		set("traceparent", tp)
		set("b3", b3)
		set("X-B3-TraceId", tid)
		set("X-B3-SpanId", sid)
		set("X-B3-Sampled", sampled)
		ctx, format := tracing.Propagator{}.Extract(context.Background(), h)
		sc := trace.SpanContextFromContext(ctx)
		if format == 0 {
			if sc.IsValid() {
				t.Fatalf("no format but a span context %v", sc)
			}
			return
		}
		if !sc.IsValid() {
			t.Fatalf("format %v but an invalid span context", format)
		}
		out := http.Header{}
		tracing.Propagator{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), out, tracing.B3Single|tracing.B3Multi)
		again, _ := tracing.Propagator{}.Extract(context.Background(), out)
		if got := trace.SpanContextFromContext(again); got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || got.IsSampled() != sc.IsSampled() {
			t.Fatalf("re-extracted %v, want %v", got, sc)
		}
	})
}
