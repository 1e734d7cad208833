package sidecar

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/poll"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// portOf is the port of a listener's address.
func portOf(t *testing.T, addr net.Addr) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return int32(p)
}

// freedPort is a port that was bound a moment ago and is closed now.
func freedPort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := portOf(t, l.Addr())
	l.Close()
	return p
}

// TestAppProbeKinds: the kubelet's probe of the ready port is made as
// the injector recorded it, against real servers of the app: HTTPS to a
// TLS server with a self-signed certificate (not verified, as the
// kubelet does not), a TCP connection to a listener, the grpc.health.v1
// Check of a real gRPC health server by service name. A check that
// fails is 503; an HTTPS probe of a plaintext server, or an HTTP probe
// of a TLS one, gets no 2xx.
func TestAppProbeKinds(t *testing.T) {
	tlsApp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.URL.Path != "/healthz" || r.Header.Get("X-Probe") != "yes" || r.Host != "app.example" {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer tlsApp.Close()
	plainApp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	defer plainApp.Close()

	tcpApp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tcpApp.Accept()
			if err != nil {
				return
			}
			c.Close()
			accepted.Add(1)
		}
	}()
	defer wg.Wait()
	defer tcpApp.Close()

	grpcL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus("shop.v1.Cart", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("shop.v1.Down", healthpb.HealthCheckResponse_NOT_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(grpcL) }()
	defer func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("grpc server: %v", err)
		}
	}()

	tlsPort, plainPort, tcpPort, grpcPort, gone := portOf(t, tlsApp.Listener.Addr()), portOf(t, plainApp.Listener.Addr()),
		portOf(t, tcpApp.Addr()), portOf(t, grpcL.Addr()), freedPort(t)
	probes := map[string]AppProbe{
		"/app-health/web/readyz":      {Port: tlsPort, Scheme: "HTTPS", Path: "/healthz", Headers: map[string]string{"X-Probe": "yes", "Host": "app.example"}},
		"/app-health/web/livez":       {Port: plainPort, Scheme: "HTTPS", Path: "/"},
		"/app-health/web/startupz":    {Port: tlsPort, Path: "/healthz"},
		"/app-health/db/readyz":       {Kind: ProbeTCP, Port: tcpPort, TimeoutSeconds: 5},
		"/app-health/db/livez":        {Kind: ProbeTCP, Port: gone},
		"/app-health/cart/readyz":     {Kind: ProbeGRPC, Port: grpcPort, Service: "shop.v1.Cart"},
		"/app-health/cart/livez":      {Kind: ProbeGRPC, Port: grpcPort},
		"/app-health/down/readyz":     {Kind: ProbeGRPC, Port: grpcPort, Service: "shop.v1.Down"},
		"/app-health/unknown/readyz":  {Kind: ProbeGRPC, Port: grpcPort, Service: "shop.v1.Nobody"},
		"/app-health/nogrpc/readyz":   {Kind: ProbeGRPC, Port: plainPort},
		"/app-health/nolisten/readyz": {Kind: ProbeGRPC, Port: gone, TimeoutSeconds: 2},
	}
	s := &Sidecar{log: slog.New(slog.DiscardHandler), cfg: Config{Capture: &CaptureConfig{AppHost: "127.0.0.1", AppProbes: probes}}}
	if err := s.cfg.Capture.validate(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.readyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ready\n")
	})))
	defer srv.Close()
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/app-health/web/readyz", http.StatusNoContent},
		{"/app-health/web/livez", http.StatusServiceUnavailable},
		// Go's TLS server answers a plaintext request 400.
		{"/app-health/web/startupz", http.StatusBadRequest},
		{"/app-health/db/readyz", http.StatusOK},
		{"/app-health/db/livez", http.StatusServiceUnavailable},
		{"/app-health/cart/readyz", http.StatusOK},
		{"/app-health/cart/livez", http.StatusOK},
		{"/app-health/down/readyz", http.StatusServiceUnavailable},
		{"/app-health/unknown/readyz", http.StatusServiceUnavailable},
		{"/app-health/nogrpc/readyz", http.StatusServiceUnavailable},
		{"/app-health/nolisten/readyz", http.StatusServiceUnavailable},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d %q, want %d", tc.path, resp.StatusCode, body, tc.want)
		}
	}
	// The TCP probe connected to the app's listener.
	poll.True(t, 10*time.Second, "the TCP probe's connection accepted by the app", func() bool { return accepted.Load() >= 1 })
}

