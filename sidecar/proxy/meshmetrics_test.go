package proxy_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
)

// lineSink collects access log lines.
type lineSink struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// lines parses every line written so far.
func (s *lineSink) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	text := s.buf.String()
	s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("access log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// side is one sidecar's proxy with its metrics and access log.
type side struct {
	p    *proxy.Proxy
	reg  *prometheus.Registry
	log  *lineSink
	id   string
	addr string // inbound or outbound listener
}

// newSide starts a proxy of workload demo/WORKLOAD (service account sa)
// in cluster, logging every request.
func newSide(t *testing.T, root *meshtest.CA, cluster, workload, sa string) *side {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := proxy.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := &side{reg: reg, log: &lineSink{}, id: root.Workload("demo", sa)}
	al, err := proxy.NewAccessLog(proxy.AccessLogConfig{Sink: s.log}, reg)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, al.Run) // stops after the proxy closes (cleanups run last first)
	if s.p, err = proxy.New(proxy.Config{Cluster: cluster, Workload: workload, Namespace: "demo", Principal: s.id,
		Metrics: m, AccessLog: al, AccessLogMode: proxy.AccessLogAll}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.p.Close)
	return s
}

// secrets issues the side's certificate from its cluster's CA.
func (s *side) secrets(t *testing.T, root, clusterCA *meshtest.CA) []types.Resource {
	_, certPEM, keyPEM := clusterCA.Issue(t, meshtest.SVID{URIs: []string{s.id}})
	return meshtest.Secrets(certPEM, keyPEM, root.PEM())
}

// serveInbound serves the side's inbound listener with res (listener
// first, then clusters).
func (s *side) serveInbound(t *testing.T, root, clusterCA *meshtest.CA, l net.Listener, res []types.Resource) {
	s.addr = l.Addr().String()
	configure(t, root, s.p, map[string][]types.Resource{
		xdsclient.ListenerType: res[:1], xdsclient.ClusterType: res[1:], xdsclient.SecretType: s.secrets(t, root, clusterCA),
	})
	serve(t, func(ctx context.Context) error { return s.p.ServeInbound(ctx, l) })
}

// serveOutbound configures the outbound side with res and serves its
// HTTP proxy listener.
func (s *side) serveOutbound(t *testing.T, root, clusterCA *meshtest.CA, res map[string][]types.Resource) {
	res[xdsclient.SecretType] = s.secrets(t, root, clusterCA)
	configure(t, root, s.p, res)
	l := listen(t)
	s.addr = l.Addr().String()
	serve(t, func(ctx context.Context) error { return s.p.ServeOutboundHTTP(ctx, l) })
}

func (s *side) http(t *testing.T) *http.Client {
	c := &client{addr: s.addr}
	return c.http(t)
}

// outboundRes is the outbound configuration of one service with routes
// (nil: the default route with timeout and retries).
func outboundRes(s naming.ServicePort, ids []string, opts meshtest.ClusterOpts, rc *routev3.RouteConfiguration, eps ...meshtest.Endpoint) map[string][]types.Resource {
	opts.HTTP, opts.Identities = true, ids
	if rc == nil {
		rc = meshtest.Routes(s.Port, 10*time.Second, 0, s)
	}
	return map[string][]types.Resource{
		xdsclient.ClusterType:  {meshtest.OutboundCluster(s, opts)},
		xdsclient.EndpointType: {meshtest.Assignment(s, eps...)},
		xdsclient.ListenerType: {meshtest.OutboundListener(s, true)},
		xdsclient.RouteType:    {rc},
	}
}

// requestSeries returns the label sets of the fedmesh_requests_total
// series of reg with their values.
func requestSeries(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "fedmesh_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var kv []string
			for _, l := range m.GetLabel() {
				kv = append(kv, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(kv)
			out[strings.Join(kv, ",")] = m.GetCounter().GetValue()
		}
	}
	return out
}

