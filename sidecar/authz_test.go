package sidecar_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/audit"
	mt "github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// The server sidecar enforces the RBAC filters of its inbound chains as
// Envoy's RBAC filters do
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/rbac_filter,
// https://www.envoyproxy.io/docs/envoy/latest/configuration/listeners/network_filters/rbac_filter):
// AUDIT (LOG), DENY and ALLOW filters in that order, the first denial
// wins, an ALLOW filter without policies denies everything.

// lines is an audit sink the test reads while the sidecar writes.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) records(t testing.TB) []audit.Record {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []audit.Record
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// authzMesh is a server sidecar in front of HTTP, gRPC and TCP apps, and
// two client sidecars: "client" with an SVID of cluster east-1 and
// "frontend" with one of cluster east-2, each signed by its cluster's
// intermediate CA.
type authzMesh struct {
	m                  *mesh
	server             *workload
	client, frontend   *workload
	sink               *lines
	httpP, grpcP, tcpP int32
	apps               [3]string // http, grpc, tcp app addresses
	clientID, frontID  string
}

func newAuthzMesh(t *testing.T) *authzMesh {
	t.Helper()
	m := newMesh(t)
	a := &authzMesh{m: m, sink: &lines{}, httpP: mt.FreePort(t), grpcP: mt.FreePort(t), tcpP: mt.FreePort(t)}
	a.apps = [3]string{mt.StartHTTP(t, "echo", "").Addr, mt.StartGRPC(t).Addr, mt.StartTCP(t).Addr}
	a.server = m.start(wopts{node: "server", ns: "demo", sa: "echo", workload: "echo", inbound: "127.0.0.1:0", audit: a.sink})
	a.client = m.start(wopts{node: "client", ns: "demo", sa: "client", workload: "client", serviceIP: "127.0.77.2"})
	a.frontend = m.start(wopts{node: "frontend", ns: "web", sa: "frontend", workload: "frontend"})
	a.clientID, a.frontID = a.client.id, a.frontend.id
	for w, cluster := range map[*workload]string{a.client: "east-1", a.frontend: "east-2"} {
		_, w.certPEM, w.keyPEM = m.ca.ClusterCA(t, cluster).Issue(t, mt.SVID{URIs: []string{w.id}})
	}
	_, a.server.certPEM, a.server.keyPEM = m.ca.ClusterCA(t, "east-1").Issue(t, mt.SVID{URIs: []string{a.server.id}})

	hs, gs, ts := svc("echo", a.httpP), svc("echo-grpc", a.grpcP), svc("echo-tcp", a.tcpP)
	echoID := m.ca.Workload("demo", "echo")
	ep := mt.Endpoint{Addr: a.server.sc.InboundAddr(), Cluster: "east-1", Identity: echoID, Healthy: true}
	for _, w := range []struct {
		w    *workload
		node string
	}{{a.client, "client"}, {a.frontend, "frontend"}} {
		cl := map[string][]types.Resource{}
		rt(cl, cdsT,
			mt.OutboundCluster(hs, mt.ClusterOpts{HTTP: true, Identities: []string{echoID}}),
			mt.OutboundCluster(gs, mt.ClusterOpts{HTTP: true, Identities: []string{echoID}}),
			mt.OutboundCluster(ts, mt.ClusterOpts{Identities: []string{echoID}}))
		rt(cl, edsT, mt.Assignment(hs, ep), mt.Assignment(gs, ep), mt.Assignment(ts, ep))
		rt(cl, ldsT, mt.OutboundListener(hs, true), mt.OutboundListener(gs, true), mt.OutboundListener(ts, false))
		rt(cl, rdsT, mt.Routes(a.httpP, 15*time.Second, 0, hs), mt.Routes(a.grpcP, 15*time.Second, 0, gs))
		rt(cl, sdsT, w.w.secrets(m.ca)...)
		m.set(w.node, cl)
	}
	return a
}