func TestParseAppProbes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want map[string]AppProbe
		ok   bool
	}{
		{name: "http, as before the other kinds", in: `{"/app-health/a/readyz":{"port":8080,"path":"/r","headers":{"X":"1"}}}`,
			want: map[string]AppProbe{"/app-health/a/readyz": {Port: 8080, Path: "/r", Headers: map[string]string{"X": "1"}}}, ok: true},
		{name: "every kind", in: `{"/app-health/a/readyz":{"port":8443,"scheme":"HTTPS"},"/app-health/a/livez":{"kind":"tcp","port":5432,"timeoutSeconds":3},"/app-health/a/startupz":{"kind":"grpc","port":9090,"service":"s"}}`,
			want: map[string]AppProbe{
				"/app-health/a/readyz":   {Port: 8443, Scheme: "HTTPS"},
				"/app-health/a/livez":    {Kind: ProbeTCP, Port: 5432, TimeoutSeconds: 3},
				"/app-health/a/startupz": {Kind: ProbeGRPC, Port: 9090, Service: "s"},
			}, ok: true},
		{name: "unknown fields of a newer injector", in: `{"/app-health/a/readyz":{"port":80,"later":true}}`,
			want: map[string]AppProbe{"/app-health/a/readyz": {Port: 80}}, ok: true},
		{name: "not JSON", in: `{"/app-health/a/readyz":`},
		{name: "unknown kind", in: `{"/app-health/a/readyz":{"kind":"exec","port":80}}`},
		{name: "bad scheme", in: `{"/app-health/a/readyz":{"port":80,"scheme":"FTP"}}`},
		{name: "tcp with a path", in: `{"/app-health/a/readyz":{"kind":"tcp","port":80,"path":"/"}}`},
		{name: "tcp with a service", in: `{"/app-health/a/readyz":{"kind":"tcp","port":80,"service":"s"}}`},
		{name: "http with a service", in: `{"/app-health/a/readyz":{"port":80,"service":"s"}}`},
		{name: "grpc with headers", in: `{"/app-health/a/readyz":{"kind":"grpc","port":80,"headers":{"a":"b"}}}`},
		{name: "port out of range", in: `{"/app-health/a/readyz":{"kind":"grpc","port":65536}}`},
		{name: "negative timeout", in: `{"/app-health/a/readyz":{"port":80,"timeoutSeconds":-1}}`},
		{name: "path outside /app-health/", in: `{"/ready":{"port":80}}`},
	} {
		got, err := ParseAppProbes(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%s: ParseAppProbes = %v, want ok %t", tc.name, err, tc.ok)
			continue
		}
		if tc.ok && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ParseAppProbes = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// FuzzParseAppProbes: --app-probes is outside input; what it accepts
// is valid and reads back the same once written out.
func FuzzParseAppProbes(f *testing.F) {
	for _, s := range []string{
		`{"/app-health/a/readyz":{"port":8080,"path":"/r","headers":{"X":"1"}}}`,
		`{"/app-health/a/livez":{"kind":"tcp","port":5432,"timeoutSeconds":3}}`,
		`{"/app-health/a/startupz":{"kind":"grpc","port":9090,"service":"s"},"/app-health/b/readyz":{"port":1,"scheme":"HTTPS"}}`,
		`{}`, `null`, `[]`, `{"/x":{"port":0}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		probes, err := ParseAppProbes(s)
		if err != nil {
			return
		}
		if err := validateAppProbes(probes, "198.18.0.1"); err != nil {
			t.Fatalf("ParseAppProbes(%q) accepted what validate refuses: %v", s, err)
		}
		b, err := json.Marshal(probes)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseAppProbes(string(b))
		if err != nil || !reflect.DeepEqual(normalize(probes), normalize(again)) {
			t.Fatalf("%q read back from %s as %+v, %v; want %+v", s, b, again, err, probes)
		}
	})
}

// normalize makes empty maps nil, which JSON does not tell apart.
func normalize(m map[string]AppProbe) map[string]AppProbe {
	out := map[string]AppProbe{}
	for k, v := range m {
		if len(v.Headers) == 0 {
			v.Headers = nil
		}
		out[k] = v
	}
	return out
}