func labelKey(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// TestCrossClusterRequestLabels: a request from a client in east-1 to a
// server in west-1 (each with a certificate of its cluster's CA) is
// counted on both sides with every mesh label, its sizes observed, and
// logged on both sides with the documented fields.
func TestCrossClusterRequestLabels(t *testing.T) {
	root := meshtest.NewCA(t, td)
	east, west := root.ClusterCA(t, "east-1"), root.ClusterCA(t, "west-1")
	s := sp("echo", 8080)
	a := startApp(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "hello back")
	})
	srv := newSide(t, root, "west-1", "echo-v1", "echo")
	srv.serveInbound(t, root, west, listen(t), meshtest.Inbound("127.0.0.1:0", meshtest.InboundPort{SP: s, App: a.addr, HTTP: true}))
	cl := newSide(t, root, "east-1", "client", "client")
	cl.serveOutbound(t, root, east, outboundRes(s, []string{srv.id}, meshtest.ClusterOpts{}, nil,
		meshtest.Endpoint{Addr: srv.addr, Cluster: "west-1", Identity: srv.id, Healthy: true, Workload: "echo-v1"}))

	req, _ := http.NewRequest(http.MethodPost, svcURL(s)+"items", strings.NewReader("hello"))
	if r := do(t, cl.http(t), req); r.Code != 200 || r.Body != "hello back" {
		t.Fatalf("POST: %+v", r)
	}
	common := map[string]string{
		"source_workload": "client", "source_namespace": "demo", "source_principal": cl.id, "source_cluster": "east-1",
		"destination_workload": "echo-v1", "destination_namespace": "demo", "destination_principal": srv.id,
		"destination_service": "echo.demo.svc.clusterset.local", "destination_cluster": "west-1",
		"request_protocol": "http", "response_code": "200", "grpc_response_status": "", "response_flags": "-",
	}
	with := func(kv ...string) string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return labelKey(m)
	}
	// The client knows the server's workload name from EDS (the
	// endpoint's hostname); the server cannot know the client's.
	if diff := cmp.Diff(map[string]float64{with("reporter", "source"): 1}, requestSeries(t, cl.reg)); diff != "" {
		t.Errorf("client series (-want +got):\n%s", diff)
	}
	poll.True(t, 10*time.Second, "the server counted the request", func() bool { return len(requestSeries(t, srv.reg)) == 1 })
	if diff := cmp.Diff(map[string]float64{with("reporter", "destination", "source_workload", "unknown"): 1}, requestSeries(t, srv.reg)); diff != "" {
		t.Errorf("server series (-want +got):\n%s", diff)
	}
	for _, sd := range []*side{cl, srv} {
		if got := histSum(t, sd.reg, "fedmesh_request_bytes"); got != 5 {
			t.Errorf("request bytes sum %v, want 5", got)
		}
		if got := histSum(t, sd.reg, "fedmesh_response_bytes"); got != float64(len("hello back")) {
			t.Errorf("response bytes sum %v, want %d", got, len("hello back"))
		}
		if got := histCount(t, sd.reg, "fedmesh_request_duration_seconds"); got != 1 {
			t.Errorf("duration count %v, want 1", got)
		}
	}

	// One access log line on each side.
	var clLines, srvLines []map[string]any
	poll.True(t, 10*time.Second, "a line on each side", func() bool {
		clLines, srvLines = cl.log.lines(t), srv.log.lines(t)
		return len(clLines) == 1 && len(srvLines) == 1
	})
	pick := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			switch k {
			case "start_time", "duration_ms", "upstream_host":
				if v == "" || v == nil {
					t.Errorf("field %s is empty", k)
				}
			default:
				out[k] = v
			}
		}
		return out
	}
	base := map[string]any{"method": "POST", "authority": "echo.demo:8080", "path": "/items", "protocol": "http", "response_code": 200.0,
		"grpc_status": "", "response_flags": "-", "bytes_received": 5.0, "bytes_sent": 10.0, "retries": 0.0, "trace_id": "",
		"source_principal": cl.id, "source_cluster": "east-1", "destination_service": "echo.demo.svc.clusterset.local",
		"destination_principal": srv.id, "destination_cluster": "west-1"}
	wantCl, wantSrv := map[string]any{"reporter": "source", "upstream_cluster": s.OutboundCluster()}, map[string]any{"reporter": "destination", "upstream_cluster": s.SNI()}
	for k, v := range base {
		wantCl[k], wantSrv[k] = v, v
	}
	if diff := cmp.Diff(wantCl, pick(clLines[0])); diff != "" {
		t.Errorf("client line (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantSrv, pick(srvLines[0])); diff != "" {
		t.Errorf("server line (-want +got):\n%s", diff)
	}
	if clLines[0]["upstream_host"] != srv.addr || srvLines[0]["upstream_host"] != a.addr {
		t.Errorf("upstream hosts %v and %v, want %s and %s", clLines[0]["upstream_host"], srvLines[0]["upstream_host"], srv.addr, a.addr)
	}
}

