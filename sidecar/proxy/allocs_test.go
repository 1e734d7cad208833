package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// Allocation bounds per proxied request: a keep-alive HTTP/1.1 request
// from the test's client through a client sidecar (outbound handler,
// routing, balancer, metrics), HTTP/1.1 over mTLS to a server sidecar
// (inbound handler, identity header, metrics) and on to the app, all in
// this process, so the count includes the test's client, both sidecars
// and the app (testing.AllocsPerRun
// counts every allocation of the process). At the time of writing a GET
// costs 77 and a 1 KiB POST 103 with both sidecars on the HTTP/1.1 fast
// path (fast1.go; 217 and 291 through net/http), nearly all of them the
// test's client and the app; the bounds leave a little room for the
// standard library to move and for a connection opened again on a busy
// machine, not for a new allocation per request on the path.
const (
	maxAllocsGET  = 92
	maxAllocsPOST = 120
)

// TestAllocsPerRequest pins the allocations of a proxied request so that
// the request path cannot grow them unnoticed.
func TestAllocsPerRequest(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	ca := meshtest.NewCA(t, td)
	s := sp("echo", 8080)
	body := bytes.Repeat([]byte("x"), 1024)
	a := startApp(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	w := startWorkload(t, ca, "echo", s, a)
	c := startClient(t, ca, service{sp: s, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{w.id}},
		eps: []meshtest.Endpoint{{Addr: w.addr, Cluster: "east-1", Identity: w.id, Healthy: true}}})
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: c.addr}), MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}

	for _, tc := range []struct {
		name   string
		method string
		body   []byte
		max    float64
	}{
		{"GET", http.MethodGet, nil, maxAllocsGET},
		{"POST 1 KiB", http.MethodPost, body, maxAllocsPOST},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failed error
			send := func() {
				var rb io.Reader
				if tc.body != nil {
					rb = bytes.NewReader(tc.body)
				}
				req, err := http.NewRequest(tc.method, svcURL(s), rb)
				if err != nil {
					failed = err
					return
				}
				resp, err := hc.Do(req)
				if err != nil {
					failed = err
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n != int64(len(tc.body)) {
					failed = fmt.Errorf("status %d, %d bytes of body, want 200 and %d", resp.StatusCode, n, len(tc.body))
				}
			}
			// Open the connections and bind the metric series first.
			for range 20 {
				send()
			}
			got := testing.AllocsPerRun(200, send)
			if failed != nil {
				t.Fatal(failed)
			}
			t.Logf("%.0f allocations per request", got)
			if got > tc.max {
				t.Errorf("%.0f allocations per proxied request, want at most %.0f", got, tc.max)
			}
		})
	}
}
