package sidecar_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair is a client sidecar and a server sidecar in front of three apps:
// HTTP echo, gRPC health and TCP echo.
type pair struct {
	m                  *mesh
	client, server     *workload
	httpP, grpcP, tcpP int32
	appAddr            string
	res                map[string][]types.Resource // client node's resources
	srvRes             map[string][]types.Resource // server node's resources
}

// serviceIP is where the client sidecar binds its service-port listeners
// and what its DNS answers. The service ports are picked free on
// 127.0.0.1 and bound later; on an address of 127.0.0.0/8 that nothing
// else uses, another process's connection cannot take one meanwhile.
const serviceIP = "127.0.77.1"

func newPair(t testing.TB) *pair {
	t.Helper()
	return newPairWith(t, wopts{})
}

// newPairWith is newPair with the client sidecar's options from
// client (the names, addresses and DNS are newPair's).
func newPairWith(t testing.TB, client wopts) *pair {
	t.Helper()
	m := newMesh(t)
	httpApp := meshtest.StartHTTP(t, "echo", "")
	grpcApp := meshtest.StartGRPC(t)
	tcpApp := meshtest.StartTCP(t)
	p := &pair{m: m, httpP: meshtest.FreePort(t), grpcP: meshtest.FreePort(t), tcpP: meshtest.FreePort(t), appAddr: httpApp.Addr}

	p.server = m.start(wopts{node: "server", ns: "demo", sa: "echo", workload: "echo", inbound: "127.0.0.1:0"})
	client.node, client.ns, client.sa, client.workload, client.serviceIP, client.dns = "client", "demo", "client", "client", serviceIP, true
	p.client = m.start(client)
	in := p.server.sc.InboundAddr()

	hs, gs, ts := svc("echo", p.httpP), svc("echo-grpc", p.grpcP), svc("echo-tcp", p.tcpP)
	srv := map[string][]types.Resource{}
	rt(srv, ldsT, meshtest.Inbound(in,
		meshtest.InboundPort{SP: hs, App: httpApp.Addr, HTTP: true},
		meshtest.InboundPort{SP: gs, App: grpcApp.Addr, GRPC: true},
		meshtest.InboundPort{SP: ts, App: tcpApp.Addr},
	)[:1]...)
	rt(srv, cdsT, meshtest.Inbound(in,
		meshtest.InboundPort{SP: hs, App: httpApp.Addr, HTTP: true},
		meshtest.InboundPort{SP: gs, App: grpcApp.Addr, GRPC: true},
		meshtest.InboundPort{SP: ts, App: tcpApp.Addr},
	)[1:]...)
	rt(srv, sdsT, p.server.secrets(m.ca)...)
	p.srvRes = srv
	m.set("server", srv)

	echoID := m.ca.Workload("demo", "echo")
	ep := meshtest.Endpoint{Addr: in, Cluster: "east-1", Identity: echoID, Healthy: true}
	cl := map[string][]types.Resource{}
	rt(cl, cdsT,
		meshtest.OutboundCluster(hs, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}}),
		meshtest.OutboundCluster(gs, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}}),
		meshtest.OutboundCluster(ts, meshtest.ClusterOpts{Identities: []string{echoID}}))
	rt(cl, edsT, meshtest.Assignment(hs, ep), meshtest.Assignment(gs, ep), meshtest.Assignment(ts, ep))
	rt(cl, ldsT, meshtest.OutboundListener(hs, true), meshtest.OutboundListener(gs, true), meshtest.OutboundListener(ts, false))
	rt(cl, rdsT, meshtest.Routes(p.httpP, 15*time.Second, 2, hs), meshtest.Routes(p.grpcP, 15*time.Second, 2, gs))
	rt(cl, sdsT, p.client.secrets(m.ca)...)
	p.res = cl
	m.set("client", cl)

	p.server.ready(t)
	p.client.ready(t)
	for _, port := range []int32{p.httpP, p.grpcP, p.tcpP} {
		poll.True(t, 30*time.Second, "service listener", func() bool { return p.client.sc.ServiceAddr(port) != "" })
	}
	return p
}

func (p *pair) url(host string) string {
	return "http://" + host + ":" + strconv.Itoa(int(p.httpP)) + "/"
}