// TestDestinationWorkload: the client sidecar labels destination_workload
// with the EDS hostname of the endpoint that answered (the catalog's
// workload name for a local endpoint), and with "unknown" for a gateway
// entry without one (the control plane sends none when the endpoints
// behind the gateway belong to several workloads). The gateway entry here
// points at the server sidecar's inbound listener, which routes by the
// same SNI a gateway would pass through.
func TestDestinationWorkload(t *testing.T) {
	root := meshtest.NewCA(t, td)
	east := root.ClusterCA(t, "east-1")
	s := sp("echo", 8080)
	a := startApp(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	})
	srv := newSide(t, root, "east-1", "echo-v1", "echo")
	srv.serveInbound(t, root, east, listen(t), meshtest.Inbound("127.0.0.1:0", meshtest.InboundPort{SP: s, App: a.addr, HTTP: true}))

	tests := []struct {
		name string
		ep   meshtest.Endpoint
		want string
	}{
		{
			name: "local endpoint with its workload",
			ep:   meshtest.Endpoint{Addr: srv.addr, Cluster: "east-1", Identity: srv.id, Healthy: true, Workload: "echo-v1"},
			want: "echo-v1",
		},
		{
			name: "gateway entry of several workloads",
			ep:   meshtest.Endpoint{Addr: srv.addr, Cluster: "west-1", Identity: srv.id, SNI: s.SNI(), Healthy: true},
			want: "unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := newSide(t, root, "east-1", "client", "client")
			cl.serveOutbound(t, root, east, outboundRes(s, []string{srv.id}, meshtest.ClusterOpts{}, nil, tt.ep))
			req, _ := http.NewRequest(http.MethodGet, svcURL(s), nil)
			if r := do(t, cl.http(t), req); r.Code != 200 || r.Body != "hello" {
				t.Fatalf("GET: %+v", r)
			}
			var series map[string]float64
			poll.True(t, 10*time.Second, "the client counted the request", func() bool {
				series = requestSeries(t, cl.reg)
				return len(series) == 1
			})
			for key := range series {
				want := "destination_workload=" + tt.want + ","
				if !strings.Contains(key, want) || !strings.Contains(key, "destination_cluster="+tt.ep.Cluster+",") {
					t.Errorf("client series %s, want %s and destination_cluster=%s", key, want, tt.ep.Cluster)
				}
			}
		})
	}
}

func histSum(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return sum
}

func histCount(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return n
}

// resetServer is an HTTP/2 and HTTP/1.1 server with the certificate of id that resets
// every stream before answering: an upstream reset after the request was
// sent.
func resetServer(t *testing.T, clusterCA *meshtest.CA, id string) string {
	t.Helper()
	cert, _, _ := clusterCA.Issue(t, meshtest.SVID{URIs: []string{id}})
	l := tls.NewListener(listen(t), &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{proxy.ALPNH2, proxy.ALPNHTTP1}, ClientAuth: tls.RequireAnyClientCert})
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }),
		ErrorLog: nil}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestResponseFlags: every outcome the mesh makes is counted with its
