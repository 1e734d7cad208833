package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
)

// fakeDst plays the kernel's NAT record in unit tests: every connection
// accepted while it holds an address was "redirected" from there; nil
// means not redirected. (test/netns reads real ones, SO_ORIGINAL_DST,
// from real capture rules.)
type fakeDst struct {
	dst atomic.Pointer[netip.AddrPort]
}

func (f *fakeDst) set(addr string) {
	a := netip.MustParseAddrPort(addr)
	f.dst.Store(&a)
}

func (f *fakeDst) get(net.Conn) (netip.AddrPort, error) {
	if d := f.dst.Load(); d != nil {
		return *d, nil
	}
	return netip.AddrPort{}, errors.New("not redirected")
}

// capturePath is a client proxy with capture on, in front of the HTTP
// service demo/echo (one workload, also reachable at the ClusterSetIP
// csip), and an app outside the mesh on the same port number.
type capturePath struct {
	dst     fakeDst
	c       *client
	echo    *app
	outside *app
	port    int32
	csip    string
}

func newCapturePath(t *testing.T) *capturePath {
	t.Helper()
	ca := meshtest.NewCA(t, td)
	cp := &capturePath{outside: startApp(t, "outside", nil), echo: startApp(t, "echo", nil), csip: "127.0.0.9"}
	_, port, _ := net.SplitHostPort(cp.outside.addr)
	n, _ := strconv.Atoi(port)
	cp.port = int32(n)
	s := sp("echo", cp.port)
	w := startWorkload(t, ca, "echo", s, cp.echo)

	reg := prometheus.NewPedanticRegistry()
	m, err := proxy.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	bm, err := balancer.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Cluster: "east-1", Metrics: m, BalancerMetrics: bm, OriginalDst: cp.dst.get, SniffTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	cp.c = &client{p: p, reg: reg, id: ca.Workload("demo", "client")}
	_, certPEM, keyPEM := ca.Issue(t, meshtest.SVID{URIs: []string{cp.c.id}})
	opts := meshtest.ClusterOpts{HTTP: true, Identities: []string{w.id}}
	routes := meshtest.Routes(cp.port, 10*time.Second, 0, s)
	// The control plane gives the ClusterSetIP as a domain of the
	// service's virtual host (docs/clusterset.md).
	routes.VirtualHosts[0].Domains = append(routes.VirtualHosts[0].Domains, cp.csip, net.JoinHostPort(cp.csip, port))
	configure(t, ca, p, map[string][]types.Resource{
		xdsclient.SecretType:   meshtest.Secrets(certPEM, keyPEM, ca.PEM()),
		xdsclient.ClusterType:  {meshtest.OutboundCluster(s, opts)},
		xdsclient.EndpointType: {meshtest.Assignment(s, meshtest.Endpoint{Addr: w.addr, Cluster: "east-1", Identity: w.id, Healthy: true})},
		xdsclient.ListenerType: {meshtest.OutboundListener(s, true)},
		xdsclient.RouteType:    {routes},
	})
	l := listen(t)
	cp.c.addr = l.Addr().String()
	serve(t, func(ctx context.Context) error { return p.ServeOutbound(ctx, l) })
	return cp
}

// plainGet sends GET / with host over a new connection to the outbound
// listener, as an app whose connection the rules redirected.
func (cp *capturePath) plainGet(t *testing.T, host string) result {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, cp.c.addr)
	}}
	defer tr.CloseIdleConnections()
	return get(t, &http.Client{Transport: tr, Timeout: 20 * time.Second}, "http://"+host+"/")
}

