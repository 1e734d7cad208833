package sidecar_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// seen is what an inspect app reports about a request it received.
type seen struct {
	App     string      `json:"app"`
	Path    string      `json:"path"`
	Query   string      `json:"query"`
	Host    string      `json:"host"`
	Headers http.Header `json:"headers"`
}

// app is a real HTTP server on loopback whose handler a test chooses;
// by default it answers a JSON seen.
type app struct {
	name string
	addr string
	hits atomic.Int64
}

func startApp(t testing.TB, name string, h http.HandlerFunc) *app {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{name: name, addr: l.Addr().String()}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-App", name)
			w.Header().Set("X-Internal", "secret")
			_ = json.NewEncoder(w).Encode(seen{App: name, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Headers: r.Header})
		}
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		h(w, r)
	})}
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
	return a
}

// routeSvc is one HTTP service behind the routing mesh's server sidecars.
type routeSvc struct {
	sp   naming.ServicePort
	apps []*app // one server sidecar per app
	grpc string // a gRPC app's address instead of apps
	// vhost replaces the default route; nil keeps it.
	vhost *routev3.VirtualHost
	// local adds the local-only subset cluster with the same endpoints.
	local bool
	// lb adjusts the outbound cluster (ring hash, round robin).
	lb func(c types.Resource) types.Resource
}

// routeMesh is a client sidecar and server sidecars in front of the
// services' apps, each service on its own port.
type routeMesh struct {
	m       *mesh
	client  *workload
	servers []*workload
	svcs    []*routeSvc
	httpC   *http.Client
}

func newRouteMesh(t *testing.T, svcs ...*routeSvc) *routeMesh {
	t.Helper()
	m := newMesh(t)
	rm := &routeMesh{m: m, svcs: svcs}
	rm.client = m.start(wopts{node: "client", ns: "demo", sa: "client", workload: "client", serviceIP: serviceIP})
	n := 0
	for _, s := range svcs {
		k := max(len(s.apps), 1)
		for i := 0; i < k; i++ {
			node := "server-" + strconv.Itoa(n)
			n++
			w := m.start(wopts{node: node, ns: "demo", sa: "echo", workload: node, inbound: "127.0.0.1:0"})
			rm.servers = append(rm.servers, w)
			addr, ip := s.grpc, meshtest.InboundPort{SP: s.sp, GRPC: true}
			if s.grpc == "" {
				addr, ip = s.apps[i].addr, meshtest.InboundPort{SP: s.sp, HTTP: true}
			}
			ip.App = addr
			res := map[string][]types.Resource{}
			in := meshtest.Inbound(w.sc.InboundAddr(), ip)
			rt(res, ldsT, in[0])
			rt(res, cdsT, in[1:]...)
			rt(res, sdsT, w.secrets(m.ca)...)
			m.set(node, res)
		}
	}
	for _, w := range rm.servers {
		w.ready(t)
	}
	rm.publish(t)
	rm.client.ready(t)
	rm.httpC = proxyClient(rm.client)
	rm.httpC.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	t.Cleanup(rm.httpC.CloseIdleConnections)
	return rm
}

// publish sends the client sidecar its resources for every service.
func (rm *routeMesh) publish(t *testing.T) {
	t.Helper()
	echoID := rm.m.ca.Workload("demo", "echo")
	res := map[string][]types.Resource{}
	srv := 0
	for _, s := range rm.svcs {
		var eps []meshtest.Endpoint
		for i := 0; i < max(len(s.apps), 1); i++ {
			eps = append(eps, meshtest.Endpoint{Addr: rm.servers[srv].sc.InboundAddr(), Cluster: "east-1", Identity: echoID, Healthy: true})
			srv++
		}
		var c types.Resource = meshtest.OutboundCluster(s.sp, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}})
		if s.lb != nil {
			c = s.lb(c)
		}
		rt(res, cdsT, c)
		rt(res, edsT, meshtest.Assignment(s.sp, eps...))
		if s.local {
			lc := meshtest.OutboundCluster(s.sp, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}})
			lc.Name = s.sp.LocalCluster()
			la := meshtest.Assignment(s.sp, eps...)
			la.ClusterName = s.sp.LocalCluster()
			rt(res, cdsT, lc)
			rt(res, edsT, la)
		}
		rt(res, ldsT, meshtest.OutboundListener(s.sp, true))
		if s.vhost != nil {
			rt(res, rdsT, xdsresource.RouteConfiguration(strconv.Itoa(int(s.sp.Port)), []*routev3.VirtualHost{s.vhost}))
		} else {
			rt(res, rdsT, meshtest.Routes(s.sp.Port, 15*time.Second, 2, s.sp))
		}
	}
	rt(res, sdsT, rm.client.secrets(rm.m.ca)...)
	rm.m.set("client", res)
}

