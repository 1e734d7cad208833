package gateway

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsclient/xdstest"
)

// adminGet fetches path from the admin listener, "" and 0 when it cannot
// be reached.
func adminGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + addr + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunServesFromXDSAndDrains runs a whole gateway process: routes from
// a real xDS server, traffic through the passthrough listener, the admin
// port, and a drain that waits for the open connection when ctx ends.
func TestRunServesFromXDSAndDrains(t *testing.T) {
	pki := newPKI(t)
	backend, stop := tlsBackend(t, pki, "b1")
	defer stop()
	sni := echoSP.SNI()
	srv := xdstest.New(t, nil)
	const node = "gateway~run-test~east-1"
	srv.Set("1", map[string][]types.Resource{
		resourcev3.ListenerType: {gatewayListener(t, sni)},
		resourcev3.EndpointType: {cla(sni, map[string]corev3.HealthStatus{backend: corev3.HealthStatus_HEALTHY}, 0)},
	}, node)

	reg := prometheus.NewRegistry()
	gw, err := New(Config{
		Cluster: "east-1", ControlPlane: srv.Addr(), InsecureControlPlane: true, NodeID: node,
		ListenAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()

	poll.True(t, 30*time.Second, "gateway ready", func() bool { code, _ := adminGet(t, gw.AdminAddr(), "/ready"); return code == http.StatusOK })
	c, err := dialTLS(t, pki, gw.Addr(), sni)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := roundTrip(t, c, "hello"); !strings.HasSuffix(got, "hello") {
		t.Fatalf("reply %q", got)
	}
	code, body := adminGet(t, gw.AdminAddr(), "/debug/xds")
	var st xdsclient.Status
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Target != srv.Addr() {
		t.Errorf("/debug/xds = %d %q, want the xDS client's status", code, body)
	}
	if code, body := adminGet(t, gw.AdminAddr(), "/stats/prometheus"); code != http.StatusOK || !strings.Contains(body, "fedmesh_gateway_connections_total") || !strings.Contains(body, "fedmesh_xds_connected") {
		t.Errorf("/stats/prometheus = %d, lacks the gateway's or the xDS client's metrics", code)
	}

	// ctx ends with a connection open: the gateway stops accepting and
	// reports draining, and waits for the connection.
	cancel()
	poll.True(t, 30*time.Second, "ready reports draining", func() bool {
		code, body := adminGet(t, gw.AdminAddr(), "/ready")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "draining")
	})
	if nc, err := net.Dial("tcp", gw.Addr()); err == nil {
		nc.Close()
		t.Error("the passthrough listener accepts while draining")
	}
	if got := roundTrip(t, c, "still"); !strings.HasSuffix(got, "still") {
		t.Fatalf("open connection while draining: %q", got)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) with a connection still open", err)
	default:
	}
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second): // bounds a Run that wrongly keeps going
		t.Fatal("Run did not return after the drain")
	}
	if code, _ := adminGet(t, gw.AdminAddr(), "/ready"); code != 0 {
		t.Errorf("admin listener still answers (%d) after Run", code)
	}
	if err := gw.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

// The drain deadline closes connections still open; Run still returns nil.
func TestRunDrainDeadlineClosesConnections(t *testing.T) {
	pki := newPKI(t)
	backend, stop := tlsBackend(t, pki, "b1")
	defer stop()
	gw, err := New(Config{ListenAddr: "127.0.0.1:0", DrainTimeout: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.SetRoutes([]Route{{Service: echoSP, Endpoints: []Endpoint{{Address: backend, Healthy: true}}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	c, err := dialTLS(t, pki, gw.Addr(), echoSP.SNI())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "hello")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the drain deadline")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after the drain deadline")
	}
}

// An xDS target the client cannot use ends Run with the error, after the
// drain, rather than serving without routes.
func TestRunFailsWhenXDSCannotRun(t *testing.T) {
	gw, err := New(Config{Cluster: "east-1", ControlPlane: "dns:///%zz", InsecureControlPlane: true, ListenAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "xdsclient: dial") {
		t.Fatalf("Run = %v, want the xDS dial error", err)
	}
}

func TestNewRejectsContradictions(t *testing.T) {
	cpID := spiffeid.RequireFromString("spiffe://fedmesh.test/fedmesh/cluster/east-1")
	tests := []struct {
		name string
		cfg  Config
	}{
		{"control plane without cluster", Config{ControlPlane: "127.0.0.1:1", InsecureControlPlane: true, ListenAddr: "127.0.0.1:0"}},
		{"TLS control plane without roots", Config{Cluster: "east-1", ControlPlane: "127.0.0.1:1", ControlPlaneID: cpID, ListenAddr: "127.0.0.1:0"}},
		{"TLS control plane without ID", Config{Cluster: "east-1", ControlPlane: "127.0.0.1:1", RootCAs: x509.NewCertPool(), ListenAddr: "127.0.0.1:0"}},
		{"control plane settings without address", Config{InsecureControlPlane: true}},
		{"control plane without listen address", Config{Cluster: "east-1", ControlPlane: "127.0.0.1:1", InsecureControlPlane: true}},
		{"admin without listen address", Config{AdminAddr: "127.0.0.1:0"}},
		{"unbindable admin address", Config{ListenAddr: "127.0.0.1:0", AdminAddr: "256.0.0.1:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg, nil); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	gw, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Run(context.Background()); err == nil {
		t.Error("Run without a listen address succeeded")
	}
}
