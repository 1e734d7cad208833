package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsclient/xdstest"
)

// runPersisting runs a whole gateway with a data directory until the
// returned stop is called (or the test ends).
func runPersisting(t *testing.T, xdsAddr, node, dir string) (*Gateway, func()) {
	t.Helper()
	gw, err := New(Config{
		Cluster: "east-1", ControlPlane: xdsAddr, InsecureControlPlane: true, NodeID: node,
		ListenAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", DataDir: dir, RestoreAfter: 200 * time.Millisecond,
		DrainTimeout: time.Second,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gateway: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return gw, stop
}

// A gateway restarted while its control plane is down routes by the
// configuration it persisted, and /ready says the config is stale until
// the control plane answers again.
func TestGatewayColdStartFromPersistedState(t *testing.T) {
	pki := newPKI(t)
	backend, stopBackend := tlsBackend(t, pki, "b1")
	defer stopBackend()
	sni := echoSP.SNI()
	srv := xdstest.New(t, nil)
	const node = "gateway~persist-test~east-1"
	srv.Set("1", map[string][]types.Resource{
		resourcev3.ListenerType: {gatewayListener(t, sni)},
		resourcev3.EndpointType: {cla(sni, map[string]corev3.HealthStatus{backend: corev3.HealthStatus_HEALTHY}, 0)},
	}, node)
	dir := t.TempDir()
	gw, stop := runPersisting(t, srv.Addr(), node, dir)
	poll.True(t, 30*time.Second, "gateway ready and its configuration persisted", func() bool {
		code, body := adminGet(t, gw.AdminAddr(), "/ready")
		_, err1 := os.Stat(filepath.Join(dir, "xds", "listener.pb"))
		_, err2 := os.Stat(filepath.Join(dir, "xds", "endpoint.pb"))
		return code == http.StatusOK && body == "ok\n" && err1 == nil && err2 == nil
	})
	stop()
	srv.Stop()

	gw2, _ := runPersisting(t, srv.Addr(), node, dir)
	var body string
	poll.True(t, 30*time.Second, "restarted gateway ready from the persisted state", func() bool {
		var code int
		code, body = adminGet(t, gw2.AdminAddr(), "/ready")
		return code == http.StatusOK
	})
	if body != "ok ("+StaleConfigNote+")\n" {
		t.Errorf("/ready %q, want ok with the stale config note", body)
	}
	c, err := dialTLS(t, pki, gw2.Addr(), sni)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := roundTrip(t, c, "from disk"); !strings.HasSuffix(got, "from disk") {
		t.Fatalf("reply %q", got)
	}

	srv.Restart()
	poll.True(t, 30*time.Second, "the control plane's config replaces the persisted one", func() bool {
		code, body := adminGet(t, gw2.AdminAddr(), "/ready")
		return code == http.StatusOK && body == "ok\n" && gw2.XDS().Status().Source == xdsclient.SourceControlPlane
	})
}
