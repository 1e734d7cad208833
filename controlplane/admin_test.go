package controlplane

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestAdminReadiness(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "fedmesh_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	a, err := NewAdmin(AdminConfig{Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}

	var started atomic.Bool
	a.AddReadyCheck("store", func() error {
		if !started.Load() {
			return errors.New("etcd not started")
		}
		return nil
	})
	a.AddReadyCheck("source", func() error { return nil })

	if code, body := get(t, a, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	code, body := get(t, a, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]store failed: etcd not started") {
		t.Errorf("/readyz before ready = %d %q", code, body)
	}
	started.Store(true)
	if code, body := get(t, a, "/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz when ready = %d %q", code, body)
	}
	if code, body := get(t, a, "/readyz?verbose"); code != 200 || !strings.Contains(body, "[+]source ok\n[+]store ok\n") {
		t.Errorf("/readyz?verbose = %d %q", code, body)
	}
	if code, body := get(t, a, "/metrics"); code != 200 || !strings.Contains(body, "fedmesh_test_total 1") {
		t.Errorf("/metrics = %d, missing counter in %q", code, body)
	}
}

// FuzzAdminChecks sends protected requests with arbitrary Host, Origin,
// Content-Type and method headers: the checks never panic, a request that
// reaches the handler named an allowed host, its own origin (or none) and
// JSON when it changes state, and every refusal is counted.
func FuzzAdminChecks(f *testing.F) {
	f.Add("127.0.0.1:15014", "", "application/json", "POST")
	f.Add("evil.example", "https://evil.example", "text/plain", "POST")
	f.Add("[::1]:15014", "http://[::1]:15014", "application/json; charset=utf-8", "DELETE")
	f.Add("admin.example.", "null", "multipart/form-data; boundary=x", "PUT")
	f.Add("LOCALHOST", "http://localhost", "application/x-www-form-urlencoded", "GET")
	reg := prometheus.NewRegistry()
	a, err := NewAdmin(AdminConfig{Gatherer: reg, Registerer: reg, Hosts: []string{"admin.example", "0.0.0.0"}})
	if err != nil {
		f.Fatal(err)
	}
	a.SetAuth(func(*http.Request) (string, error) { return "fuzzer", nil })
	var reached atomic.Int64
	a.Handle("/x", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	f.Fuzz(func(t *testing.T, host, origin, contentType, method string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			method = http.MethodPost
		}
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/x", nil)
		req.Method, req.Host = method, host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		req.Header.Set("Content-Type", contentType)
		before := reached.Load()
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		if reached.Load() == before {
			if rec.Code != http.StatusForbidden && rec.Code != http.StatusUnsupportedMediaType {
				t.Fatalf("refused with %d, want 403 or 415", rec.Code)
			}
			return
		}
		h := normalizeHost(host)
		if ip := net.ParseIP(h); !(h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "admin.example" || ip != nil && ip.IsLoopback()) {
			t.Fatalf("host %q (%q) reached the handler", host, h)
		}
		if origin != "" && !strings.EqualFold(origin, "http://"+host) && !strings.EqualFold(origin, "http://"+host+"/") {
			t.Fatalf("origin %q reached the handler for host %q", origin, host)
		}
		if changesState(method) {
			if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/json" {
				t.Fatalf("%s with Content-Type %q reached the handler", method, contentType)
			}
		}
	})
}

// TestAdminWithoutCAAnswersLoopbackOnly: a control plane without a CA
// has no identity to check, so its protected pages answer loopback
// callers only.
func TestAdminWithoutCAAnswersLoopbackOnly(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := NewAdmin(AdminConfig{Gatherer: reg, Registerer: reg, Hosts: []string{"192.0.2.10"}})
	if err != nil {
		t.Fatal(err)
	}
	a.Handle("GET /debug/x", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "page") }))
	for _, tt := range []struct {
		remote string
		want   int
	}{{"127.0.0.1:5000", 200}, {"[::1]:5000", 200}, {"192.0.2.99:5000", 403}} {
		req := httptest.NewRequest(http.MethodGet, "http://192.0.2.10:15014/debug/x", nil)
		req.RemoteAddr = tt.remote
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("GET from %s = %d %s, want %d", tt.remote, rec.Code, rec.Body, tt.want)
		}
	}
	// The open routes answer anyone.
	req := httptest.NewRequest(http.MethodGet, "http://198.18.0.1/healthz", nil)
	req.RemoteAddr = "192.0.2.99:5000"
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("/healthz from afar = %d, want 200", rec.Code)
	}
}
