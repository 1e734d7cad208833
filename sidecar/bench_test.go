package sidecar_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// BenchmarkRequest compares one HTTP/1.1 request with a 1 KiB body sent
// directly to the app with the same request through a sidecar pair
// (client app -> sidecar -> HTTP/2 over mTLS -> sidecar -> app). Both
// sidecars run in this process, so allocs/op counts the whole path.
func BenchmarkRequest(b *testing.B) {
	p := newPair(b)
	body := bytes.Repeat([]byte("x"), 1024)
	run := func(b *testing.B, c *http.Client, u string) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
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
