package sidecar_test

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// countingSink is an access log sink that keeps only the byte count.
type countingSink struct{ n atomic.Int64 }

func (s *countingSink) Write(p []byte) (int, error) { s.n.Add(int64(len(p))); return len(p), nil }

// telemetryPair is a client and server sidecar in front of one HTTP app,
// both writing an access log line per request to sink when it is set.
func telemetryPair(b *testing.B, node string, sink io.Writer) (*http.Client, string) {
	m := newMesh(b)
	app := meshtest.StartHTTP(b, "echo", "")
	port := meshtest.FreePort(b)
	server := m.start(wopts{node: node + "-server", ns: "demo", sa: "echo", workload: "echo", inbound: "127.0.0.1:0", accessLog: sink})
	client := m.start(wopts{node: node + "-client", ns: "demo", sa: "client", workload: "client", accessLog: sink})
	s := svc("echo", port)
	in := server.sc.InboundAddr()
	srv := map[string][]types.Resource{}
	res := meshtest.Inbound(in, meshtest.InboundPort{SP: s, App: app.Addr, HTTP: true})
	rt(srv, ldsT, res[0])
	rt(srv, cdsT, res[1:]...)
	rt(srv, sdsT, server.secrets(m.ca)...)
	m.set(node+"-server", srv)
	echoID := m.ca.Workload("demo", "echo")
	cl := map[string][]types.Resource{}
	rt(cl, cdsT, meshtest.OutboundCluster(s, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}}))
	rt(cl, edsT, meshtest.Assignment(s, meshtest.Endpoint{Addr: in, Cluster: "east-1", Identity: echoID, Healthy: true}))
	rt(cl, ldsT, meshtest.OutboundListener(s, true))
	rt(cl, rdsT, meshtest.Routes(port, 15*time.Second, 2, s))
	rt(cl, sdsT, client.secrets(m.ca)...)
	m.set(node+"-client", cl)
	server.ready(b)
	client.ready(b)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: client.sc.OutboundAddr()}), MaxIdleConnsPerHost: 64}}
	b.Cleanup(c.CloseIdleConnections)
	u := "http://echo.demo.svc.clusterset.local:" + strconv.Itoa(int(port)) + "/items"
	poll.True(b, 30*time.Second, "the pair serves", func() bool {
		code, _, err := get(c, u)
		return err == nil && code == 200
	})
	return c, u
}

// BenchmarkTelemetry is the sidecar pair's maximum rate for HTTP/1.1
// GETs from 16 concurrent callers with the always-on metrics only
// ("metrics") and with an access log line per request on both sidecars
// as well ("accesslog"), two pairs in one process whose rounds alternate
// (metrics, accesslog, metrics#01, ...) so that a machine whose load
// changes affects both alike:
//
//	go test ./sidecar -run XXX -bench Telemetry -benchtime 3000x
//
// req/s is requests per wall second; cpu-ns/op as in BenchmarkRequest;
// B/op and allocs/op count both sidecars, the app and the callers.
func BenchmarkTelemetry(b *testing.B) {
	sink := &countingSink{}
	plain, plainURL := telemetryPair(b, "plain", nil)
	logged, loggedURL := telemetryPair(b, "logged", sink)
	cases := []struct {
		name string
		c    *http.Client
		url  string
	}{{"metrics", plain, plainURL}, {"accesslog", logged, loggedURL}}
	for round := 0; round < 3; round++ {
		for _, tc := range cases {
			b.Run(tc.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(8) // 16 callers on 2 CPUs
				cpu0 := cpuTime(b)
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := tc.c.Get(tc.url)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
				b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
	if sink.n.Load() == 0 {
		b.Error("the access log wrote nothing")
	}
}