func TestCaptureOutbound(t *testing.T) {
	cp := newCapturePath(t)
	port := strconv.Itoa(int(cp.port))
	outside := cp.outside.addr

	// Redirected from the ClusterSetIP: meshed, whatever the Host says.
	cp.dst.set(net.JoinHostPort(cp.csip, port))
	if r := cp.plainGet(t, "whatever.example:"+port); r.Code != 200 || r.App != "echo" {
		t.Errorf("a request to the ClusterSetIP: %+v, want echo's answer", r)
	}
	// Redirected from another address, with a Host naming the service:
	// meshed, and the outside app never sees it.
	cp.dst.set(outside)
	if r := cp.plainGet(t, "echo.demo.svc.clusterset.local:"+port); r.Code != 200 || r.App != "echo" {
		t.Errorf("a request naming the service: %+v, want echo's answer", r)
	}
	// The in-cluster name (a ClusterIP's), which the sidecar cannot
	// tell by address: meshed by the name.
	if r := cp.plainGet(t, "echo.demo.svc.cluster.local:"+port); r.Code != 200 || r.App != "echo" {
		t.Errorf("a request naming the service's in-cluster name: %+v, want echo's answer", r)
	}
	if n := cp.outside.hits.Load(); n != 0 {
		t.Errorf("the outside app got %d requests meant for the mesh", n)
	}
	// The same address with another Host: passed through untouched.
	if r := cp.plainGet(t, "example.com:"+port); r.Code != 200 || r.App != "outside" {
		t.Errorf("a request to a host outside the mesh: %+v, want the outside app's answer", r)
	}
	// Dialled directly (not redirected): the HTTP proxy, as before.
	cp.dst.dst.Store(nil)
	if r := get(t, cp.c.http(t), "http://echo.demo:"+port+"/"); r.Code != 200 || r.App != "echo" {
		t.Errorf("a request through the proxy: %+v, want echo's answer", r)
	}
	if got := counter(t, cp.c.reg, "fedmesh_sidecar_captured_connections_total", map[string]string{"by": "address"}); got != 1 {
		t.Errorf("captured by address: %v, want 1", got)
	}
	if got := counter(t, cp.c.reg, "fedmesh_sidecar_captured_connections_total", map[string]string{"by": "host"}); got != 2 {
		t.Errorf("captured by host: %v, want 2", got)
	}
	if got := counter(t, cp.c.reg, "fedmesh_sidecar_passthrough_connections_total", map[string]string{"direction": "outbound"}); got != 1 {
		t.Errorf("passthrough connections: %v, want 1", got)
	}
}

