package proxy_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
)

// TestCaptureClusterIPOpaqueTCP: a captured connection to the local
// ClusterIP of an opaque TCP service (which the control plane gives,
// after the ClusterSetIP, in the filter chain match of the service's
// outbound listener) is meshed: carried over mTLS to the workload's
// inbound side, which takes only mTLS (STRICT), and on to the app. What
// listens at the ClusterIP itself (kube-proxy's plaintext path, here a
// server that answers "plaintext") never sees the connection.
func TestCaptureClusterIPOpaqueTCP(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	app := meshtest.StartTCP(t) // echoes what it gets

	// The plaintext path: what a passthrough to the ClusterIP reaches.
	kl, err := net.Listen("tcp", "127.0.0.10:0")
	if err != nil {
		t.Fatal(err)
	}
	clusterIP, port, _ := net.SplitHostPort(kl.Addr().String())
	var plaintext atomic.Int64
	serve(t, func(ctx context.Context) error {
		stop := context.AfterFunc(ctx, func() { kl.Close() })
		defer stop()
		for {
			c, err := kl.Accept()
			if err != nil {
				return nil
			}
			plaintext.Add(1)
			_, _ = io.WriteString(c, "plaintext\n")
			c.Close()
		}
	})
	n, _ := strconv.Atoi(port)
	s := sp("db", int32(n))

	// The workload: inbound mTLS only, a TCP chain to the echo app.
	wreg := prometheus.NewPedanticRegistry()
	wm, err := proxy.NewMetrics(wreg)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := proxy.New(proxy.Config{Cluster: "east-1", Metrics: wm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wp.Close)
	wl := listen(t)
	wid := ca.Workload("demo", "db")
	_, wcert, wkey := ca.Issue(t, meshtest.SVID{URIs: []string{wid}})
	in := meshtest.Inbound(wl.Addr().String(), meshtest.InboundPort{SP: s, App: app.Addr})
	configure(t, ca, wp, map[string][]types.Resource{
		xdsclient.ListenerType: in[:1],
		xdsclient.ClusterType:  in[1:],
		xdsclient.SecretType:   meshtest.Secrets(wcert, wkey, ca.PEM()),
	})
	serve(t, func(ctx context.Context) error { return wp.ServeInbound(ctx, wl) })

	// The client: capture on, the connection redirected from the
	// ClusterIP.
	var dst fakeDst
	dst.set(net.JoinHostPort(clusterIP, port))
	reg := prometheus.NewPedanticRegistry()
	m, err := proxy.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	bm, err := balancer.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Cluster: "east-1", Metrics: m, BalancerMetrics: bm, OriginalDst: dst.get})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	id := ca.Workload("demo", "client")
	_, cert, key := ca.Issue(t, meshtest.SVID{URIs: []string{id}})
	configure(t, ca, p, map[string][]types.Resource{
		xdsclient.SecretType:   meshtest.Secrets(cert, key, ca.PEM()),
		xdsclient.ClusterType:  {meshtest.OutboundCluster(s, meshtest.ClusterOpts{Identities: []string{wid}})},
		xdsclient.EndpointType: {meshtest.Assignment(s, meshtest.Endpoint{Addr: wl.Addr().String(), Cluster: "east-1", Identity: wid, Healthy: true})},
		xdsclient.ListenerType: {meshtest.OutboundListenerAt(s, false, "127.0.0.9", clusterIP)},
	})
	l := listen(t)
	serve(t, func(ctx context.Context) error { return p.ServeOutbound(ctx, l) })

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	const msg = "SELECT 1;\n"
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
		t.Fatalf("read %q (%v), want the app's echo %q", got, err, msg)
	}
	if n := plaintext.Load(); n != 0 {
		t.Errorf("the plaintext path at the ClusterIP got %d connections", n)
	}
	if got := counter(t, reg, "fedmesh_sidecar_captured_connections_total", map[string]string{"by": "address"}); got != 1 {
		t.Errorf("captured by address: %v, want 1", got)
	}
	if got := counter(t, reg, "fedmesh_sidecar_passthrough_connections_total", map[string]string{"direction": "outbound"}); got != 0 {
		t.Errorf("passthrough connections: %v, want 0", got)
	}
}
