package controlplane

import (
	"errors"
	"io"
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