// TestPassthroughRelay: a connection to no service (here a TCP echo
// server, on a port no service uses) is relayed byte for byte both ways,
// half-close included, and counted.
func TestPassthroughRelay(t *testing.T) {
	cp := newCapturePath(t)
	echo := meshtest.StartTCP(t)
	cp.dst.set(echo.Addr)
	conn, err := net.Dial("tcp", cp.c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := "SSH-2.0-not-http\r\n" + string(make([]byte, 100000))
	go func() {
		_, _ = io.WriteString(conn, msg)
		_ = conn.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil || string(got) != msg {
		t.Fatalf("relayed %d of %d bytes back: %v", len(got), len(msg), err)
	}
	poll.Until(t, 5*time.Second, "passthrough bytes counted", func() error {
		for _, flow := range []string{"sent", "received"} {
			if got := counter(t, cp.c.reg, "fedmesh_sidecar_passthrough_bytes_total", map[string]string{"direction": "outbound", "flow": flow}); got != float64(len(msg)) {
				return errors.New(flow + ": " + strconv.FormatFloat(got, 'f', 0, 64))
			}
		}
		return nil
	})
	// A destination that refuses: the client's connection is closed, and
	// the failure counted.
	dead := listen(t)
	deadAddr := dead.Addr().String()
	dead.Close()
	cp.dst.set(deadAddr)
	c2, err := net.Dial("tcp", cp.c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c2.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes from a passthrough to a closed port", n)
	}
	if got := counter(t, cp.c.reg, "fedmesh_sidecar_passthrough_errors_total", map[string]string{"reason": "connect"}); got != 1 {
		t.Errorf("passthrough connect errors: %v, want 1", got)
	}
}

// TestInboundPlaintext: with capture on, the inbound listener tells TLS
// from plaintext by the first byte. Mesh peers' mTLS is served in every
// mode; plaintext reaches the app (relayed to the original destination)
// where the workload allows it, and is refused elsewhere (STRICT), and
// when the connection has no original destination.
func TestInboundPlaintext(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	appl := startApp(t, "echo", nil)
	_, appPort, _ := net.SplitHostPort(appl.addr)
	n, _ := strconv.Atoi(appPort)
	for _, tc := range []struct {
		name      string
		policy    proxy.PlaintextPolicy
		redirect  bool
		authz     bool // an authorization policy (denying all) guards the port
		wantPlain bool
		reason    string
	}{
		{name: "PERMISSIVE", policy: proxy.PlaintextPolicy{All: true}, redirect: true, wantPlain: true},
		{name: "plaintext on the app's port", policy: proxy.PlaintextPolicy{Ports: []uint16{uint16(n)}}, redirect: true, wantPlain: true},
		{name: "STRICT", redirect: true, reason: "strict"},
		{name: "plaintext on another port", policy: proxy.PlaintextPolicy{Ports: []uint16{1}}, redirect: true, reason: "strict"},
		{name: "PERMISSIVE, not redirected", policy: proxy.PlaintextPolicy{All: true}, reason: "not_redirected"},
		// The sidecar's own ports never take plaintext from outside, as
		// if the app's port were the outbound proxy's.
		{name: "PERMISSIVE, to the sidecar's own port", policy: proxy.PlaintextPolicy{All: true, Own: []uint16{uint16(n)}}, redirect: true, reason: "own_port"},
		// Plaintext has no identity for a policy to check: it would go
		// around it.
		{name: "PERMISSIVE, port under an authorization policy", policy: proxy.PlaintextPolicy{All: true}, redirect: true, authz: true, reason: "authz_policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dst fakeDst
			if tc.redirect {
				dst.set(appl.addr)
			}
			reg := prometheus.NewPedanticRegistry()
			m, err := proxy.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			p, err := proxy.New(proxy.Config{Cluster: "east-1", Metrics: m, OriginalDst: dst.get, InboundPlaintext: tc.policy})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			s := sp("echo", 8080)
			l := listen(t)
			id := ca.Workload("demo", "echo")
			_, certPEM, keyPEM := ca.Issue(t, meshtest.SVID{URIs: []string{id}})
			ip := meshtest.InboundPort{SP: s, App: appl.addr, HTTP: true}
			in := meshtest.Inbound(l.Addr().String(), ip)
			if tc.authz {
				in = meshtest.InboundAuthz(l.Addr().String(), meshtest.AuthzPort{InboundPort: ip, Authz: &meshtest.Authz{DefaultDeny: true}})
			}
			configure(t, ca, p, map[string][]types.Resource{
				xdsclient.ListenerType: in[:1], xdsclient.ClusterType: in[1:],
				xdsclient.SecretType: meshtest.Secrets(certPEM, keyPEM, ca.PEM()),
			})
			serve(t, func(ctx context.Context) error { return p.ServeInbound(ctx, l) })

			// mTLS from a mesh peer, in every mode.
			c := startClient(t, ca, service{sp: s, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{id}},
				eps: []meshtest.Endpoint{{Addr: l.Addr().String(), Cluster: "east-1", Identity: id, Healthy: true}}})
			want := http.StatusOK
			if tc.authz {
				want = http.StatusForbidden // the policy denies everyone
			}
			if r := get(t, c.http(t), svcURL(s)); r.Code != want {
				t.Errorf("mTLS from a mesh peer: %+v, want %d", r, want)
			}
			// A TLS client without a mesh certificate is still TLS: refused
			// by the handshake, never relayed as plaintext.
			// (TLS 1.3 clients finish before the server checks their
			// certificate; its refusal comes as the first read.)
			if tc0, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true, ServerName: s.SNI()}); err == nil {
				_ = tc0.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := tc0.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("a TLS client without a certificate was not refused: %v", err)
				}
				_ = tc0.Close()
			}
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := hc.Get("http://" + l.Addr().String() + "/")
			if tc.wantPlain {
				if err != nil {
					t.Fatalf("plaintext: %v, want the app's answer", err)
				}
				resp.Body.Close()
				if resp.Header.Get("X-App") != "echo" {
					t.Errorf("plaintext answered by %q, want the app", resp.Header.Get("X-App"))
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("plaintext answered %d, want it refused", resp.StatusCode)
			}
			if got := counter(t, reg, "fedmesh_sidecar_inbound_plaintext_refused_total", map[string]string{"reason": tc.reason}); got != 1 {
				t.Errorf("refused for %s: %v, want 1", tc.reason, got)
			}
		})
	}
}
