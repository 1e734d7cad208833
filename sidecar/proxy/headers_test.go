package proxy_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// TestHeaders sends headers a proxy must not pass on through a client
// sidecar and a server sidecar to an app that reports what it received,
// and the same for response headers on the way back.
func TestHeaders(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	s := sp("echo", 8080)
	a := startApp(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Internal")
		w.Header().Set("X-Internal", "app only")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Public", "yes")
		_ = json.NewEncoder(w).Encode(r.Header)
	})
	srv := startWorkload(t, ca, "echo", s, a)
	c := startClient(t, ca, service{sp: s, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{srv.id}},
		eps: []meshtest.Endpoint{{Addr: srv.addr, Cluster: "east-1", Identity: srv.id, Healthy: true}}})

	req, err := http.NewRequest(http.MethodGet, svcURL(s), nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := map[string]string{
		"Connection":          "X-Hop",
		"X-Hop":               "for the next hop only",
		"Proxy-Connection":    "keep-alive",
		"Proxy-Authorization": "Basic c2VjcmV0",
		"Keep-Alive":          "timeout=5",
		"Te":                  "gzip",
		"X-Forwarded-For":     "10.9.8.7",
		"X-Forwarded-Host":    "evil.example",
		"X-Forwarded-Proto":   "https",
		"X-Fedmesh-Client-Id": "spiffe://fed.test/ns/demo/sa/admin",
		"X-Kept":              "end to end",
	}
	for k, v := range sent {
		req.Header.Set(k, v)
	}
	resp, err := c.http(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var atApp http.Header
	if err := json.NewDecoder(bufio.NewReader(resp.Body)).Decode(&atApp); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)

	tests := []struct {
		name string
		got  http.Header
		key  string
		want []string // nil: absent
	}{
		{name: "listed in Connection", got: atApp, key: "X-Hop"},
		{name: "Connection itself", got: atApp, key: "Connection"},
		{name: "Proxy-Connection", got: atApp, key: "Proxy-Connection"},
		{name: "Proxy-Authorization", got: atApp, key: "Proxy-Authorization"},
		{name: "Keep-Alive", got: atApp, key: "Keep-Alive"},
		{name: "Te", got: atApp, key: "Te"},
		{name: "X-Forwarded-For from the client", got: atApp, key: "X-Forwarded-For"},
		{name: "X-Forwarded-Host", got: atApp, key: "X-Forwarded-Host"},
		{name: "X-Forwarded-Proto", got: atApp, key: "X-Forwarded-Proto"},
		{name: "client identity is the verified one", got: atApp, key: "X-Fedmesh-Client-Id", want: []string{c.id}},
		{name: "other headers pass", got: atApp, key: "X-Kept", want: []string{"end to end"}},
		{name: "response: listed in Connection", got: resp.Header, key: "X-Internal"},
		{name: "response: Keep-Alive", got: resp.Header, key: "Keep-Alive"},
		{name: "response: other headers pass", got: resp.Header, key: "X-Public", want: []string{"yes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.got.Values(tt.key)
			sort.Strings(got)
			if len(got) == 0 {
				got = nil
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.key, diff)
			}
		})
	}
	if n := counter(t, srv.reg, "fedmesh_sidecar_spoofed_identity_headers_total", nil); n != 1 {
		t.Errorf("spoofed identity headers = %v, want 1", n)
	}
}

// TestStreamingResponse checks that a response without a length reaches
// the client as the app writes it, through both sidecars, before the app
// has finished.
func TestStreamingResponse(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	s := sp("events", 8080)
	release := make(chan struct{})
	a := startApp(t, "events", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	})
	srv := startWorkload(t, ca, "events", s, a)
	c := startClient(t, ca, service{sp: s, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{srv.id}},
		eps: []meshtest.Endpoint{{Addr: srv.addr, Cluster: "east-1", Identity: srv.id, Healthy: true}}})
	resp, err := c.http(t).Get(svcURL(s))
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	close(release) // only now may the app finish
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("rest %q, %v", rest, err)
	}
}
