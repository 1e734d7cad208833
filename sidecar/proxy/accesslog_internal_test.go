package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// accessLogFields are the fields of every access log line
// (docs/telemetry.md); tags is there only when the node has tags.
var accessLogFields = []string{
	"authority", "bytes_received", "bytes_sent", "destination_cluster", "destination_principal", "destination_service",
	"duration_ms", "grpc_status", "method", "path", "protocol", "reporter", "response_code", "response_flags", "retries",
	"source_cluster", "source_principal", "start_time", "trace_id", "upstream_cluster", "upstream_host",
}

// randomString mixes ASCII, JSON's special characters, control
// characters, multi-byte runes, U+2028 and invalid UTF-8.
func randomString(r *rand.Rand) string {
	parts := []string{"a", "/", "\"", "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "日本", "\u2028", "\u2029", "\xff", "\xe2\x82", "<>&", " ", "%2F", "{}"}
	var b strings.Builder
	for n := r.IntN(12); n > 0; n-- {
		b.WriteString(parts[r.IntN(len(parts))])
	}
	return b.String()
}

// TestAccessLineIsJSON: for many generated requests, every line is one
// valid JSON object with exactly the documented fields, and each field
// holds what the request had (strings as encoding/json reads them back).
func TestAccessLineIsJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		ri := requestInfo{
			start: time.Unix(r.Int64N(4e9), r.Int64N(1e9)), duration: time.Duration(r.Int64N(int64(time.Minute))),
			reporter: randomString(r), method: randomString(r), authority: randomString(r), path: randomString(r),
			protocol: randomString(r), code: r.IntN(600), grpcStatus: randomString(r), flags: randomString(r),
			bytesIn: r.Int64N(1 << 40), bytesOut: r.Int64N(1 << 40), upstreamCluster: randomString(r), upstreamHost: randomString(r),
			retries: r.IntN(5), traceID: randomString(r), sourcePrincipal: randomString(r), sourceCluster: randomString(r),
			destService: randomString(r), destPrincipal: randomString(r), destCluster: randomString(r),
		}
		var tags map[string]string
		if r.IntN(2) == 0 {
			tags = map[string]string{randomString(r): randomString(r), "team": randomString(r)}
		}
		line := appendAccessLine(nil, &accessEntry{ri: ri, tags: tags})
		if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
			t.Fatalf("line %d is not one line: %q", i, line)
		}
		if !json.Valid(line) {
			t.Fatalf("line %d is not valid JSON: %q", i, line)
		}
		var got map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range got {
			if k != "tags" {
				keys = append(keys, k)
			}
		}
		if diff := cmp.Diff(accessLogFields, keys, cmpSorted); diff != "" {
			t.Fatalf("line %d fields (-want +got):\n%s", i, diff)
		}
		// What encoding/json makes of each string is what was meant.
		valid := func(s string) string {
			b, _ := json.Marshal(s)
			var out string
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			return out
		}
		want := map[string]any{
			"start_time": ri.start.UTC().Format(time.RFC3339Nano), "reporter": valid(ri.reporter), "method": valid(ri.method),
			"authority": valid(ri.authority), "path": valid(ri.path), "protocol": valid(ri.protocol), "response_code": float64(ri.code),
			"grpc_status": valid(ri.grpcStatus), "response_flags": valid(ri.flags), "bytes_received": float64(ri.bytesIn),
			"bytes_sent": float64(ri.bytesOut), "upstream_cluster": valid(ri.upstreamCluster), "upstream_host": valid(ri.upstreamHost),
			"retries": float64(ri.retries), "trace_id": valid(ri.traceID), "source_principal": valid(ri.sourcePrincipal),
			"source_cluster": valid(ri.sourceCluster), "destination_service": valid(ri.destService),
			"destination_principal": valid(ri.destPrincipal), "destination_cluster": valid(ri.destCluster),
		}
		ms := got["duration_ms"].(float64)
		delete(got, "duration_ms")
		if d := ms - float64(ri.duration)/1e6; d > 0.001 || d < -0.001 {
			t.Fatalf("line %d duration_ms %v, want %v", i, ms, float64(ri.duration)/1e6)
		}
		if tags != nil {
			wantTags := map[string]any{}
			for k, v := range tags {
				wantTags[valid(k)] = valid(v)
			}
			want["tags"] = wantTags
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("line %d %q (-want +got):\n%s", i, line, diff)
		}
	}
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

// blockedSink holds every write until released.
type blockedSink struct {
	started, release chan struct{}
	once             sync.Once
	mu               sync.Mutex
	buf              bytes.Buffer
}

func (b *blockedSink) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.started) })
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// TestAccessLogFullQueueNeverBlocks: with the writer stuck in a write and
// the queue full, recording many more lines returns at once each time;
// they are dropped and counted, and what was queued is written at
// shutdown.
func TestAccessLogFullQueueNeverBlocks(t *testing.T) {
	sink := &blockedSink{started: make(chan struct{}), release: make(chan struct{})}
	reg := prometheus.NewPedanticRegistry()
	l, err := NewAccessLog(AccessLogConfig{Sink: sink, QueueSize: 4}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Run(ctx)
	}()
	ri := requestInfo{reporter: reporterSource, method: "GET", path: "/0", code: 200, flags: flagNone}
	l.record(&ri, nil)
	<-sink.started // the writer holds line 0
	// Lines 1-4 fill the queue; the next 1000 find it full. All 1004
	// calls return (a blocking one would hang the test).
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for i := 1; i <= 1004; i++ {
			l.record(&ri, nil)
		}
	}()
	poll.True(t, 30*time.Second, "every record call returned", func() bool {
		select {
		case <-recorded:
			return true
		default:
			return false
		}
	})
	if n := meshtest.Counter(t, reg, "fedmesh_sidecar_access_log_dropped_total", map[string]string{"reason": AccessLogDropQueueFull}); n != 1000 {
		t.Errorf("queue_full drops = %v, want 1000", n)
	}
	close(sink.release)
	cancel()
	<-done
	if n := strings.Count(sink.buf.String(), "\n"); n != 5 {
		t.Errorf("%d lines written, want 5", n)
	}
	if n := meshtest.Counter(t, reg, "fedmesh_sidecar_access_log_lines_total", nil); n != 5 {
		t.Errorf("lines_total = %v, want 5", n)
	}
	l.record(&ri, nil)
	if n := meshtest.Counter(t, reg, "fedmesh_sidecar_access_log_dropped_total", map[string]string{"reason": AccessLogDropClosed}); n != 1 {
		t.Errorf("closed drops = %v, want 1", n)
	}
}

// TestFailed is the errors-only filter.
func TestFailed(t *testing.T) {
	tests := []struct {
		name string
		ri   requestInfo
		want bool
	}{
		{"ok", requestInfo{code: 200, flags: flagNone}, false},
		{"4xx from the app", requestInfo{code: 404, flags: flagNone}, false},
		{"5xx from the app", requestInfo{code: 503, flags: flagNone}, true},
		{"grpc ok", requestInfo{code: 200, grpcStatus: "0", flags: flagNone}, false},
		{"grpc error", requestInfo{code: 200, grpcStatus: "14", flags: flagNone}, true},
		{"no route", requestInfo{code: 404, flags: flagNoRoute}, true},
		{"denied", requestInfo{code: 403, flags: flagDenied}, true},
		{"fault delay only", requestInfo{code: 200, flags: flagFaultDelay}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ri.failed(); got != tt.want {
				t.Errorf("failed() = %v, want %v", got, tt.want)
			}
		})
	}
}
