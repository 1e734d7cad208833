package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// rawRequest sends one HTTP/1.1 request written by hand to addr (to put
// any request target and Host header on the wire) and reads the response.
func rawRequest(t *testing.T, addr, target, host string) result {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{Code: resp.StatusCode, App: resp.Header.Get("X-App"), Error: resp.Header.Get("X-Fedmesh-Error"), Body: string(b)}
}

// TestOutboundRouting checks which service a request reaches by its Host
// header, its absolute request URI or its :authority, on the HTTP proxy
// listener and on a service-port listener.
func TestOutboundRouting(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	echo, other, admin, db := sp("echo", 8080), sp("other", 8080), sp("echo-admin", 9090), sp("db", 5432)
	svcOf := func(s naming.ServicePort, sa string) service {
		w := startWorkload(t, ca, sa, s, startApp(t, s.Name, nil))
		return service{sp: s, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{w.id}},
			eps: []meshtest.Endpoint{{Addr: w.addr, Cluster: "east-1", Identity: w.id, Healthy: true}}}
	}
	dbID := ca.Workload("demo", "db")
	c := startClient(t, ca, svcOf(echo, "echo"), svcOf(other, "other"), svcOf(admin, "admin"),
		service{sp: db, opts: meshtest.ClusterOpts{Identities: []string{dbID}},
			eps: []meshtest.Endpoint{{Addr: "127.0.0.1:1", Cluster: "east-1", Identity: dbID, Healthy: true}}})
	port9090 := c.servePort(t, 9090)
	port8080 := c.servePort(t, 8080)

	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	h2cTransport := &http.Transport{Protocols: h2c}
	defer h2cTransport.CloseIdleConnections()

	tests := []struct {
		name   string
		addr   string // listener; "" is the HTTP proxy listener
		target string // request target; "" is "/"
		host   string // Host header
		h2c    bool   // send h2c with prior knowledge to http://host/ instead
		want   result
	}{
		{name: "full name", host: "echo.demo.svc.clusterset.local:8080", want: result{Code: 200, App: "echo", Body: "echo"}},
		{name: "short name", host: "echo.demo:8080", want: result{Code: 200, App: "echo", Body: "echo"}},
		{name: "case and trailing dot", host: "ECHO.Demo.svc.clusterset.local.:8080", want: result{Code: 200, App: "echo", Body: "echo"}},
		{name: "another service on the same port", host: "other.demo:8080", want: result{Code: 200, App: "other", Body: "other"}},
		{name: "the port selects the service", host: "echo-admin.demo:9090", want: result{Code: 200, App: "echo-admin", Body: "echo-admin"}},
		{name: "absolute URI wins over Host", target: "http://other.demo:8080/", host: "echo.demo:8080", want: result{Code: 200, App: "other", Body: "other"}},
		{name: "h2c authority", h2c: true, host: "other.demo.svc.clusterset.local:8080", want: result{Code: 200, App: "other", Body: "other"}},
		{name: "no port means 80", host: "echo.demo", want: result{Code: 404, Body: "fedmesh: no service for host \"echo.demo\"\n"}},
		{name: "unknown service", host: "nope.demo:8080", want: result{Code: 404, Body: "fedmesh: no service for host \"nope.demo:8080\"\n"}},
		{name: "bad host", host: "echo..demo:8080", want: result{Code: 400, Body: "fedmesh: no service for host \"echo..demo:8080\"\n"}},
		{name: "opaque TCP service", host: "db.demo:5432", want: result{Code: 502, Body: "fedmesh: demo/db:5432 is an opaque TCP port; use CONNECT or its port listener\n"}},
		{name: "IP host on a port with one HTTP service", addr: port9090, host: "127.0.0.1:9090", want: result{Code: 200, App: "echo-admin", Body: "echo-admin"}},
		{name: "service-port listener without port in Host", addr: port8080, host: "other.demo", want: result{Code: 200, App: "other", Body: "other"}},
		{name: "IP host on a port with two HTTP services", addr: port8080, host: "127.0.0.1:8080", want: result{Code: 404, Body: "fedmesh: no service for host \"127.0.0.1:8080\"\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.addr
			if addr == "" {
				addr = c.addr
			}
			var got result
			if tt.h2c {
				req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = tt.host
				got = do(t, &http.Client{Transport: h2cTransport, Timeout: 20 * time.Second}, req)
			} else {
				target := tt.target
				if target == "" {
					target = "/"
				}
				got = rawRequest(t, addr, target, tt.host)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
	if n := counter(t, c.reg, "fedmesh_sidecar_request_errors_total", map[string]string{"reason": "no_route"}); n != 3 {
		t.Errorf("no_route errors = %v, want 3", n)
	}
	if n := counter(t, c.reg, "fedmesh_sidecar_request_errors_total", map[string]string{"reason": "bad_host"}); n != 1 {
		t.Errorf("bad_host errors = %v, want 1", n)
	}
}