// policies are the server's authorization: on the HTTP port, AUDIT of
// POSTs, DENY of /admin, ALLOW of "client" everywhere and of cluster
// east-2 on /cross; on the gRPC port, default deny; on the TCP port,
// ALLOW of "frontend" only.
func (a *authzMesh) policies() (httpA, grpcA, tcpA *mt.Authz) {
	any := []mt.Principal{mt.AnyPrincipal()}
	return &mt.Authz{
			Audit: mt.Policies{"ns[demo]-policy[audit-post]-rule[0]": mt.Policy([]mt.Permission{mt.Method("POST")}, any)},
			Deny:  mt.Policies{"ns[demo]-policy[deny-admin]-rule[0]": mt.Policy([]mt.Permission{mt.Path(mt.Prefix("/admin"))}, any)},
			Allow: mt.Policies{
				"ns[demo]-policy[allow]-rule[0]": mt.Policy([]mt.Permission{mt.AnyPermission()}, []mt.Principal{mt.PrincipalName(mt.Exact(a.clientID))}),
				"ns[demo]-policy[allow]-rule[1]": mt.Policy([]mt.Permission{mt.Path(mt.Prefix("/cross"))}, []mt.Principal{mt.PeerCluster(mt.Exact("east-2"))}),
			},
		},
		&mt.Authz{DefaultDeny: true},
		&mt.Authz{Allow: mt.Policies{"ns[demo]-policy[tcp]-rule[0]": mt.Policy([]mt.Permission{mt.AnyPermission()}, []mt.Principal{mt.PrincipalName(mt.Exact(a.frontID))})}}
}

// setServer publishes the server's inbound side with the given
// authorization per port.
func (a *authzMesh) setServer(httpA, grpcA, tcpA *mt.Authz) {
	a.setServerWith(httpA, grpcA, tcpA, func(*listenerv3.Listener) {})
}

// setServerWith is setServer with the inbound listener changed by edit
// before it is sent.
func (a *authzMesh) setServerWith(httpA, grpcA, tcpA *mt.Authz, edit func(*listenerv3.Listener)) {
	ports := a.inboundPorts()
	ports[0].Authz, ports[1].Authz, ports[2].Authz = httpA, grpcA, tcpA
	res := mt.InboundAuthz(a.server.sc.InboundAddr(), ports[:]...)
	edit(res[0].(*listenerv3.Listener))
	a.publishServer(res)
}

// inboundPorts are the server's HTTP, gRPC and TCP ports, in this
// order, with no policy.
func (a *authzMesh) inboundPorts() [3]mt.AuthzPort {
	return [3]mt.AuthzPort{
		{InboundPort: mt.InboundPort{SP: svc("echo", a.httpP), App: a.apps[0], HTTP: true}},
		{InboundPort: mt.InboundPort{SP: svc("echo-grpc", a.grpcP), App: a.apps[1], GRPC: true}},
		{InboundPort: mt.InboundPort{SP: svc("echo-tcp", a.tcpP), App: a.apps[2]}},
	}
}

// publishServer publishes res, an inbound listener and its clusters as
// mt.InboundAuthz returns them, with the server's secrets to the server.
func (a *authzMesh) publishServer(res []types.Resource) {
	srv := map[string][]types.Resource{}
	rt(srv, ldsT, res[0])
	rt(srv, cdsT, res[1:]...)
	rt(srv, sdsT, a.server.secrets(a.m.ca)...)
	a.m.set("server", srv)
}

func (a *authzMesh) url(path string) string {
	return "http://echo.demo.svc.clusterset.local:" + strconv.Itoa(int(a.httpP)) + path
}