func (rm *routeMesh) url(sp naming.ServicePort, pathQuery string) string {
	return "http://" + sp.Host() + ":" + strconv.Itoa(int(sp.Port)) + pathQuery
}

// do sends one request through the client sidecar.
func (rm *routeMesh) do(t *testing.T, method, u string, hdr ...string) (*http.Response, seen) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := rm.httpC.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var s seen
	_ = json.Unmarshal(b, &s)
	return resp, s
}

func to(sp naming.ServicePort, w uint32) xdsresource.RuleBackend {
	return xdsresource.RuleBackend{Cluster: sp.OutboundCluster(), Weight: w}
}

func durp(d time.Duration) *time.Duration { return &d }

// waitRoutes waits until a request answers as the new routes say.
func (rm *routeMesh) waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	poll.True(t, 30*time.Second, what, f)
}

// TestRouteMatchTypes: one rule per match type sends matching requests to
// echo-v2; anything else falls to the last rule (echo). Each request is
// judged by the app that answered it.
func TestRouteMatchTypes(t *testing.T) {
	port, v2port := meshtest.FreePort(t), meshtest.FreePort(t)
	echo, v2 := svc("echo", port), svc("echo-v2", v2port)
	rule := func(name string, m xdsresource.RuleMatch) *routev3.Route {
		return xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "demo/r/" + name, Match: m, Backends: []xdsresource.RuleBackend{to(v2, 1)}})
	}
	vh := xdsresource.RuleVirtualHost(echo,
		rule("prefix", xdsresource.RuleMatch{Prefix: "/pre"}),
		rule("separated", xdsresource.RuleMatch{SeparatedPrefix: "/sep"}),
		rule("exact", xdsresource.RuleMatch{Exact: "/exact"}),
		rule("regex", xdsresource.RuleMatch{Regex: "/re/[0-9]+"}),
		rule("header", xdsresource.RuleMatch{Prefix: "/h", Headers: []xdsresource.RuleHeader{{Name: "x-user", Exact: "beta"}}}),
		rule("header-regex", xdsresource.RuleMatch{Prefix: "/hr", Headers: []xdsresource.RuleHeader{{Name: "x-user", Regex: "b[a-z]+"}}}),
		rule("header-present", xdsresource.RuleMatch{Prefix: "/hp", Headers: []xdsresource.RuleHeader{{Name: "x-canary"}}}),
		rule("header-invert", xdsresource.RuleMatch{Prefix: "/hi", Headers: []xdsresource.RuleHeader{{Name: "x-user", Exact: "alpha", Invert: true}}}),
		rule("query", xdsresource.RuleMatch{Prefix: "/q", Query: []xdsresource.RuleQuery{{Name: "v", Exact: "2"}}}),
		rule("query-regex", xdsresource.RuleMatch{Prefix: "/qr", Query: []xdsresource.RuleQuery{{Name: "v", Regex: "[0-9]+"}}}),
		rule("method", xdsresource.RuleMatch{Prefix: "/m", Method: "POST"}),
		xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "demo/r/rest", Match: xdsresource.RuleMatch{Prefix: "/"}, Backends: []xdsresource.RuleBackend{to(echo, 1)}}),
	)
	rm := newRouteMesh(t,
		&routeSvc{sp: echo, apps: []*app{startApp(t, "echo", nil)}, vhost: vh},
		&routeSvc{sp: v2, apps: []*app{startApp(t, "echo-v2", nil)}})
	rm.waitFor(t, "routes in force", func() bool {
		resp, s := rm.do(t, "GET", rm.url(echo, "/pre"))
		return resp.StatusCode == 200 && s.App == "echo-v2"
	})
	tests := []struct {
		name         string
		method, path string
		hdr          []string
		want         string
	}{
		{"prefix", "GET", "/prefix/x", nil, "echo-v2"},
		{"separated prefix", "GET", "/sep/x", nil, "echo-v2"},
		{"separated prefix is not a string prefix", "GET", "/sepx", nil, "echo"},
		{"exact", "GET", "/exact", nil, "echo-v2"},
		{"exact is exact", "GET", "/exact/x", nil, "echo"},
		{"regex", "GET", "/re/42", nil, "echo-v2"},
		{"regex matches the whole path", "GET", "/re/42x", nil, "echo"},
		{"header exact", "GET", "/h", []string{"X-User", "beta"}, "echo-v2"},
		{"header exact other value", "GET", "/h", []string{"X-User", "gamma"}, "echo"},
		{"header regex", "GET", "/hr", []string{"X-User", "bob"}, "echo-v2"},
		{"header present", "GET", "/hp", []string{"X-Canary", "1"}, "echo-v2"},
		{"header missing", "GET", "/hp", nil, "echo"},
		{"header inverted", "GET", "/hi", []string{"X-User", "beta"}, "echo-v2"},
		{"header inverted matching", "GET", "/hi", []string{"X-User", "alpha"}, "echo"},
		{"query", "GET", "/q?a=1&v=2", nil, "echo-v2"},
		{"query other value", "GET", "/q?v=3", nil, "echo"},
		{"query regex", "GET", "/qr?v=17", nil, "echo-v2"},
		{"method", "POST", "/m", nil, "echo-v2"},
		{"other method", "GET", "/m", nil, "echo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, s := rm.do(t, tt.method, rm.url(echo, tt.path), tt.hdr...)
			if resp.StatusCode != 200 || s.App != tt.want {
				t.Errorf("%s %s %v: status %d from %q, want 200 from %q", tt.method, tt.path, tt.hdr, resp.StatusCode, s.App, tt.want)
			}
		})
	}
}