func TestEndToEnd(t *testing.T) {
	p := newPair(t)
	clientID := p.m.ca.Workload("demo", "client")
	want := "echo " + clientID + "\n"
	c := proxyClient(p.client)

	t.Run("http/1.1 through the proxy listener", func(t *testing.T) {
		for _, host := range []string{"echo.demo.svc.clusterset.local", "echo.demo", "ECHO.demo.svc.clusterset.local."} {
			code, body, err := get(c, p.url(host))
			if err != nil {
				t.Fatalf("%s: %v", host, err)
			}
			if diff := cmp.Diff(want, body); diff != "" || code != 200 {
				t.Errorf("%s: code %d, body (-want +got):\n%s", host, code, diff)
			}
		}
	})

	t.Run("http/1.1 POST body through the service-port listener", func(t *testing.T) {
		body := bytes.Repeat([]byte("x"), 1024)
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.client.sc.ServiceAddr(p.httpP)+"/", bytes.NewReader(body))
		req.Host = "echo.demo.svc.clusterset.local:" + strconv.Itoa(int(p.httpP))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if diff := cmp.Diff(want+string(body), string(got)); diff != "" {
			t.Errorf("body (-want +got):\n%s", diff)
		}
	})

	t.Run("unknown host is 404", func(t *testing.T) {
		code, _, err := get(c, p.url("nope.demo.svc.clusterset.local"))
		if err != nil || code != http.StatusNotFound {
			t.Errorf("code %d err %v, want 404", code, err)
		}
	})

	t.Run("dns", func(t *testing.T) {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, p.client.sc.DNSAddr())
		}}
		for _, name := range []string{"echo.demo.svc.clusterset.local", "echo.demo"} {
			addrs, err := r.LookupHost(context.Background(), name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if diff := cmp.Diff([]string{serviceIP}, addrs); diff != "" {
				t.Errorf("%s (-want +got):\n%s", name, diff)
			}
		}
		if _, err := r.LookupHost(context.Background(), "nope.demo.svc.clusterset.local"); err == nil {
			t.Error("unknown service resolved")
		}
	})

	t.Run("grpc", func(t *testing.T) {
		conn := grpcConn(t, p.client, p.grpcP)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := 0; i < 3; i++ {
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("status %v, want SERVING", resp.GetStatus())
			}
		}
		// A gRPC error status travels back in trailers.
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
		if err == nil || !strings.Contains(err.Error(), "NotFound") {
			t.Errorf("unknown service: err %v, want NotFound", err)
		}
	})

	t.Run("tcp", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.client.sc.ServiceAddr(p.tcpP))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for _, line := range []string{"hello\n", "again\n"} {
			if _, err := io.WriteString(conn, line); err != nil {
				t.Fatal(err)
			}
			got, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if got != line {
				t.Errorf("echo %q, want %q", got, line)
			}
		}
	})

	t.Run("tcp through CONNECT", func(t *testing.T) {
		conn, br := tunnel(t, p.client, "echo-tcp.demo:"+strconv.Itoa(int(p.tcpP)))
		defer conn.Close()
		io.WriteString(conn, "ping\n")
		got, err := br.ReadString('\n')
		if err != nil || got != "ping\n" {
			t.Errorf("echo %q %v", got, err)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		if n := p.client.counter(t, "fedmesh_sidecar_requests_total", map[string]string{"direction": "outbound", "destination_cluster": "east-1", "code": "2xx"}); n < 4 {
			t.Errorf("outbound 2xx requests = %v, want >= 4", n)
		}
		if n := p.server.counter(t, "fedmesh_sidecar_requests_total", map[string]string{"direction": "inbound", "code": "2xx"}); n < 4 {
			t.Errorf("inbound 2xx requests = %v, want >= 4", n)
		}
		resp, err := http.Get("http://" + p.client.sc.AdminAddr() + "/stats/prometheus")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, name := range []string{"fedmesh_sidecar_request_duration_seconds_bucket", "fedmesh_xds_responses_total"} {
			if !strings.Contains(string(b), name) {
				t.Errorf("/stats/prometheus lacks %s", name)
			}
		}
		for page, want := range map[string]string{
			"/config_dump": svc("echo", p.httpP).OutboundCluster(),
			"/endpoints":   svc("echo", p.httpP).String(),
		} {
			resp, err := http.Get("http://" + p.client.sc.AdminAddr() + page)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), want) {
				t.Errorf("%s does not mention the echo service:\n%s", page, b)
			}
		}
	})
}
