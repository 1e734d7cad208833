package sidecar_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

// otlpSink is an OTLP/HTTP receiver that accepts every export and keeps
// nothing: the benchmarks measure the sidecars' side of tracing (spans,
// propagation, batching, protobuf encoding, the HTTP export), not a
// collector's.
type otlpSink struct {
	addr string
	mu   sync.Mutex // guards n
	n    int        // exports received
}

func startOTLPSink(t testing.TB) *otlpSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &otlpSink{addr: l.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
		// An empty ExportTraceServiceResponse: everything accepted.
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return s
}

func (s *otlpSink) exports() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// tracedPair is a client and a server sidecar with one HTTP service
// between them, both tracing with tc (nil: metrics only).
type tracedPair struct {
	client, server *workload
	url            string
}

func newTracedPair(t testing.TB, tc *tracing.Config) *tracedPair {
	return newObservedPair(t, tc, nil)
}

// newObservedPair is newTracedPair with, when accessLog is set, both
// sidecars writing an access log line per request to it.
func newObservedPair(t testing.TB, tc *tracing.Config, accessLog io.Writer) *tracedPair {
	t.Helper()
	m := newMesh(t)
	app := meshtest.StartHTTP(t, "echo", "")
	port := meshtest.FreePort(t)
	server := m.start(wopts{node: "server", ns: "demo", sa: "echo", workload: "echo", inbound: "127.0.0.1:0", tracing: tc, accessLog: accessLog})
	client := m.start(wopts{node: "client", ns: "demo", sa: "client", workload: "client", tracing: tc, accessLog: accessLog})
	in := server.sc.InboundAddr()
	hs := svc("echo", port)
	srv := map[string][]types.Resource{}
	res := meshtest.Inbound(in, meshtest.InboundPort{SP: hs, App: app.Addr, HTTP: true})
	rt(srv, ldsT, res[0])
	rt(srv, cdsT, res[1:]...)
	rt(srv, sdsT, server.secrets(m.ca)...)
	m.set("server", srv)
	echoID := m.ca.Workload("demo", "echo")
	cl := map[string][]types.Resource{}
	rt(cl, cdsT, meshtest.OutboundCluster(hs, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}}))
	rt(cl, edsT, meshtest.Assignment(hs, meshtest.Endpoint{Addr: in, Cluster: "east-1", Identity: echoID, Healthy: true}))
	rt(cl, ldsT, meshtest.OutboundListener(hs, true))
	rt(cl, rdsT, meshtest.Routes(port, 15*time.Second, 2, hs))
	rt(cl, sdsT, client.secrets(m.ca)...)
	m.set("client", cl)
	server.ready(t)
	client.ready(t)
	p := &tracedPair{client: client, server: server, url: "http://echo.demo.svc.clusterset.local:" + strconv.Itoa(int(port)) + "/items"}
	c := proxyClient(client)
	defer c.CloseIdleConnections()
	poll.True(t, 30*time.Second, "the pair serves", func() bool {
		code, _, err := get(c, p.url)
		return err == nil && code == 200
	})
	return p
}

// BenchmarkTracing is the sidecar pair (both sidecars, the app and the
// callers in this process) with metrics only ("off"), with tracing at 1%
// and at 100% sampling, exporting over OTLP/HTTP to a receiver that
// discards, and with metrics and both sidecars' access logs on
// ("accesslog", written to a discarding sink). Each case runs "max" (16 concurrent callers: req/s, CPU and
// allocations per request) and "latency" (one caller: p50 and p99 per
// request); the cases alternate for three rounds, so that a machine whose
// load changes meanwhile affects all alike:
//
//	go test ./sidecar -run '^$' -bench Tracing -benchtime 3000x
func BenchmarkTracing(b *testing.B) {
	sink := startOTLPSink(b)
	traced := func(percent float64) *tracing.Config {
		return &tracing.Config{Endpoint: sink.addr, Protocol: tracing.HTTP, SamplingPercent: percent}
	}
	logLines := new(lineCounter)
	cases := []struct {
		name string
		p    *tracedPair
	}{
		{"off", newTracedPair(b, nil)},
		{"sample1", newTracedPair(b, traced(1))},
		{"sample100", newTracedPair(b, traced(100))},
		{"accesslog", newObservedPair(b, nil, logLines)},
	}
	for round := 0; round < 3; round++ {
		for _, tc := range cases {
			c := proxyClient(tc.p.client)
			b.Run(tc.name+"/max", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(8) // 16 callers on 2 CPUs
				cpu0 := cpuTime(b)
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := fetch(c, tc.p.url); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
				b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
			})
			b.Run(tc.name+"/latency", func(b *testing.B) {
				b.ReportAllocs()
				lat := make([]time.Duration, 0, b.N)
				for b.Loop() {
					t0 := time.Now()
					if err := fetch(c, tc.p.url); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			})
			c.CloseIdleConnections()
		}
	}
	if sink.exports() == 0 {
		b.Error("no spans exported to the OTLP receiver")
	}
	if logLines.n.Load() == 0 {
		b.Error("no access log lines written")
	}
}

// lineCounter is an access log sink that counts the lines and keeps
// nothing.
type lineCounter struct{ n atomic.Int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, []byte{'\n'})))
	return len(p), nil
}

func fetch(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return &statusError{resp.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + strconv.Itoa(e.code) }
