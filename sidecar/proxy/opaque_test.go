package proxy_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/portset"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
)

// banner is what a server-first server (SMTP here) says on connect.
const banner = "220 mail.example ESMTP ready\r\n"

// startBannerServer is a server that speaks first, as SMTP and MySQL
// servers do: it writes banner on every connection, then drains it
// until the client closes. It runs until the test ends.
func startBannerServer(t *testing.T) (addr string, port uint16) {
	t.Helper()
	l := listen(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if _, err := io.WriteString(c, banner); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	_, p, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(p)
	return l.Addr().String(), uint16(n)
}

// readBanner connects to addr, sends nothing, and returns the first line
// it gets within the deadline.
func readBanner(t *testing.T, addr string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A deadline for a wait that must end, not a measure: with
	// detection (sniff timeouts of an hour below) nothing would come.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// newDetectionMetrics is a registry with the proxy's metrics.
func newDetectionMetrics(t *testing.T) (*prometheus.Registry, *proxy.Metrics) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := proxy.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return reg, m
}

// TestOpaquePortOutbound: a pod's connection to a server outside the
// mesh that speaks first, on a port where the mesh has an HTTP service
// (so its first request head would be waited for, to find a Host naming
// a service), gets the server's banner without sending anything when the
// port is opaque, and is counted as detection skipped. On a port that is
// not opaque the wait happens first (counted as a timeout), then the
// connection is passed through all the same.
func TestOpaquePortOutbound(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opaque bool
		sniff  time.Duration
		want   map[string]float64 // detection results
	}{
		// An hour: the banner can only come if nothing waits.
		{name: "opaque port", opaque: true, sniff: time.Hour, want: map[string]float64{"skipped": 1, "timeout": 0, "other": 0}},
		{name: "detected port", sniff: 10 * time.Millisecond, want: map[string]float64{"skipped": 0, "timeout": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bannerAddr, port := startBannerServer(t)
			opaque := portset.MustParse("25,587")
			if tc.opaque {
				opaque = portset.MustParse("25," + strconv.Itoa(int(port)))
			}
			ca := meshtest.NewCA(t, td)
			s := sp("echo", int32(port))
			w := startWorkload(t, ca, "echo", s, startApp(t, "echo", nil))
			reg, m := newDetectionMetrics(t)
			bm, err := balancer.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			var dst fakeDst
			dst.set(bannerAddr)
			p, err := proxy.New(proxy.Config{Cluster: "east-1", Metrics: m, BalancerMetrics: bm, OriginalDst: dst.get, SniffTimeout: tc.sniff, OpaquePorts: opaque})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			id := ca.Workload("demo", "client")
			_, certPEM, keyPEM := ca.Issue(t, meshtest.SVID{URIs: []string{id}})
			configure(t, ca, p, map[string][]types.Resource{
				xdsclient.SecretType:   meshtest.Secrets(certPEM, keyPEM, ca.PEM()),
				xdsclient.ClusterType:  {meshtest.OutboundCluster(s, meshtest.ClusterOpts{HTTP: true, Identities: []string{w.id}})},
				xdsclient.EndpointType: {meshtest.Assignment(s, meshtest.Endpoint{Addr: w.addr, Cluster: "east-1", Identity: w.id, Healthy: true})},
				xdsclient.ListenerType: {meshtest.OutboundListener(s, true)},
				xdsclient.RouteType:    {meshtest.Routes(int32(port), 10*time.Second, 0, s)},
			})
			l := listen(t)
			serve(t, func(ctx context.Context) error { return p.ServeOutbound(ctx, l) })

			got, err := readBanner(t, l.Addr().String())
			if err != nil || got != banner {
				t.Fatalf("the app read %q, %v; want the server's banner %q", got, err, banner)
			}
			for result, want := range tc.want {
				if got := counter(t, reg, "fedmesh_sidecar_protocol_detection_total", map[string]string{"direction": "outbound", "result": result}); got != want {
					t.Errorf("detection %s: %v, want %v", result, got, want)
				}
			}
			if got := counter(t, reg, "fedmesh_sidecar_passthrough_connections_total", map[string]string{"direction": "outbound"}); got != 1 {
				t.Errorf("passthrough connections: %v, want 1", got)
			}
		})
	}
}

// TestOpaquePortInbound: a plaintext caller of a server-first app on an
// opaque port gets the banner without sending anything, when the
// workload takes plaintext there and no mesh service uses the port (no
// mTLS can come); detection is skipped. Where a mesh service uses the
// port, mesh peers' mTLS must still be told from plaintext, so the wait
// happens (then the plaintext is relayed); in STRICT the plaintext is
// refused after the wait, as on any port.
func TestOpaquePortInbound(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    proxy.PlaintextPolicy
		meshPort  bool // a mesh service is served on the banner app's port
		sniff     time.Duration
		wantInApp bool
		want      map[string]float64
	}{
		{name: "PERMISSIVE, no mesh service on the port", policy: proxy.PlaintextPolicy{All: true}, sniff: time.Hour, wantInApp: true,
			want: map[string]float64{"skipped": 1, "timeout": 0, "tls": 0, "plaintext": 0}},
		{name: "PERMISSIVE, a mesh service on the port", policy: proxy.PlaintextPolicy{All: true}, meshPort: true, sniff: 10 * time.Millisecond, wantInApp: true,
			want: map[string]float64{"skipped": 0, "timeout": 1}},
		{name: "STRICT", sniff: 10 * time.Millisecond, want: map[string]float64{"skipped": 0, "timeout": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bannerAddr, port := startBannerServer(t)
			other := startApp(t, "echo", nil)
			ca := meshtest.NewCA(t, td)
			reg, m := newDetectionMetrics(t)
			var dst fakeDst
			dst.set(bannerAddr)
			p, err := proxy.New(proxy.Config{Cluster: "east-1", Metrics: m, OriginalDst: dst.get, InboundPlaintext: tc.policy,
				SniffTimeout: tc.sniff, OpaquePorts: portset.MustParse(strconv.Itoa(int(port)))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			l := listen(t)
			app := other.addr
			if tc.meshPort {
				app = bannerAddr
			}
			in := meshtest.Inbound(l.Addr().String(), meshtest.InboundPort{SP: sp("echo", 8080), App: app, HTTP: true})
			_, certPEM, keyPEM := ca.Issue(t, meshtest.SVID{URIs: []string{ca.Workload("demo", "echo")}})
			configure(t, ca, p, map[string][]types.Resource{
				xdsclient.ListenerType: in[:1], xdsclient.ClusterType: in[1:],
				xdsclient.SecretType: meshtest.Secrets(certPEM, keyPEM, ca.PEM()),
			})
			serve(t, func(ctx context.Context) error { return p.ServeInbound(ctx, l) })

			got, err := readBanner(t, l.Addr().String())
			if tc.wantInApp && (err != nil || got != banner) {
				t.Fatalf("the plaintext caller read %q, %v; want the app's banner %q", got, err, banner)
			}
			if !tc.wantInApp && (err == nil || got != "") {
				t.Fatalf("the plaintext caller read %q, %v; want the connection refused", got, err)
			}
			for result, want := range tc.want {
				if got := counter(t, reg, "fedmesh_sidecar_protocol_detection_total", map[string]string{"direction": "inbound", "result": result}); got != want {
					t.Errorf("detection %s: %v, want %v", result, got, want)
				}
			}
		})
	}
}
