package sidecar_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRequest compares one HTTP/1.1 request with a 1 KiB body sent
// directly to the app with the same request through a sidecar pair
// (client app -> sidecar -> HTTP/2 over mTLS -> sidecar -> app). Both
// sidecars run in this process, so allocs/op counts the whole path.
//
// cpu-ns/op is the CPU time the process spent per request (user and
// system, every goroutine): on a machine shared with other work it moves
// far less than ns/op, which includes the time the process waited for a
// CPU.
func BenchmarkRequest(b *testing.B) {
	p := newPair(b)
	body := bytes.Repeat([]byte("x"), 1024)
	run := func(b *testing.B, c *http.Client, u string) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		cpu0 := cpuTime(b)
		for b.Loop() {
			resp, err := c.Post(u, "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n < int64(len(body)) {
				b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
			}
		}
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	}
	b.Run("direct", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		defer c.CloseIdleConnections()
		run(b, c, "http://"+p.appAddr+"/")
	})
	b.Run("sidecar-pair", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.client.sc.OutboundAddr()}), MaxIdleConnsPerHost: 4}}
		defer c.CloseIdleConnections()
		run(b, c, p.url("echo.demo.svc.clusterset.local"))
	})
}

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
