package sidecar

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestAppProbes: the kubelet's probe of the ready port is made to the app
// as the injector recorded it (path, headers), and answered with the
// app's status; unknown probes are 404 and an app that does not answer
// is 503. Other paths are the ready handler's.
func TestAppProbes(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz" && r.Header.Get("X-Probe") == "yes":
			w.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/sick":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	defer app.Close()
	host, port, _ := net.SplitHostPort(app.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	gone := httptest.NewServer(http.NotFoundHandler())
	_, gonePort, _ := net.SplitHostPort(gone.Listener.Addr().String())
	gp, _ := strconv.Atoi(gonePort)
	gone.Close()

	s := &Sidecar{log: slog.New(slog.DiscardHandler), cfg: Config{Capture: &CaptureConfig{AppHost: host, AppProbes: map[string]AppProbe{
		"/app-health/app/readyz":   {Port: int32(p), Path: "/healthz", Headers: map[string]string{"X-Probe": "yes"}},
		"/app-health/app/livez":    {Port: int32(p), Path: "sick"},
		"/app-health/app/startupz": {Port: int32(gp), Path: "/"},
	}}}}
	if err := s.cfg.Capture.validate(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.readyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ready\n")
	})))
	defer srv.Close()
	for path, want := range map[string]int{
		"/app-health/app/readyz":   http.StatusNoContent,
		"/app-health/app/livez":    http.StatusInternalServerError,
		"/app-health/app/startupz": http.StatusServiceUnavailable,
		"/app-health/other/readyz": http.StatusNotFound,
		"/ready":                   http.StatusOK,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestCaptureConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *CaptureConfig
		ok   bool
	}{
		{name: "none", ok: true},
		{name: "empty", cfg: &CaptureConfig{}, ok: true},
		{name: "probe outside /app-health/", cfg: &CaptureConfig{AppHost: "198.18.0.1", AppProbes: map[string]AppProbe{"/ready": {Port: 80}}}},
		{name: "probe port 0", cfg: &CaptureConfig{AppHost: "198.18.0.1", AppProbes: map[string]AppProbe{"/app-health/a/readyz": {}}}},
		{name: "probes without the app's address", cfg: &CaptureConfig{AppProbes: map[string]AppProbe{"/app-health/a/readyz": {Port: 80}}}},
		{name: "upstream without a port", cfg: &CaptureConfig{DNSUpstreams: []string{"198.18.0.53"}}},
		{name: "good", cfg: &CaptureConfig{AppHost: "198.18.0.1", AppProbes: map[string]AppProbe{"/app-health/a/readyz": {Port: 80}}, DNSUpstreams: []string{"198.18.0.53:53"}}, ok: true},
	} {
		if err := tc.cfg.validate(); (err == nil) != tc.ok {
			t.Errorf("%s: validate = %v, want ok %t", tc.name, err, tc.ok)
		}
	}
}