// TestRouteNoMatch: with a route in force and no rule matching, the
// sidecar answers 404 and counts no_route_match.
func TestRouteNoMatch(t *testing.T) {
	echo := svc("echo", meshtest.FreePort(t))
	vh := xdsresource.RuleVirtualHost(echo, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "demo/r/rule-0", Match: xdsresource.RuleMatch{SeparatedPrefix: "/api"}, Backends: []xdsresource.RuleBackend{to(echo, 1)}}))
	rm := newRouteMesh(t, &routeSvc{sp: echo, apps: []*app{startApp(t, "echo", nil)}, vhost: vh})
	rm.waitFor(t, "route in force", func() bool {
		resp, _ := rm.do(t, "GET", rm.url(echo, "/other"))
		return resp.StatusCode == 404
	})
	resp, _ := rm.do(t, "GET", rm.url(echo, "/nothing"))
	if resp.StatusCode != 404 || resp.Header.Get("X-Fedmesh-Error") != "no_route_match" {
		t.Errorf("status %d, error %q; want 404 no_route_match", resp.StatusCode, resp.Header.Get("X-Fedmesh-Error"))
	}
	if resp, s := rm.do(t, "GET", rm.url(echo, "/api/x")); resp.StatusCode != 200 || s.App != "echo" {
		t.Errorf("/api/x: %d from %q", resp.StatusCode, s.App)
	}
	if n := rm.client.counter(t, "fedmesh_sidecar_request_errors_total", map[string]string{"reason": "no_route_match"}); n < 2 {
		t.Errorf("no_route_match counted %v times, want at least 2", n)
	}
}

// binomialOK reports whether k successes of n are within 4 sigma of p.
func binomialOK(k, n int, p float64) (bool, string) {
	mean := float64(n) * p
	sigma := math.Sqrt(float64(n) * p * (1 - p))
	ok := math.Abs(float64(k)-mean) <= 4*sigma
	return ok, fmt.Sprintf("%d of %d, want %.0f ± %.1f (4 sigma)", k, n, mean, 4*sigma)
}

