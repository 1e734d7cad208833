package demo

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The files in testdata/jaeger are answers of a real Jaeger v1.75.0 to a
// demo's sidecars (GET /api/traces?service=client.demo): search.json
// holds six of its traces, as Jaeger sent them:
//
//	715da802... east-1's client, server span in east-1 (local)
//	95afe871... west-1's client, server span in west-1 (local)
//	6ca858b9... east-1's client, server span in east-2
//	c3b9b073... east-1's client, retry and failover events, server span in west-1
//	5bf0733d... east-1's client, server span in west-1 (started later)
//	f9d46c97... east-1's client span alone (an injected abort)
//
// empty.json answers for a service with no traces, error.json a query
// without a service.
func readJaeger(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "jaeger", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func recordedTraces(t testing.TB) []JaegerTrace {
	t.Helper()
	ts, err := ParseJaegerTraces(readJaeger(t, "search.json"))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestParseJaegerTraces(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		traces  int
		spans   int    // of the first trace
		wantErr string // substring; "" for none
	}{
		{name: "recorded search", body: string(readJaeger(t, "search.json")), traces: 6, spans: 2},
		{name: "recorded empty answer", body: string(readJaeger(t, "empty.json"))},
		{name: "recorded error answer", body: string(readJaeger(t, "error.json")), wantErr: "400 parameter 'service' is required"},
		{name: "not JSON", body: "<html>bad gateway</html>", wantErr: "jaeger answer: invalid character"},
		{name: "data not a list", body: `{"data": {"traceID": "x"}}`, wantErr: "jaeger answer: json: cannot unmarshal object"},
		{name: "trace without id", body: `{"data": [{"spans": []}]}`, wantErr: "trace 0 has no traceID"},
		{name: "span without id", body: `{"data": [{"traceID": "ab", "spans": [{"spanID": ""}]}]}`, wantErr: "trace ab: span 0 has no spanID"},
		{name: "tag value of any type", body: `{"data": [{"traceID": "ab", "spans": [{"spanID": "cd", "tags": [{"key": "k", "value": [1, {"a": null}]}]}]}]}`, traces: 1, spans: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := ParseJaegerTraces([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != tt.traces {
				t.Fatalf("%d traces, want %d", len(ts), tt.traces)
			}
			if tt.traces > 0 && len(ts[0].Spans) != tt.spans {
				t.Errorf("first trace has %d spans, want %d", len(ts[0].Spans), tt.spans)
			}
		})
	}
}

// edit returns a copy of the recorded traces changed by f.
func edit(t *testing.T, f func(ts []JaegerTrace) []JaegerTrace) []JaegerTrace {
	t.Helper()
	ts := recordedTraces(t)
	return f(ts)
}

func traceByID(t *testing.T, ts []JaegerTrace, prefix string) *JaegerTrace {
	t.Helper()
	for i := range ts {
		if strings.HasPrefix(ts[i].TraceID, prefix) {
			return &ts[i]
		}
	}
	t.Fatalf("no recorded trace %s", prefix)
	return nil
}

func TestFindCrossing(t *testing.T) {
	tests := []struct {
		name     string
		traces   []JaegerTrace
		from, to string
		want     TraceCheck
		wantErr  string
	}{
		{
			name: "to east-2", traces: recordedTraces(t), from: "east-1", to: "east-2",
			want: TraceCheck{ID: "6ca858b9423c029111b97c1f3954affc", Clusters: []string{"east-1", "east-2"}, Spans: 2},
		},
		{
			// c3b9b073 (the failover) and 5bf0733d both reached west-1:
			// the one that started first wins.
			name: "to west-1, the first of two", traces: recordedTraces(t), from: "east-1", to: "west-1",
			want: TraceCheck{ID: "c3b9b073e2374af516e2a74dbb15fc35", Clusters: []string{"east-1", "west-1"}, Spans: 2},
		},
		{
			name: "the same traces in another order", from: "east-1", to: "west-1",
			traces: edit(t, func(ts []JaegerTrace) []JaegerTrace {
				for i, j := 0, len(ts)-1; i < j; i, j = i+1, j-1 {
					ts[i], ts[j] = ts[j], ts[i]
				}
				return ts
			}),
			want: TraceCheck{ID: "c3b9b073e2374af516e2a74dbb15fc35", Clusters: []string{"east-1", "west-1"}, Spans: 2},
		},
		{
			// An attempt answered by east-2 before the one in west-1:
			// the trace crossed both, in the order the server spans
			// started.
			name: "two server spans", from: "east-1", to: "west-1",
			traces: edit(t, func(ts []JaegerTrace) []JaegerTrace {
				x := traceByID(t, ts, "c3b9b073")
				srv := x.Spans[0] // echo-1 in west-1, child of the client span
				early := srv
				early.SpanID = "00000000000000e2"
				early.StartTime = srv.StartTime - 500
				early.Tags = append([]JaegerKV(nil), srv.Tags...)
				for i, kv := range early.Tags {
					if kv.Key == "fedmesh.cluster" {
						early.Tags[i].Value = "east-2"
					}
				}
				x.Spans = append(x.Spans, early)
				return []JaegerTrace{*x}
			}),
			want: TraceCheck{ID: "c3b9b073e2374af516e2a74dbb15fc35", Clusters: []string{"east-1", "east-2", "west-1"}, Spans: 3},
		},
		{
			// The server span in east-2 is not the client span's child.
			name: "broken parent link", from: "east-1", to: "east-2",
			traces: edit(t, func(ts []JaegerTrace) []JaegerTrace {
				x := traceByID(t, ts, "6ca858b9")
				for i := range x.Spans {
					for j := range x.Spans[i].References {
						x.Spans[i].References[j].SpanID = "ffffffffffffffff"
					}
				}
				return ts
			}),
			wantErr: "no trace crossed from east-1 to east-2: 6 traces, 5 client spans of client.demo in east-1, their server spans were in east-1 (1), west-1 (2)",
		},
		{
			// The server span says it is a client span: not a server
			// span in east-2.
			name: "wrong span kind", from: "east-1", to: "east-2",
			traces: edit(t, func(ts []JaegerTrace) []JaegerTrace {
				x := traceByID(t, ts, "6ca858b9")
				for i := range x.Spans {
					for j, kv := range x.Spans[i].Tags {
						if kv.Key == "span.kind" {
							x.Spans[i].Tags[j].Value = "client"
						}
					}
				}
				return []JaegerTrace{*x}
			}),
			wantErr: "no trace crossed from east-1 to east-2: 1 traces, 1 client spans of client.demo in east-1, no server spans under them",
		},
		{
			// The client span of another service (not the demo's
			// client) does not count.
			name: "another service", from: "east-1", to: "east-2",
			traces: edit(t, func(ts []JaegerTrace) []JaegerTrace {
				x := traceByID(t, ts, "6ca858b9")
				for k, p := range x.Processes {
					if p.ServiceName == ClientService {
						x.Processes[k] = JaegerProcess{ServiceName: "other.demo"}
					}
				}
				return []JaegerTrace{*x}
			}),
			wantErr: "1 traces, 0 client spans of client.demo in east-1",
		},
		{
			name: "no client in that cluster", traces: recordedTraces(t), from: "east-2", to: "west-1",
			wantErr: "6 traces, 0 client spans of client.demo in east-2, no server spans under them",
		},
		{
			name: "west-1's client stays local", traces: recordedTraces(t), from: "west-1", to: "east-1",
			wantErr: "1 client spans of client.demo in west-1, their server spans were in west-1 (1)",
		},
		{name: "no traces", from: "east-1", to: "east-2", wantErr: "0 traces, 0 client spans"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindCrossing(tt.traces, tt.from, tt.to)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q (found %+v)", err, tt.wantErr, got)
				}
				if got.ID != "" {
					t.Errorf("found %s along with the error", got.ID)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FindCrossing (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJudgeTrace(t *testing.T) {
	found := TraceCheck{ID: "6ca858b9423c029111b97c1f3954affc", Clusters: []string{"east-1", "east-2"}}
	r := Result{OK: true}
	r.judgeTrace(found)
	if !r.OK || r.Trace == nil || r.Trace.ID != found.ID {
		t.Errorf("a trace found: OK %v, trace %+v; want OK with the trace", r.OK, r.Trace)
	}
	if got := found.Crossing(); got != "east-1 -> east-2" {
		t.Errorf("Crossing() = %q", got)
	}
	r = Result{OK: true, Reason: ""}
	r.judgeTrace(TraceCheck{Err: "no trace crossed from east-1 to east-2"})
	if r.OK || r.Reason != "tracing: no trace crossed from east-1 to east-2" {
		t.Errorf("no trace: OK %v, reason %q; want failed, saying why", r.OK, r.Reason)
	}
}

// FuzzParseJaegerTraces: any answer parses or is an error; what parses
// has ids, and FindCrossing judges it without panicking, finding only a
// trace it was given.
func FuzzParseJaegerTraces(f *testing.F) {
	for _, name := range []string{"search.json", "empty.json", "error.json"} {
		f.Add(readJaeger(f, name))
	}
	f.Add([]byte(`{"data":[{"traceID":"a","spans":[{"spanID":"b","tags":[{"key":"span.kind","value":"client"}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ts, err := ParseJaegerTraces(body)
		if err != nil {
			if ts != nil {
				t.Fatalf("traces %v along with error %v", ts, err)
			}
			return
		}
		ids := map[string]bool{}
		for _, tr := range ts {
			if tr.TraceID == "" {
				t.Fatal("a trace without id parsed")
			}
			ids[tr.TraceID] = true
		}
		tc, err := FindCrossing(ts, "east-1", "east-2")
		if (err == nil) != ids[tc.ID] {
			t.Fatalf("FindCrossing = %+v, %v: not one of the traces %v", tc, err, ids)
		}
		if err == nil && (len(tc.Clusters) < 2 || tc.Clusters[0] != "east-1") {
			t.Fatalf("crossing %v does not start in east-1 and go on", tc.Clusters)
		}
		if _, err := json.Marshal(tc); err != nil {
			t.Fatal(err)
		}
	})
}
