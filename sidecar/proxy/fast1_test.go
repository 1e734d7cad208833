package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// fastPair is a client sidecar and a server sidecar in front of an app
// that echoes the request body and reports its method, Host and the
// identity header it got.
func fastPair(t *testing.T) (*client, *workload, *app) {
	t.Helper()
	ca := meshtest.NewCA(t, td)
	s := sp("echo", 8080)
	a := startApp(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Client-Id", r.Header.Get("X-Fedmesh-Client-Id"))
		_, _ = io.Copy(w, r.Body)
	})
	w := startWorkload(t, ca, "echo", s, a)
	c := startClient(t, ca, service{sp: s, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{w.id}},
		eps: []meshtest.Endpoint{{Addr: w.addr, Cluster: "east-1", Identity: w.id, Healthy: true}}})
	return c, w, a
}

// rawConn is a connection to the client sidecar's proxy listener that
// writes requests as given and reads responses with net/http.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one final response (after any 1xx) and its body.
func (rc *rawConn) read(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	for err == nil && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(rc.br, &http.Request{Method: method})
	}
	if err != nil {
		rc.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	return resp, string(b)
}

const echoHost = "echo.demo:8080"

// TestFastPathForwards sends the requests the fast path serves, several
// on one connection and two of them pipelined, and checks what the app
// got and what the client gets back.
func TestFastPathForwards(t *testing.T) {
	c, w, a := fastPair(t)
	rc := dialRaw(t, c.addr)
	rc.send("GET /a HTTP/1.1\r\nHost: " + echoHost + "\r\nX-Fedmesh-Client-Id: spiffe://fed.test/ns/demo/sa/admin\r\n\r\n")
	resp, body := rc.read(http.MethodGet)
	if resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("X-Method") != "GET" || resp.Header.Get("X-Host") != echoHost {
		t.Fatalf("GET: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if got, want := resp.Header.Get("X-Client-Id"), "spiffe://fed.test/ns/demo/sa/client"; got != want {
		t.Errorf("the app got identity %q, want %q (the caller's own copy removed)", got, want)
	}
	rc.send("POST /b HTTP/1.1\r\nHost: " + echoHost + "\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /c HTTP/1.1\r\nHost: " + echoHost + "\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
	if resp, body := rc.read(http.MethodPost); resp.StatusCode != http.StatusOK || body != "hello" {
		t.Errorf("POST with a length: %d %q", resp.StatusCode, body)
	}
	if resp, body := rc.read(http.MethodPost); resp.StatusCode != http.StatusOK || body != "abcde" {
		t.Errorf("chunked POST: %d %q", resp.StatusCode, body)
	}
	rc.send("HEAD /d HTTP/1.1\r\nHost: " + echoHost + "\r\nConnection: close\r\n\r\n")
	if resp, _ := rc.read(http.MethodHead); resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("HEAD with Connection: close: %d, close %v", resp.StatusCode, resp.Close)
	}
	if got := a.hits.Load(); got != 4 {
		t.Errorf("the app got %d requests, want 4", got)
	}
	for _, reg := range []struct {
		name string
		c    float64
	}{
		{"client", counter(t, c.reg, "fedmesh_sidecar_http1_fallback_total", nil)},
		{"server", counter(t, w.reg, "fedmesh_sidecar_http1_fallback_total", nil)},
	} {
		if reg.c != 0 {
			t.Errorf("the %s sidecar handed %v requests to net/http, want none", reg.name, reg.c)
		}
	}
	if got := counter(t, w.reg, "fedmesh_sidecar_spoofed_identity_headers_total", nil); got != 1 {
		t.Errorf("spoofed identity headers counted: %v, want 1", got)
	}
}

// TestFastPathHandsOver sends requests the fast path leaves to net/http
// after one it serves, on the same connection, and checks that net/http
// answers them and the hand-over is counted.
func TestFastPathHandsOver(t *testing.T) {
	c, _, _ := fastPair(t)
	rc := dialRaw(t, c.addr)
	rc.send("GET / HTTP/1.1\r\nHost: " + echoHost + "\r\n\r\n")
	if resp, _ := rc.read(http.MethodGet); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	rc.send("POST / HTTP/1.1\r\nHost: " + echoHost + "\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("Expect: 100-continue: %v, %v", resp, err)
	}
	rc.send("ok")
	if resp, body := rc.read(http.MethodPost); resp.StatusCode != http.StatusOK || body != "ok" {
		t.Errorf("POST after 100 Continue: %d %q", resp.StatusCode, body)
	}
	if got := counter(t, c.reg, "fedmesh_sidecar_http1_fallback_total", map[string]string{"reason": "expect"}); got != 1 {
		t.Errorf("hand-overs for expect: %v, want 1", got)
	}
	rc2 := dialRaw(t, c.addr)
	rc2.send("GET / HTTP/1.0\r\nHost: " + echoHost + "\r\n\r\n")
	if resp, _ := rc2.read(http.MethodGet); resp.StatusCode != http.StatusOK {
		t.Errorf("HTTP/1.0 GET: %d", resp.StatusCode)
	}
}

// TestFastPathRefuses sends request heads that two HTTP/1.1 parsers
// could frame differently, or that are too large, and checks that each
// is refused with its status and counted by reason, and that none
// reaches the app.
func TestFastPathRefuses(t *testing.T) {
	c, _, a := fastPair(t)
	host := "Host: " + echoHost + "\r\n"
	tests := []struct {
		name   string
		req    string
		code   int
		reason string
	}{
		{"length and chunked", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "content_length_and_transfer_encoding"},
		{"differing lengths", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400, "content_length"},
		{"bare LF", "GET / HTTP/1.1\n" + host + "\r\n", 400, "bare_lf"},
		{"obs-fold", "GET / HTTP/1.1\r\n" + host + "X-A: 1\r\n 2\r\n\r\n", 400, "obs_fold"},
		{"a coding besides chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, "transfer_encoding"},
		{"head too large", "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", 431, "head_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, c.addr)
			rc.send(tt.req)
			resp, _ := rc.read(http.MethodGet)
			if resp.StatusCode != tt.code || !resp.Close {
				t.Errorf("status %d, close %v, want %d and close", resp.StatusCode, resp.Close, tt.code)
			}
			if got := counter(t, c.reg, "fedmesh_sidecar_http1_refused_total", map[string]string{"reason": tt.reason}); got != 1 {
				t.Errorf("refusals for %s: %v, want 1", tt.reason, got)
			}
		})
	}
	if got := a.hits.Load(); got != 0 {
		t.Errorf("the app got %d requests, want 0", got)
	}
}
