package tracing

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Header names of the propagation formats, in canonical form.
const (
	HeaderTraceparent  = "Traceparent"
	HeaderTracestate   = "Tracestate"
	HeaderB3           = "B3"
	HeaderB3TraceID    = "X-B3-Traceid"
	HeaderB3SpanID     = "X-B3-Spanid"
	HeaderB3ParentSpan = "X-B3-Parentspanid"
	HeaderB3Sampled    = "X-B3-Sampled"
	HeaderB3Flags      = "X-B3-Flags"
)

// Format is a set of trace context formats.
type Format uint8

// The formats a request may carry.
const (
	// W3C is traceparent with an optional tracestate.
	W3C Format = 1 << iota
	// B3Single is the one b3 header: TRACEID-SPANID[-SAMPLED[-PARENT]].
	B3Single
	// B3Multi is X-B3-TraceId, X-B3-SpanId, X-B3-Sampled and friends.
	B3Multi
)

// String names the formats of f, joined by "+"; the format label of the
// invalid context counter uses one at a time.
func (f Format) String() string {
	var parts []string
	if f&W3C != 0 {
		parts = append(parts, "w3c")
	}
	if f&B3Single != 0 {
		parts = append(parts, "b3")
	}
	if f&B3Multi != 0 {
		parts = append(parts, "b3multi")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// headersOf returns the formats whose headers h carries (valid or not).
func headersOf(h http.Header) Format {
	var f Format
	if len(h[HeaderTraceparent]) > 0 {
		f |= W3C
	}
	if len(h[HeaderB3]) > 0 {
		f |= B3Single
	}
	if len(h[HeaderB3TraceID]) > 0 || len(h[HeaderB3Sampled]) > 0 || len(h[HeaderB3Flags]) > 0 {
		f |= B3Multi
	}
	return f
}

// allHeaders are every header Inject removes before writing its own.
var allHeaders = []string{
	HeaderTraceparent, HeaderTracestate, HeaderB3,
	HeaderB3TraceID, HeaderB3SpanID, HeaderB3ParentSpan, HeaderB3Sampled, HeaderB3Flags,
}

var w3c = propagation.TraceContext{}

// Propagator reads and writes trace context in HTTP headers. The zero
// value is ready; Invalid, when set, is called with the format of every
// header that is present but malformed.
type Propagator struct {
	Invalid func(Format)
}

// Extract returns ctx with the remote span context of h, and the format
// it came in; ctx unchanged and 0 when h carries no valid context.
func (p Propagator) Extract(ctx context.Context, h http.Header) (context.Context, Format) {
	present := headersOf(h)
	if present&W3C != 0 {
		if sc := trace.SpanContextFromContext(w3c.Extract(context.Background(), propagation.HeaderCarrier(h))); sc.IsValid() {
			return trace.ContextWithRemoteSpanContext(ctx, sc), W3C
		}
		p.invalid(W3C)
	}
	if present&B3Single != 0 {
		sc, err := ParseB3Single(h.Get(HeaderB3))
		switch {
		case err == nil:
			return trace.ContextWithRemoteSpanContext(ctx, sc), B3Single
		case !errors.Is(err, errSamplingOnly):
			p.invalid(B3Single)
		}
	}
	if present&B3Multi != 0 {
		sc, err := ParseB3Multi(h)
		switch {
		case err == nil:
			return trace.ContextWithRemoteSpanContext(ctx, sc), B3Multi
		case !errors.Is(err, errSamplingOnly):
			p.invalid(B3Multi)
		}
	}
	return ctx, 0
}

func (p Propagator) invalid(f Format) {
	if p.Invalid != nil {
		p.Invalid(f)
	}
}

// Inject replaces every trace header of h with the span context of ctx:
// traceparent (and tracestate when it is not empty), and B3 in each of
// the forms in b3 (B3Single, B3Multi; W3C in b3 is ignored). Nothing is
// written, and nothing removed, when ctx has no valid span context.
func (Propagator) Inject(ctx context.Context, h http.Header, b3 Format) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	for _, k := range allHeaders {
		delete(h, k)
	}
	// W3C version 00, as propagation.TraceContext writes it, in one
	// allocation: 00-TRACEID-SPANID-FLAGS.
	var tp [55]byte
	copy(tp[:], "00-")
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(tp[3:35], tid[:])
	tp[35] = '-'
	hex.Encode(tp[36:52], sid[:])
	copy(tp[52:], "-00")
	sampled := "0"
	if sc.IsSampled() {
		sampled, tp[54] = "1", '1'
	}
	traceparent := string(tp[:])
	h[HeaderTraceparent] = []string{traceparent}
	if ts := sc.TraceState().String(); ts != "" {
		h[HeaderTracestate] = []string{ts}
	}
	if b3&(B3Single|B3Multi) == 0 {
		return
	}
	tidHex, sidHex := traceparent[3:35], traceparent[36:52]
	if b3&B3Single != 0 {
		h[HeaderB3] = []string{tidHex + "-" + sidHex + "-" + sampled}
	}
	if b3&B3Multi != 0 {
		h[HeaderB3TraceID] = []string{tidHex}
		h[HeaderB3SpanID] = []string{sidHex}
		h[HeaderB3Sampled] = []string{sampled}
	}
}

// errSamplingOnly is a B3 header that carries a sampling decision and no
// ids ("b3: 0", "X-B3-Sampled: 1" alone): valid B3, but no parent.
var errSamplingOnly = errors.New("b3: sampling state without trace and span ids")

// ParseB3Single parses the single b3 header,
// TRACEID-SPANID[-SAMPLINGSTATE[-PARENTSPANID]], with a trace id of 16 or
// 32 lower-case hex digits (16 are padded to 128 bits), a span id of 16,
// and a sampling state of 0, 1 or d (debug, sampled). A lone sampling
// state is valid B3 that names no parent: it returns an error that wraps
// errSamplingOnly.
func ParseB3Single(v string) (trace.SpanContext, error) {
	switch v {
	case "0", "1", "d":
		return trace.SpanContext{}, errSamplingOnly
	}
	parts := strings.Split(v, "-")
	if len(parts) < 2 || len(parts) > 4 {
		return trace.SpanContext{}, fmt.Errorf("b3 %q: want TRACEID-SPANID[-SAMPLED[-PARENTSPANID]]", v)
	}
	tid, err := b3TraceID(parts[0])
	if err != nil {
		return trace.SpanContext{}, err
	}
	sid, err := b3SpanID(parts[1])
	if err != nil {
		return trace.SpanContext{}, err
	}
	var flags trace.TraceFlags
	if len(parts) >= 3 {
		switch parts[2] {
		case "1", "d":
			flags = trace.FlagsSampled
		case "0":
		default:
			return trace.SpanContext{}, fmt.Errorf("b3 sampling state %q: want 0, 1 or d", parts[2])
		}
	}
	if len(parts) == 4 {
		if _, err := b3SpanID(parts[3]); err != nil {
			return trace.SpanContext{}, fmt.Errorf("b3 parent: %w", err)
		}
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true}), nil
}