// Envoy response flag, on the side that made it, and logged with it.
func TestResponseFlags(t *testing.T) {
	root := meshtest.NewCA(t, td)
	east, west := root.ClusterCA(t, "east-1"), root.ClusterCA(t, "west-1")
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	a := startApp(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/slow":
			<-r.Context().Done()
		case "/hold":
			<-release
		}
	})
	names := []string{"ok", "nohealthy", "refused", "reset", "slow", "fail", "fault", "nomatch", "circuit", "denied"}
	svcs := map[string]naming.ServicePort{}
	var ports []meshtest.AuthzPort
	for _, n := range names {
		svcs[n] = sp(n, 8080)
		p := meshtest.AuthzPort{InboundPort: meshtest.InboundPort{SP: svcs[n], App: a.addr, HTTP: true}}
		if n == "denied" {
			p.Authz = &meshtest.Authz{Deny: meshtest.Policies{"ns[demo]-policy[deny]-rule[0]": meshtest.Policy(
				[]meshtest.Permission{meshtest.AnyPermission()}, []meshtest.Principal{meshtest.AnyPrincipal()})}}
		}
		ports = append(ports, p)
	}
	srv := newSide(t, root, "west-1", "echo-v1", "echo")
	srv.serveInbound(t, root, west, listen(t), meshtest.InboundAuthz("127.0.0.1:0", ports...))
	closed := listen(t)
	refusedAddr := closed.Addr().String()
	closed.Close()
	resetAddr := resetServer(t, west, srv.id)

	res := map[string][]types.Resource{}
	var vhosts []*routev3.VirtualHost
	for _, n := range names {
		s := svcs[n]
		ep := meshtest.Endpoint{Addr: srv.addr, Cluster: "west-1", Identity: srv.id, Healthy: true}
		opts := meshtest.ClusterOpts{HTTP: true, Identities: []string{srv.id}}
		backend := []xdsresource.RuleBackend{{Cluster: s.OutboundCluster(), Weight: 1}}
		vh := xdsresource.VirtualHost(s, xdsresource.Route{Timeout: 10 * time.Second})
		eps := []meshtest.Endpoint{ep}
		switch n {
		case "nohealthy":
			eps = nil
		case "refused":
			eps[0].Addr = refusedAddr
		case "reset":
			eps[0].Addr = resetAddr
		case "slow":
			vh = xdsresource.VirtualHost(s, xdsresource.Route{Timeout: 200 * time.Millisecond})
		case "fail":
			vh = xdsresource.RuleVirtualHost(s, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "demo/fail/rule-0", Backends: backend,
				Retry: &xdsresource.RuleRetry{RetryOn: "5xx", NumRetries: 1}}))
		case "fault":
			vh = xdsresource.RuleVirtualHost(s, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "demo/fault/rule-0", Backends: backend,
				Fault: &xdsresource.RuleFault{AbortHTTP: 503, AbortPerMillion: 1_000_000}}))
		case "nomatch":
			vh = xdsresource.RuleVirtualHost(s, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "demo/nomatch/rule-0", Backends: backend,
				Match: xdsresource.RuleMatch{Exact: "/only"}}))
		case "circuit":
			opts.MaxRequests = 1
		}
		res[xdsclient.ClusterType] = append(res[xdsclient.ClusterType], meshtest.OutboundCluster(s, opts))
		res[xdsclient.EndpointType] = append(res[xdsclient.EndpointType], meshtest.Assignment(s, eps...))
		res[xdsclient.ListenerType] = append(res[xdsclient.ListenerType], meshtest.OutboundListener(s, true))
		vhosts = append(vhosts, vh)
	}
	res[xdsclient.RouteType] = []types.Resource{xdsresource.RouteConfiguration("8080", vhosts)}
	cl := newSide(t, root, "east-1", "client", "client")
	cl.serveOutbound(t, root, east, res)
	hc := cl.http(t)

	// The circuit service holds one request, so the next overflows.
	held := make(chan int, 1)
	go func() {
		resp, err := hc.Get(svcURL(svcs["circuit"]) + "hold")
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	poll.True(t, 30*time.Second, "the held request reached the app", func() bool { return a.hits.Load() == 1 })

	tests := []struct {
		name, path string
		code       int
		flag       string
		server     bool // the server's sidecar made the outcome
	}{
		{name: "ok", path: "/", code: 200, flag: "-"},
		{name: "nohealthy", code: 503, flag: "UH"},
		{name: "refused", code: 503, flag: "UF"},
		{name: "reset", code: 502, flag: "UR"},
		{name: "slow", path: "/slow", code: 504, flag: "UT"},
		{name: "fail", path: "/fail", code: 503, flag: "URX"},
		{name: "fault", code: 503, flag: "FI"},
		{name: "nomatch", path: "/other", code: 404, flag: "NR"},
		{name: "circuit", code: 503, flag: "UO"},
		{name: "denied", code: 403, flag: "RBAC", server: true},
		{name: "no service", code: 404, flag: "NR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := "http://nothing.demo:8080/"
			host, logged := "unknown", "" // no service: unknown in metrics, empty in the log
			if s, ok := svcs[tt.name]; ok {
				u = strings.TrimSuffix(svcURL(s), "/") + tt.path
				host, logged = s.Host(), s.Host()
			}
			if r := get(t, hc, u); r.Code != tt.code {
				t.Fatalf("GET %s: %+v, want %d", u, r, tt.code)
			}
			sd := cl
			if tt.server {
				sd = srv
			}
			want := map[string]string{"destination_service": host, "response_flags": tt.flag, "response_code": codeOf(tt.code)}
			poll.True(t, 10*time.Second, "the request counted with its flag", func() bool { return counter(t, sd.reg, "fedmesh_requests_total", want) == 1 })
			var line map[string]any
			poll.True(t, 10*time.Second, "the request logged", func() bool {
				for _, l := range sd.log.lines(t) {
					if l["destination_service"] == logged && l["response_flags"] == tt.flag {
						line = l
						return true
					}
				}
				return false
			})
			if line["response_code"] != float64(tt.code) {
				t.Errorf("logged code %v, want %d", line["response_code"], tt.code)
			}
		})
	}
	once.Do(func() { close(release) })
	if code := <-held; code != 200 {
		t.Errorf("held request: %d", code)
	}
}

func codeOf(code int) string { return strconv.Itoa(code) }