// TestRouteWeightedSplit: 80/20 between echo's local-only subset and
// echo-v2 under load; the observed share of echo-v2 is within a binomial
// bound of 20%, and the per-backend header modifier is applied.
func TestRouteWeightedSplit(t *testing.T) {
	echo, v2 := svc("echo", meshtest.FreePort(t)), svc("echo-v2", meshtest.FreePort(t))
	vh := xdsresource.RuleVirtualHost(echo, xdsresource.RuleRoute(xdsresource.RuleSpec{
		Name: "demo/canary/rule-0",
		Backends: []xdsresource.RuleBackend{
			{Cluster: echo.LocalCluster(), Weight: 80, RequestHeaders: xdsresource.RuleHeaderMods{Set: [][2]string{{"x-backend", "local"}}}},
			{Cluster: v2.OutboundCluster(), Weight: 20, RequestHeaders: xdsresource.RuleHeaderMods{Set: [][2]string{{"x-backend", "canary"}}}},
		},
	}))
	rm := newRouteMesh(t,
		&routeSvc{sp: echo, apps: []*app{startApp(t, "echo", nil)}, vhost: vh, local: true},
		&routeSvc{sp: v2, apps: []*app{startApp(t, "echo-v2", nil)}})
	rm.waitFor(t, "split in force", func() bool {
		resp, s := rm.do(t, "GET", rm.url(echo, "/"))
		return resp.StatusCode == 200 && s.Headers.Get("X-Backend") != ""
	})
	const n = 600
	deadline := time.Now().Add(60 * time.Second)
	var got [2]atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	var next atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n && time.Now().Before(deadline) {
				resp, err := rm.httpC.Get(rm.url(echo, "/"))
				if err != nil {
					failed.Add(1)
					continue
				}
				var s seen
				_ = json.NewDecoder(resp.Body).Decode(&s)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200 && s.App == "echo" && s.Headers.Get("X-Backend") == "local":
					got[0].Add(1)
				case resp.StatusCode == 200 && s.App == "echo-v2" && s.Headers.Get("X-Backend") == "canary":
					got[1].Add(1)
				default:
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	total := int(got[0].Load() + got[1].Load())
	if failed.Load() > 0 || total < n {
		t.Fatalf("%d requests failed or answered wrongly, %d of %d judged", failed.Load(), total, n)
	}
	if ok, msg := binomialOK(int(got[1].Load()), total, 0.2); !ok {
		t.Errorf("echo-v2 share: %s", msg)
	} else {
		t.Logf("echo-v2 share: %s", msg)
	}
}

// TestRouteFilters: header modifiers, rewrites, redirect, direct response,
// missing backend and mirror, each seen from outside.
func TestRouteFilters(t *testing.T) {
	echo, mir := svc("echo", meshtest.FreePort(t)), svc("echo-mirror", meshtest.FreePort(t))
	mirrored := make(chan seen, 64)
	mirrorApp := startApp(t, "mirror", func(w http.ResponseWriter, r *http.Request) {
		select {
		case mirrored <- seen{Path: r.URL.Path, Host: r.Host}:
		default:
		}
		_, _ = io.WriteString(w, "discarded")
	})
	r := func(s xdsresource.RuleSpec) *routev3.Route {
		if s.Backends == nil && s.Redirect == nil && s.DirectStatus == 0 {
			s.Backends = []xdsresource.RuleBackend{to(echo, 1)}
		}
		return xdsresource.RuleRoute(s)
	}
	vh := xdsresource.RuleVirtualHost(echo,
		r(xdsresource.RuleSpec{Name: "headers", Match: xdsresource.RuleMatch{Exact: "/headers"},
			RequestHeaders:  xdsresource.RuleHeaderMods{Set: [][2]string{{"x-set", "new"}}, Add: [][2]string{{"x-add", "two"}}, Remove: []string{"x-drop"}},
			ResponseHeaders: xdsresource.RuleHeaderMods{Set: [][2]string{{"x-resp", "yes"}}, Remove: []string{"x-internal"}}}),
		r(xdsresource.RuleSpec{Name: "prefix-rewrite", Match: xdsresource.RuleMatch{SeparatedPrefix: "/old"}, PrefixRewrite: "/new", HostRewrite: "rewritten.example"}),
		r(xdsresource.RuleSpec{Name: "full-rewrite", Match: xdsresource.RuleMatch{SeparatedPrefix: "/any"}, FullPathRewrite: "/fixed"}),
		r(xdsresource.RuleSpec{Name: "redirect", Match: xdsresource.RuleMatch{SeparatedPrefix: "/moved"}, Redirect: &xdsresource.RuleRedirect{Scheme: "https", Host: "elsewhere.example", Port: 8443, PrefixRewrite: "/here", Code: 302}}),
		r(xdsresource.RuleSpec{Name: "direct", Match: xdsresource.RuleMatch{Exact: "/teapot"}, DirectStatus: 418, DirectBody: "short and stout"}),
		r(xdsresource.RuleSpec{Name: "missing", Match: xdsresource.RuleMatch{Exact: "/missing"}, Backends: []xdsresource.RuleBackend{{Cluster: "fedmesh-missing-backend", Weight: 1}}}),
		r(xdsresource.RuleSpec{Name: "mirror", Match: xdsresource.RuleMatch{Exact: "/mirror"}, Mirrors: []xdsresource.RuleMirror{{Cluster: mir.OutboundCluster(), PerMillion: 1_000_000}}}),
	)
	rm := newRouteMesh(t,
		&routeSvc{sp: echo, apps: []*app{startApp(t, "echo", nil)}, vhost: vh},
		&routeSvc{sp: mir, apps: []*app{mirrorApp}})
	rm.waitFor(t, "routes in force", func() bool {
		resp, _ := rm.do(t, "GET", rm.url(echo, "/teapot"))
		return resp.StatusCode == 418
	})
	t.Run("request and response header modifiers", func(t *testing.T) {
		resp, s := rm.do(t, "GET", rm.url(echo, "/headers"), "X-Set", "old", "X-Add", "one", "X-Drop", "gone")
		if got := s.Headers.Values("X-Set"); len(got) != 1 || got[0] != "new" {
			t.Errorf("x-set %v, want [new]", got)
		}
		if got := s.Headers.Values("X-Add"); strings.Join(got, ",") != "one,two" {
			t.Errorf("x-add %v, want [one two]", got)
		}
		if s.Headers.Get("X-Drop") != "" {
			t.Errorf("x-drop reached the app")
		}
		if resp.Header.Get("X-Resp") != "yes" || resp.Header.Get("X-Internal") != "" || resp.Header.Get("X-App") != "echo" {
			t.Errorf("response headers %v", resp.Header)
		}
	})
	t.Run("prefix and host rewrite", func(t *testing.T) {
		_, s := rm.do(t, "GET", rm.url(echo, "/old/x?q=1"))
		if s.Path != "/new/x" || s.Query != "q=1" || s.Host != "rewritten.example" {
			t.Errorf("app saw %q %q host %q, want /new/x q=1 rewritten.example", s.Path, s.Query, s.Host)
		}
	})
	t.Run("full path rewrite", func(t *testing.T) {
		if _, s := rm.do(t, "GET", rm.url(echo, "/any/deep/path")); s.Path != "/fixed" {
			t.Errorf("app saw %q, want /fixed", s.Path)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		resp, _ := rm.do(t, "GET", rm.url(echo, "/moved/page?a=b"))
		if want := "https://elsewhere.example:8443/here/page?a=b"; resp.StatusCode != 302 || resp.Header.Get("Location") != want {
			t.Errorf("status %d location %q, want 302 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})
	t.Run("direct response", func(t *testing.T) {
		resp, err := rm.httpC.Get(rm.url(echo, "/teapot"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 418 || string(b) != "short and stout" {
			t.Errorf("%d %q", resp.StatusCode, b)
		}
	})
	t.Run("missing backend", func(t *testing.T) {
		resp, _ := rm.do(t, "GET", rm.url(echo, "/missing"))
		if resp.StatusCode != 500 || resp.Header.Get("X-Fedmesh-Error") != "backend_not_found" {
			t.Errorf("status %d error %q, want 500 backend_not_found", resp.StatusCode, resp.Header.Get("X-Fedmesh-Error"))
		}
	})
	t.Run("mirror", func(t *testing.T) {
		resp, s := rm.do(t, "GET", rm.url(echo, "/mirror"))
		if resp.StatusCode != 200 || s.App != "echo" {
			t.Fatalf("main request: %d from %q, want 200 from echo", resp.StatusCode, s.App)
		}
		select {
		case m := <-mirrored:
			if m.Path != "/mirror" || !strings.Contains(m.Host, "-shadow") {
				t.Errorf("mirror saw %q host %q, want /mirror and a -shadow host", m.Path, m.Host)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the mirror received nothing")
		}
	})
}

// TestRouteRetriesAndTimeouts observes from outside: a failing backend
// (503 on each request's first attempt) is retried and the client sees
// 200; a backend slow on the first attempt is cut by the per-try timeout
// and retried; a backend that is always slow gives 504 at the route's
// timeout.
func TestRouteRetriesAndTimeouts(t *testing.T) {
	flaky, slowOnce, slow := svc("flaky", meshtest.FreePort(t)), svc("slow-once", meshtest.FreePort(t)), svc("slow", meshtest.FreePort(t))
	var attempts sync.Map // request id -> *atomic.Int64
	attempt := func(r *http.Request) int64 {
		v, _ := attempts.LoadOrStore(r.Header.Get("X-Req"), new(atomic.Int64))
		return v.(*atomic.Int64).Add(1)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	wait := func(r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		case <-time.After(20 * time.Second):
		}
	}
	flakyApp := startApp(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		if attempt(r) == 1 {
			w.WriteHeader(503)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	slowOnceApp := startApp(t, "slow-once", func(w http.ResponseWriter, r *http.Request) {
		if attempt(r) == 1 {
			wait(r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	slowApp := startApp(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		wait(r)
	})
	retry := &xdsresource.RuleRetry{RetryOn: "5xx", NumRetries: 2, BackOffBase: 5 * time.Millisecond}
	vhost := func(sp naming.ServicePort, s xdsresource.RuleSpec) *routev3.VirtualHost {
		s.Name, s.Backends = sp.Name+"/rule-0", []xdsresource.RuleBackend{to(sp, 1)}
		return xdsresource.RuleVirtualHost(sp, xdsresource.RuleRoute(s))
	}
	rm := newRouteMesh(t,
		&routeSvc{sp: flaky, apps: []*app{flakyApp}, vhost: vhost(flaky, xdsresource.RuleSpec{Retry: retry, Match: xdsresource.RuleMatch{Prefix: "/"}})},
		&routeSvc{sp: slowOnce, apps: []*app{slowOnceApp}, vhost: vhost(slowOnce, xdsresource.RuleSpec{Retry: &xdsresource.RuleRetry{RetryOn: "5xx", NumRetries: 2, PerTryTimeout: 300 * time.Millisecond}})},
		&routeSvc{sp: slow, apps: []*app{slowApp}, vhost: vhost(slow, xdsresource.RuleSpec{Timeout: durp(300 * time.Millisecond)})},
	)
	rm.waitFor(t, "routes in force", func() bool {
		resp, _ := rm.do(t, "GET", rm.url(flaky, "/"), "X-Req", "warmup-"+strconv.FormatInt(time.Now().UnixNano(), 10))
		return resp.StatusCode == 200 && rm.client.counter(t, "fedmesh_sidecar_retries_total", map[string]string{"reason": "status_5xx"}) > 0
	})
	t.Run("failing backend retried", func(t *testing.T) {
		before := rm.client.counter(t, "fedmesh_sidecar_retries_total", map[string]string{"reason": "status_5xx"})
		for i := 0; i < 5; i++ {
			resp, _ := rm.do(t, "GET", rm.url(flaky, "/"), "X-Req", "flaky-"+strconv.Itoa(i))
			if resp.StatusCode != 200 {
				t.Errorf("request %d: %d, want 200 after a retry", i, resp.StatusCode)
			}
		}
		if got := rm.client.counter(t, "fedmesh_sidecar_retries_total", map[string]string{"reason": "status_5xx"}) - before; got != 5 {
			t.Errorf("%v retries counted, want 5", got)
		}
	})
	t.Run("per-try timeout retried", func(t *testing.T) {
		resp, _ := rm.do(t, "GET", rm.url(slowOnce, "/"), "X-Req", "slow-once")
		if resp.StatusCode != 200 {
			t.Errorf("%d, want 200 from the second attempt", resp.StatusCode)
		}
		if n := rm.client.counter(t, "fedmesh_sidecar_retries_total", map[string]string{"reason": "per_try_timeout"}); n != 1 {
			t.Errorf("%v per-try timeouts counted, want 1", n)
		}
	})
	t.Run("request timeout", func(t *testing.T) {
		resp, _ := rm.do(t, "GET", rm.url(slow, "/"), "X-Req", "slow")
		if resp.StatusCode != 504 || resp.Header.Get("X-Fedmesh-Error") != "timeout" {
			t.Errorf("%d %q, want 504 timeout", resp.StatusCode, resp.Header.Get("X-Fedmesh-Error"))
		}
	})
}

// TestRouteFaults: an HTTP abort on 30% of requests (within a binomial
// bound, marked and counted apart from real errors), a delay fault only
// for requests with a header, and a gRPC abort seen by a real gRPC client.
func TestRouteFaults(t *testing.T) {
	echo, gs := svc("echo", meshtest.FreePort(t)), svc("echo-grpc", meshtest.FreePort(t))
	vh := xdsresource.RuleVirtualHost(echo,
		xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "delay", Match: xdsresource.RuleMatch{Exact: "/delay"}, Backends: []xdsresource.RuleBackend{to(echo, 1)},
			Fault: &xdsresource.RuleFault{Delay: 20 * time.Millisecond, DelayPerMillion: 1_000_000, Headers: []xdsresource.RuleHeader{{Name: "x-fault", Exact: "on"}}}}),
		xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "abort", Backends: []xdsresource.RuleBackend{to(echo, 1)},
			Fault: &xdsresource.RuleFault{AbortHTTP: 503, AbortPerMillion: 300_000}}),
	)
	gvh := xdsresource.RuleVirtualHost(gs, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "grpc-abort", Backends: []xdsresource.RuleBackend{to(gs, 1)},
		Fault: &xdsresource.RuleFault{GRPC: true, AbortGRPC: uint32(codes.Unavailable), AbortPerMillion: 1_000_000}}))
	grpcApp := meshtest.StartGRPC(t)
	rm := newRouteMesh(t,
		&routeSvc{sp: echo, apps: []*app{startApp(t, "echo", nil)}, vhost: vh},
		&routeSvc{sp: gs, grpc: grpcApp.Addr, vhost: gvh})
	rm.waitFor(t, "faults in force", func() bool {
		resp, _ := rm.do(t, "GET", rm.url(echo, "/delay"), "X-Fault", "on")
		return resp.Header.Get("X-Fedmesh-Fault") == "delay"
	})
	t.Run("delay only with the header", func(t *testing.T) {
		resp, s := rm.do(t, "GET", rm.url(echo, "/delay"))
		if resp.StatusCode != 200 || s.App != "echo" || resp.Header.Get("X-Fedmesh-Fault") != "" {
			t.Errorf("without header: %d %q fault %q", resp.StatusCode, s.App, resp.Header.Get("X-Fedmesh-Fault"))
		}
		resp, s = rm.do(t, "GET", rm.url(echo, "/delay"), "X-Fault", "on")
		if resp.StatusCode != 200 || s.App != "echo" || resp.Header.Get("X-Fedmesh-Fault") != "delay" {
			t.Errorf("with header: %d %q fault %q", resp.StatusCode, s.App, resp.Header.Get("X-Fedmesh-Fault"))
		}
	})
	t.Run("abort percentage", func(t *testing.T) {
		const n = 500
		deadline := time.Now().Add(60 * time.Second)
		aborted, ok := 0, 0
		for i := 0; i < n && time.Now().Before(deadline); i++ {
			resp, err := rm.httpC.Get(rm.url(echo, "/x"))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == 503 && resp.Header.Get("X-Fedmesh-Fault") == "abort":
				aborted++
			case resp.StatusCode == 200:
				ok++
			default:
				t.Fatalf("unexpected answer %d %v", resp.StatusCode, resp.Header)
			}
		}
		if aborted+ok != n {
			t.Fatalf("%d answers, want %d", aborted+ok, n)
		}
		if good, msg := binomialOK(aborted, n, 0.3); !good {
			t.Errorf("aborted share: %s", msg)
		} else {
			t.Logf("aborted share: %s", msg)
		}
		if got := rm.client.counter(t, "fedmesh_sidecar_request_errors_total", map[string]string{"reason": "fault_injected"}); int(got) != aborted {
			t.Errorf("fault_injected counted %v, want %d", got, aborted)
		}
		if got := rm.client.counter(t, "fedmesh_sidecar_requests_total", map[string]string{"code": "5xx"}); got != 0 {
			t.Errorf("%v injected aborts counted as real 5xx answers", got)
		}
	})
	t.Run("grpc abort", func(t *testing.T) {
		conn, err := grpc.NewClient("passthrough:///"+rm.client.sc.ServiceAddr(gs.Port),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithAuthority(gs.Host()+":"+strconv.Itoa(int(gs.Port))))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		poll.True(t, 30*time.Second, "service listener", func() bool { return rm.client.sc.ServiceAddr(gs.Port) != "" })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "fault filter abort") {
			t.Errorf("Check() error = %v, want Unavailable from the fault filter", err)
		}
	})
}

// TestRouteRingHashAndRoundRobin: with three endpoints, a ring-hash
// cluster sends every request with one x-user to one endpoint; a
// round-robin cluster takes them in turn.
func TestRouteRingHashAndRoundRobin(t *testing.T) {
	hs, rr := svc("echo-hash", meshtest.FreePort(t)), svc("echo-rr", meshtest.FreePort(t))
	apps := func(prefix string) []*app {
		return []*app{startApp(t, prefix+"-0", nil), startApp(t, prefix+"-1", nil), startApp(t, prefix+"-2", nil)}
	}
	vh := xdsresource.RuleVirtualHost(hs, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "hash", Backends: []xdsresource.RuleBackend{to(hs, 1)},
		Hash: []xdsresource.RuleHash{{Header: "x-user"}}}))
	rm := newRouteMesh(t,
		&routeSvc{sp: hs, apps: apps("hash"), vhost: vh, lb: func(c types.Resource) types.Resource {
			return xdsresource.WithRingHash(c.(*clusterT), 1024, 4096)
		}},
		&routeSvc{sp: rr, apps: apps("rr"), lb: func(c types.Resource) types.Resource {
			return xdsresource.WithRoundRobin(c.(*clusterT))
		}})
	rm.waitFor(t, "every endpoint serves", func() bool {
		seenApps := map[string]bool{}
		for i := 0; i < 30; i++ {
			if _, s := rm.do(t, "GET", rm.url(hs, "/"), "X-User", "u"+strconv.Itoa(i)); s.App != "" {
				seenApps[s.App] = true
			}
		}
		return len(seenApps) == 3
	})
	t.Run("ring hash affinity", func(t *testing.T) {
		owners := map[string]bool{}
		for k := 0; k < 20; k++ {
			user := "user-" + strconv.Itoa(k)
			var first string
			for i := 0; i < 5; i++ {
				resp, s := rm.do(t, "GET", rm.url(hs, "/"), "X-User", user)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d", user, resp.StatusCode)
				}
				if i == 0 {
					first = s.App
				} else if s.App != first {
					t.Errorf("%s went to %s, then to %s", user, first, s.App)
				}
			}
			owners[first] = true
		}
		if len(owners) < 2 {
			t.Errorf("20 keys all went to %v: the ring does not spread", owners)
		}
	})
	t.Run("round robin", func(t *testing.T) {
		count := map[string]int{}
		for i := 0; i < 30; i++ {
			resp, s := rm.do(t, "GET", rm.url(rr, "/"))
			if resp.StatusCode != 200 {
				t.Fatalf("%d", resp.StatusCode)
			}
			count[s.App]++
		}
		for _, a := range []string{"rr-0", "rr-1", "rr-2"} {
			if count[a] != 10 {
				t.Errorf("round robin counts %v, want 10 each", count)
				break
			}
		}
	})
}

type clusterT = clusterv3.Cluster