// ParseB3Multi parses the multi-header form: X-B3-TraceId and X-B3-SpanId
// (as in ParseB3Single), X-B3-Sampled 0 or 1 (true and false accepted, as
// older tracers send them), X-B3-Flags 1 for debug (sampled). Sampling
// headers without ids return an error that wraps errSamplingOnly.
func ParseB3Multi(h http.Header) (trace.SpanContext, error) {
	var flags trace.TraceFlags
	switch s := h.Get(HeaderB3Sampled); s {
	case "1", "true":
		flags = trace.FlagsSampled
	case "", "0", "false":
	default:
		return trace.SpanContext{}, fmt.Errorf("x-b3-sampled %q: want 0 or 1", s)
	}
	switch f := h.Get(HeaderB3Flags); f {
	case "1":
		flags = trace.FlagsSampled
	case "", "0":
	default:
		return trace.SpanContext{}, fmt.Errorf("x-b3-flags %q: want 1 or none", f)
	}
	ts, ss := h.Get(HeaderB3TraceID), h.Get(HeaderB3SpanID)
	if ts == "" && ss == "" {
		return trace.SpanContext{}, errSamplingOnly
	}
	tid, err := b3TraceID(ts)
	if err != nil {
		return trace.SpanContext{}, fmt.Errorf("x-b3-traceid: %w", err)
	}
	sid, err := b3SpanID(ss)
	if err != nil {
		return trace.SpanContext{}, fmt.Errorf("x-b3-spanid: %w", err)
	}
	if ps := h.Get(HeaderB3ParentSpan); ps != "" {
		if _, err := b3SpanID(ps); err != nil {
			return trace.SpanContext{}, fmt.Errorf("x-b3-parentspanid: %w", err)
		}
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true}), nil
}

// b3TraceID parses 16 or 32 lower-case hex digits, not all zero.
func b3TraceID(s string) (trace.TraceID, error) {
	var id trace.TraceID
	if len(s) != 16 && len(s) != 32 || !lowerHex(s) {
		return id, fmt.Errorf("trace id %q: want 16 or 32 lower-case hex digits", s)
	}
	if _, err := hex.Decode(id[16-len(s)/2:], []byte(s)); err != nil {
		return id, fmt.Errorf("trace id %q: %w", s, err)
	}
	if !id.IsValid() {
		return id, fmt.Errorf("trace id %q is zero", s)
	}
	return id, nil
}

// b3SpanID parses 16 lower-case hex digits, not all zero.
func b3SpanID(s string) (trace.SpanID, error) {
	var id trace.SpanID
	if len(s) != 16 || !lowerHex(s) {
		return id, fmt.Errorf("span id %q: want 16 lower-case hex digits", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("span id %q: %w", s, err)
	}
	if !id.IsValid() {
		return id, fmt.Errorf("span id %q is zero", s)
	}
	return id, nil
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