func do(t *testing.T, c *http.Client, method, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAuthorization(t *testing.T) {
	a := newAuthzMesh(t)
	a.setServer(a.policies())
	for _, w := range []*workload{a.server, a.client, a.frontend} {
		w.ready(t)
	}
	client, frontend := proxyClient(a.client), proxyClient(a.frontend)
	// The policies are in force once the DENY of /admin answers 403. The
	// audit records of these probes are written asynchronously, so they
	// are told from the steps' records by their path, not by count.
	const inForcePath = "/admin/in-force"
	poll.True(t, 30*time.Second, "policies in force", func() bool {
		resp, err := client.Get(a.url(inForcePath))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusForbidden
	})
	start := len(a.sink.records(t))
	rule0 := 0
	httpPort := a.httpP

	type want struct {
		code int
		body string
	}
	steps := []struct {
		name   string
		c      *http.Client
		method string
		path   string
		want   want
		record *audit.Record // the record it writes, time aside
	}{
		{name: "allowed by ALLOW", c: client, method: "GET", path: "/hello", want: want{200, "echo " + a.clientID + "\n"}},
		{name: "denied by DENY", c: client, method: "GET", path: "/admin/users?all=1", want: want{403, "RBAC: access denied"},
			record: &audit.Record{Decision: "deny", Policy: "demo/deny-admin", Rule: &rule0, Reason: "denied by DENY policy",
				SourcePrincipal: a.clientID, SourceCluster: "east-1", DestinationService: "demo/echo", DestinationPort: httpPort,
				Method: "GET", Path: "/admin/users", Protocol: "http"}},
		{name: "percent-encoding does not hide a path", c: client, method: "GET", path: "/%61dmin", want: want{403, "RBAC: access denied"},
			record: &audit.Record{Decision: "deny", Policy: "demo/deny-admin", Rule: &rule0, Reason: "denied by DENY policy",
				SourcePrincipal: a.clientID, SourceCluster: "east-1", DestinationService: "demo/echo", DestinationPort: httpPort,
				Method: "GET", Path: "/admin", Protocol: "http"}},
		{name: "denied by absent ALLOW", c: frontend, method: "GET", path: "/hello", want: want{403, "RBAC: access denied"},
			record: &audit.Record{Decision: "deny", Reason: "no ALLOW policy matched",
				SourcePrincipal: a.frontID, SourceCluster: "east-2", DestinationService: "demo/echo", DestinationPort: httpPort,
				Method: "GET", Path: "/hello", Protocol: "http"}},
		{name: "allowed by peer cluster east-2", c: frontend, method: "GET", path: "/cross/x", want: want{200, "echo " + a.frontID + "\n"}},
		{name: "AUDIT recorded, request allowed", c: client, method: "POST", path: "/hello", want: want{200, "echo " + a.clientID + "\n"},
			record: &audit.Record{Decision: "audit", Policy: "demo/audit-post", Rule: &rule0, Reason: "audited",
				SourcePrincipal: a.clientID, SourceCluster: "east-1", DestinationService: "demo/echo", DestinationPort: httpPort,
				Method: "POST", Path: "/hello", Protocol: "http"}},
	}
	var wantRecords []audit.Record
	for _, s := range steps {
		code, body := do(t, s.c, s.method, a.url(s.path))
		if diff := cmp.Diff(s.want, want{code, body}, cmp.AllowUnexported(want{})); diff != "" {
			t.Errorf("%s: response (-want +got):\n%s", s.name, diff)
		}
		if s.record != nil {
			wantRecords = append(wantRecords, *s.record)
		}
	}
	stepRecords := func() []audit.Record {
		var out []audit.Record
		for _, r := range a.sink.records(t)[start:] {
			if r.Path != inForcePath {
				out = append(out, r)
			}
		}
		return out
	}
	poll.True(t, 30*time.Second, "audit records", func() bool { return len(stepRecords()) >= len(wantRecords) })
	got := stepRecords()
	for i := range got {
		if got[i].Time.IsZero() || time.Since(got[i].Time) > time.Minute {
			t.Errorf("record %d time %v", i, got[i].Time)
		}
		got[i].Time = time.Time{}
	}
	if diff := cmp.Diff(wantRecords, got); diff != "" {
		t.Errorf("audit records (-want +got):\n%s", diff)
	}

	t.Run("grpc denied by default deny", func(t *testing.T) {
		poll.True(t, 30*time.Second, "grpc listener", func() bool { return a.client.sc.ServiceAddr(a.grpcP) != "" })
		conn := grpcConn(t, a.client, a.grpcP)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
		st, _ := status.FromError(err)
		if st.Code() != codes.PermissionDenied || st.Message() != "RBAC: access denied" || len(st.Details()) != 0 {
			t.Errorf("status %v %q %v, want PermissionDenied %q and no details", st.Code(), st.Message(), st.Details(), "RBAC: access denied")
		}
		poll.True(t, 30*time.Second, "grpc audit record", func() bool {
			for _, r := range a.sink.records(t) {
				if r.Protocol == "grpc" && r.Reason == "no ALLOW policy matched" && r.Path == "/grpc.health.v1.Health/Check" && r.Method == "POST" && r.DestinationService == "demo/echo-grpc" {
					return true
				}
			}
			return false
		})
	})

	t.Run("tcp denied is closed, allowed is spliced", func(t *testing.T) {
		for _, c := range []struct {
			w       *workload
			allowed bool
		}{{a.client, false}, {a.frontend, true}} {
			conn, br := tunnel(t, c.w, "echo-tcp.demo:"+strconv.Itoa(int(a.tcpP)))
			io.WriteString(conn, "ping\n")
			got, err := br.ReadString('\n')
			if c.allowed && (err != nil || got != "ping\n") {
				t.Errorf("%s: echo %q %v, want ping", c.w.id, got, err)
			}
			if !c.allowed && (err != io.EOF || got != "") {
				t.Errorf("%s: read %q %v, want the connection closed (EOF)", c.w.id, got, err)
			}
			conn.Close()
		}
		poll.True(t, 30*time.Second, "tcp audit record", func() bool {
			for _, r := range a.sink.records(t) {
				if r.Protocol == "tcp" && r.Decision == "deny" && r.SourcePrincipal == a.clientID && r.SourceCluster == "east-1" &&
					r.DestinationService == "demo/echo-tcp" && r.DestinationPort == a.tcpP && r.Method == "" && r.Rule == nil {
					return true
				}
			}
			return false
		})
	})

	t.Run("an unsupported field is refused, the last good policy stays", func(t *testing.T) {
		h, g, tc := a.policies()
		a.setServerWith(h, g, tc, func(l *listenerv3.Listener) {
			if !mt.AddUnsupportedPolicy(l, rbacv3.RBAC_DENY, "ns[demo]-policy[bad]-rule[0]") {
				t.Fatal("no DENY filter to add to")
			}
		})
		poll.True(t, 30*time.Second, "nack counted", func() bool {
			return a.server.counter(t, "fedmesh_authz_config_rejected_total", map[string]string{"reason": "unsupported_field"}) >= 1
		})
		if code, _ := do(t, client, "GET", a.url("/admin")); code != 403 {
			t.Errorf("/admin after a refused update: %d, want 403 (the last good policy)", code)
		}
		if code, _ := do(t, client, "GET", a.url("/hello")); code != 200 {
			t.Errorf("/hello after a refused update: %d, want 200", code)
		}
	})

	t.Run("default deny on the HTTP port", func(t *testing.T) {
		a.setServer(&mt.Authz{DefaultDeny: true}, nil, nil)
		poll.True(t, 30*time.Second, "default deny in force", func() bool {
			code, _ := do(t, client, "GET", a.url("/hello"))
			return code == 403
		})
	})

	t.Run("metrics", func(t *testing.T) {
		svcName := svc("echo", a.httpP).String()
		for _, d := range []string{"allow", "deny", "audit"} {
			if n := a.server.counter(t, "fedmesh_authz_decisions_total", map[string]string{"decision": d, "service": svcName}); n < 1 {
				t.Errorf("decisions %s on %s = %v, want >= 1", d, svcName, n)
			}
		}
		if n := a.server.counter(t, "fedmesh_audit_records_total", nil); n < 5 {
			t.Errorf("audit records written = %v, want >= 5", n)
		}
	})
}
