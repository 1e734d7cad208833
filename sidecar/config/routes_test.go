package config_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

var (
	echo   = naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	echoV2 = naming.ServicePort{Namespace: "demo", Name: "echo-v2", Port: 8080}
)

// routed applies clusters for echo, echo's local subset and echo-v2 and
// a route configuration with one virtual host for echo holding rules.
func routed(t testing.TB, rules ...xdsresource.RuleSpec) (*config.Snapshot, error) {
	t.Helper()
	b := config.NewBuilder(td)
	local := meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true})
	local.Name = echo.LocalCluster()
	if _, err := b.Apply(update(xdsclient.ClusterType, "1",
		meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}),
		local,
		xdsresource.WithRingHash(meshtest.OutboundCluster(echoV2, meshtest.ClusterOpts{HTTP: true}), 64, 4096))); err != nil {
		t.Fatal(err)
	}
	var routes []*routev3.Route
	for _, r := range rules {
		routes = append(routes, xdsresource.RuleRoute(r))
	}
	return b.Apply(update(xdsclient.RouteType, "1", xdsresource.RouteConfiguration("8080", []*routev3.VirtualHost{xdsresource.RuleVirtualHost(echo, routes...)})))
}

func req(method, target string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func dur(d time.Duration) *time.Duration { return &d }

func TestRouteMatch(t *testing.T) {
	to := []xdsresource.RuleBackend{{Cluster: echo.OutboundCluster(), Weight: 1}}
	tests := []struct {
		name  string
		match xdsresource.RuleMatch
		yes   []*http.Request
		no    []*http.Request
	}{
		{name: "prefix", match: xdsresource.RuleMatch{Prefix: "/api"},
			yes: []*http.Request{req("GET", "/api"), req("GET", "/api/x"), req("GET", "/apix")},
			no:  []*http.Request{req("GET", "/"), req("GET", "/API")}},
		{name: "prefix ignoring case", match: xdsresource.RuleMatch{Prefix: "/api", IgnoreCase: true},
			yes: []*http.Request{req("GET", "/API/x")}, no: []*http.Request{req("GET", "/ap")}},
		{name: "path_separated_prefix", match: xdsresource.RuleMatch{SeparatedPrefix: "/foo"},
			yes: []*http.Request{req("GET", "/foo"), req("GET", "/foo/bar"), req("GET", "/foo?x=1")},
			no:  []*http.Request{req("GET", "/foobar"), req("GET", "/fo")}},
		{name: "exact path", match: xdsresource.RuleMatch{Exact: "/exact"},
			yes: []*http.Request{req("GET", "/exact"), req("GET", "/exact?q=1")},
			no:  []*http.Request{req("GET", "/exact/"), req("GET", "/exac")}},
		{name: "regex path matches the whole path", match: xdsresource.RuleMatch{Regex: `/v[0-9]+/items`},
			yes: []*http.Request{req("GET", "/v12/items")},
			no:  []*http.Request{req("GET", "/v12/items/x"), req("GET", "/x/v1/items")}},
		{name: "header exact", match: xdsresource.RuleMatch{Headers: []xdsresource.RuleHeader{{Name: "x-user", Exact: "beta"}}},
			yes: []*http.Request{req("GET", "/", "X-User", "beta")},
			no:  []*http.Request{req("GET", "/", "X-User", "Beta"), req("GET", "/")}},
		{name: "header regex", match: xdsresource.RuleMatch{Headers: []xdsresource.RuleHeader{{Name: "x-user", Regex: "b.*a"}}},
			yes: []*http.Request{req("GET", "/", "x-user", "beta")},
			no:  []*http.Request{req("GET", "/", "x-user", "beta2")}},
		{name: "header present", match: xdsresource.RuleMatch{Headers: []xdsresource.RuleHeader{{Name: "x-canary"}}},
			yes: []*http.Request{req("GET", "/", "x-canary", "")},
			no:  []*http.Request{req("GET", "/")}},
		{name: "header absent", match: xdsresource.RuleMatch{Headers: []xdsresource.RuleHeader{{Name: "x-canary", Absent: true}}},
			yes: []*http.Request{req("GET", "/")},
			no:  []*http.Request{req("GET", "/", "x-canary", "1")}},
		{name: "header inverted", match: xdsresource.RuleMatch{Headers: []xdsresource.RuleHeader{{Name: "x-user", Exact: "beta", Invert: true}}},
			yes: []*http.Request{req("GET", "/", "x-user", "alpha"), req("GET", "/")},
			no:  []*http.Request{req("GET", "/", "x-user", "beta")}},
		{name: "header with two values joined", match: xdsresource.RuleMatch{Headers: []xdsresource.RuleHeader{{Name: "x-v", Exact: "a,b"}}},
			yes: []*http.Request{req("GET", "/", "x-v", "a", "x-v", "b")}},
		{name: "query exact", match: xdsresource.RuleMatch{Query: []xdsresource.RuleQuery{{Name: "v", Exact: "2 x"}}},
			yes: []*http.Request{req("GET", "/?a=1&v=2+x"), req("GET", "/?v=2%20x&v=3")},
			no:  []*http.Request{req("GET", "/?v=3&v=2+x"), req("GET", "/")}},
		{name: "query regex", match: xdsresource.RuleMatch{Query: []xdsresource.RuleQuery{{Name: "v", Regex: "[0-9]+"}}},
			yes: []*http.Request{req("GET", "/?v=42")}, no: []*http.Request{req("GET", "/?v=4a")}},
		{name: "method", match: xdsresource.RuleMatch{Method: "POST"},
			yes: []*http.Request{req("POST", "/")}, no: []*http.Request{req("GET", "/")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := routed(t, xdsresource.RuleSpec{Name: "demo/r/rule-0", Match: tt.match, Backends: to})
			if err != nil {
				t.Fatal(err)
			}
			svc, ok := snap.Lookup("echo.demo", 8080)
			if !ok || svc.Routes == nil {
				t.Fatalf("echo has no compiled routes: %v %+v", ok, svc)
			}
			for _, r := range tt.yes {
				if got := svc.Routes.Match(r); got == nil || got.Name != "demo/r/rule-0" {
					t.Errorf("%s %s %v: no match, want one", r.Method, r.URL, r.Header)
				}
			}
			for _, r := range tt.no {
				if got := svc.Routes.Match(r); got != nil {
					t.Errorf("%s %s %v: matched, want none", r.Method, r.URL, r.Header)
				}
			}
		})
	}
}

func TestRouteFirstMatchWins(t *testing.T) {
	snap, err := routed(t,
		xdsresource.RuleSpec{Name: "a", Match: xdsresource.RuleMatch{Exact: "/x"}, Backends: []xdsresource.RuleBackend{{Cluster: echoV2.OutboundCluster(), Weight: 1}}},
		xdsresource.RuleSpec{Name: "b", Match: xdsresource.RuleMatch{Prefix: "/"}, Backends: []xdsresource.RuleBackend{{Cluster: echo.OutboundCluster(), Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := snap.Lookup("echo.demo.svc.clusterset.local", 8080)
	for path, want := range map[string]string{"/x": "a", "/y": "b", "/x/": "b"} {
		if got := svc.Routes.Match(req("GET", path)); got == nil || got.Name != want {
			t.Errorf("%s took %v, want %s", path, got, want)
		}
	}
}

func TestRouteActions(t *testing.T) {
	snap, err := routed(t, xdsresource.RuleSpec{
		Name: "demo/r/rule-0",
		Backends: []xdsresource.RuleBackend{
			{Cluster: echo.LocalCluster(), Weight: 90, RequestHeaders: xdsresource.RuleHeaderMods{Set: [][2]string{{"x-backend", "local"}}}},
			{Cluster: echoV2.OutboundCluster(), Weight: 10, ResponseHeaders: xdsresource.RuleHeaderMods{Remove: []string{"x-internal"}}},
			{Cluster: config.MissingBackendCluster, Weight: 5},
			{Cluster: echo.OutboundCluster(), Weight: 0},
		},
		Timeout:         dur(0),
		Retry:           &xdsresource.RuleRetry{RetryOn: "5xx,unavailable,retriable-status-codes", NumRetries: 3, PerTryTimeout: 200 * time.Millisecond, BackOffBase: 10 * time.Millisecond, BackOffMax: 50 * time.Millisecond, StatusCodes: []uint32{429}},
		Hash:            []xdsresource.RuleHash{{Header: "x-user", Terminal: true}, {Cookie: "sid"}, {Query: "u"}, {SourceIP: true}},
		PrefixRewrite:   "/v2/",
		HostRewrite:     "echo.example",
		Mirrors:         []xdsresource.RuleMirror{{Cluster: echoV2.OutboundCluster(), PerMillion: 250_000}},
		RequestHeaders:  xdsresource.RuleHeaderMods{Set: [][2]string{{"x-set", "1"}}, Add: [][2]string{{"x-add", "2"}}, Remove: []string{"x-drop"}},
		ResponseHeaders: xdsresource.RuleHeaderMods{Set: [][2]string{{"x-resp", "3"}}},
		Fault:           &xdsresource.RuleFault{Delay: time.Second, DelayPerMillion: 500_000, GRPC: true, AbortGRPC: 14, AbortPerMillion: 100_000, Headers: []xdsresource.RuleHeader{{Name: "x-fault", Exact: "on"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := snap.Lookup("echo.demo", 8080)
	rule := svc.Routes.Rules[0]
	v2, _ := snap.Cluster(echoV2.OutboundCluster())
	local, _ := snap.Cluster(echo.LocalCluster())
	if local == nil || local.Subset != naming.SubsetLocal || local == svc {
		t.Fatalf("local subset cluster = %+v, want its own service", local)
	}
	if v2.LB != config.RingHash || v2.MinRingSize != 64 || v2.MaxRingSize != 4096 {
		t.Errorf("echo-v2 lb = %s %d..%d, want ring_hash 64..4096", v2.LB, v2.MinRingSize, v2.MaxRingSize)
	}
	a := rule.Route
	type backend struct {
		Cluster string
		Weight  uint32
		Found   bool
		Req     config.HeaderMods
		Resp    config.HeaderMods
	}
	var gotB []backend
	for _, b := range a.Backends {
		gotB = append(gotB, backend{b.Cluster, b.Weight, b.Service != nil, b.RequestHeaders, b.ResponseHeaders})
	}
	wantB := []backend{
		{echo.LocalCluster(), 90, true, config.HeaderMods{Set: []config.Header{{Name: "X-Backend", Value: "local"}}}, config.HeaderMods{}},
		{echoV2.OutboundCluster(), 10, true, config.HeaderMods{}, config.HeaderMods{Remove: []string{"X-Internal"}}},
		{config.MissingBackendCluster, 5, false, config.HeaderMods{}, config.HeaderMods{}},
	}
	if diff := cmp.Diff(wantB, gotB); diff != "" {
		t.Errorf("backends (-want +got):\n%s", diff)
	}
	if a.TotalWeight != 105 || a.Backends[0].Service != local {
		t.Errorf("total weight %d, first backend %p, want 105 and %p", a.TotalWeight, a.Backends[0].Service, local)
	}
	wantRetry := config.RetryPolicy{Retries: 3, On5xx: true, OnConnectFailure: true, StatusCodes: []int{429}, HostAttempts: 3,
		GRPCCodes: 1 << 14, PerTryTimeout: 200 * time.Millisecond, BackOffBase: 10 * time.Millisecond, BackOffMax: 50 * time.Millisecond}
	if diff := cmp.Diff(wantRetry, a.Retry); diff != "" {
		t.Errorf("retry (-want +got):\n%s", diff)
	}
	if a.Timeout != 0 {
		t.Errorf("timeout %v, want 0 (none)", a.Timeout)
	}
	wantHash := []config.HashPolicy{{Kind: config.HashHeader, Name: "X-User", Terminal: true}, {Kind: config.HashCookie, Name: "sid"}, {Kind: config.HashQuery, Name: "u"}, {Kind: config.HashSourceIP}}
	if diff := cmp.Diff(wantHash, a.Hash); diff != "" {
		t.Errorf("hash (-want +got):\n%s", diff)
	}
	if a.PrefixRewrite != "/v2/" || a.HostRewrite != "echo.example" {
		t.Errorf("rewrites %q %q", a.PrefixRewrite, a.HostRewrite)
	}
	if len(a.Mirrors) != 1 || a.Mirrors[0].Service != v2 || a.Mirrors[0].PerMillion != 250_000 {
		t.Errorf("mirrors %+v", a.Mirrors)
	}
	wantReq := config.HeaderMods{Set: []config.Header{{Name: "X-Set", Value: "1"}}, Add: []config.Header{{Name: "X-Add", Value: "2"}}, Remove: []string{"X-Drop"}}
	if diff := cmp.Diff(wantReq, rule.RequestHeaders); diff != "" {
		t.Errorf("request headers (-want +got):\n%s", diff)
	}
	h := http.Header{"X-Drop": {"x"}, "X-Add": {"1"}, "X-Set": {"0", "0"}}
	rule.RequestHeaders.Apply(h)
	if diff := cmp.Diff(http.Header{"X-Add": {"1", "2"}, "X-Set": {"1"}}, h); diff != "" {
		t.Errorf("applied request headers (-want +got):\n%s", diff)
	}
	f := rule.Fault
	if f == nil || f.Delay != time.Second || f.DelayPerMillion != 500_000 || f.AbortGRPC != 14 || f.AbortHTTP != 0 || f.AbortPerMillion != 100_000 || len(f.Headers) != 1 {
		t.Errorf("fault %+v", f)
	}
	if !config.MatchHeaders(f.Headers, req("GET", "/", "x-fault", "on")) || config.MatchHeaders(f.Headers, req("GET", "/")) {
		t.Error("fault header match is wrong")
	}
}

func TestRouteRedirectDirectAndRegexRewrite(t *testing.T) {
	snap, err := routed(t,
		xdsresource.RuleSpec{Name: "redirect", Match: xdsresource.RuleMatch{Prefix: "/old"}, Redirect: &xdsresource.RuleRedirect{Scheme: "https", Host: "new.example", Port: 8443, PrefixRewrite: "/new", Code: 302}},
		xdsresource.RuleSpec{Name: "direct", Match: xdsresource.RuleMatch{Exact: "/teapot"}, DirectStatus: 418, DirectBody: "short and stout"},
		xdsresource.RuleSpec{Name: "rewrite", FullPathRewrite: "/fixed", Backends: []xdsresource.RuleBackend{{Cluster: echo.OutboundCluster(), Weight: 1}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := snap.Lookup("echo.demo", 8080)
	rs := svc.Routes.Rules
	if diff := cmp.Diff(&config.Redirect{Scheme: "https", Host: "new.example", Port: 8443, PrefixRewrite: "/new", HasPrefix: true, Code: 302}, rs[0].Redirect); diff != "" || rs[0].Kind != config.ActionRedirect {
		t.Errorf("redirect (-want +got):\n%s", diff)
	}
	if rs[1].Kind != config.ActionDirect || rs[1].Direct.Status != 418 || rs[1].Direct.Body != "short and stout" {
		t.Errorf("direct %+v", rs[1].Direct)
	}
	if a := rs[2].Route; a.RegexRewrite == nil || a.RegexRewrite.ReplaceAllString("/any/path", a.RegexSubstitution) != "/fixed" {
		t.Errorf("regex rewrite %v %q", a.RegexRewrite, a.RegexSubstitution)
	}
	if rs[2].Route.Timeout != config.DefaultTimeout {
		t.Errorf("a route without timeout has %v, want Envoy's default %v", rs[2].Route.Timeout, config.DefaultTimeout)
	}
}

func TestDefaultRouteKeepsFastPath(t *testing.T) {
	b := config.NewBuilder(td)
	if _, err := b.Apply(update(xdsclient.ClusterType, "1", meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}))); err != nil {
		t.Fatal(err)
	}
	snap, err := b.Apply(update(xdsclient.RouteType, "1", meshtest.Routes(8080, 3*time.Second, 2, echo)))
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := snap.Lookup("echo.demo", 8080)
	if svc.Routes != nil || svc.Timeout != 3*time.Second || svc.Retry.Retries != 2 {
		t.Errorf("default route: routes %v, timeout %v, retries %d; want nil, 3s, 2", svc.Routes, svc.Timeout, svc.Retry.Retries)
	}
}

func TestRouteRejectsAndKeepsLastGood(t *testing.T) {
	to := []xdsresource.RuleBackend{{Cluster: echo.OutboundCluster(), Weight: 1}}
	tests := []struct {
		name string
		rule xdsresource.RuleSpec
		want string
	}{
		{"bad path regex", xdsresource.RuleSpec{Name: "demo/r/rule-0", Match: xdsresource.RuleMatch{Regex: "(["}, Backends: to}, `route "demo/r/rule-0": match: safe_regex`},
		{"bad header regex", xdsresource.RuleSpec{Name: "r", Match: xdsresource.RuleMatch{Headers: []xdsresource.RuleHeader{{Name: "x", Regex: "a)"}}}, Backends: to}, `header "x"`},
		{"bad query regex", xdsresource.RuleSpec{Name: "r", Match: xdsresource.RuleMatch{Query: []xdsresource.RuleQuery{{Name: "q", Regex: "*"}}}, Backends: to}, `query parameter "q"`},
		{"all weights zero", xdsresource.RuleSpec{Name: "r", Backends: []xdsresource.RuleBackend{{Cluster: "a", Weight: 0}, {Cluster: "b", Weight: 0}}}, "no cluster has a weight above 0"},
		{"fault status", xdsresource.RuleSpec{Name: "r", Backends: to, Fault: &xdsresource.RuleFault{AbortHTTP: 99, AbortPerMillion: 1}}, "http_status 99"},
		{"fault grpc status", xdsresource.RuleSpec{Name: "r", Backends: to, Fault: &xdsresource.RuleFault{GRPC: true, AbortGRPC: 17}}, "grpc_status 17"},
		{"direct status", xdsresource.RuleSpec{Name: "r", DirectStatus: 42}, "status 42"},
		{"header value with newline", xdsresource.RuleSpec{Name: "r", Backends: to, RequestHeaders: xdsresource.RuleHeaderMods{Set: [][2]string{{"x", "a\r\nb: c"}}}}, "CR, LF"},
		{"set host header", xdsresource.RuleSpec{Name: "r", Backends: to, RequestHeaders: xdsresource.RuleHeaderMods{Set: [][2]string{{"Host", "x"}}}}, `cannot set header "Host"`},
		{"retriable status", xdsresource.RuleSpec{Name: "r", Backends: to, Retry: &xdsresource.RuleRetry{RetryOn: "retriable-status-codes", NumRetries: 1, StatusCodes: []uint32{7}}}, "7 is not an HTTP status"},
		{"back-off max below base", xdsresource.RuleSpec{Name: "r", Backends: to, Retry: &xdsresource.RuleRetry{NumRetries: 1, BackOffBase: time.Second, BackOffMax: time.Millisecond}}, "max_interval"},
		{"bad host rewrite", xdsresource.RuleSpec{Name: "r", Backends: to, HostRewrite: "a b"}, "host_rewrite_literal"},
		{"long regex", xdsresource.RuleSpec{Name: "r", Match: xdsresource.RuleMatch{Regex: strings.Repeat("a", 5000)}, Backends: to}, "longer than 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := config.NewBuilder(td)
			if _, err := b.Apply(update(xdsclient.ClusterType, "1", meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}))); err != nil {
				t.Fatal(err)
			}
			before, err := b.Apply(update(xdsclient.RouteType, "1", meshtest.Routes(8080, time.Second, 1, echo)))
			if err != nil {
				t.Fatal(err)
			}
			vh := xdsresource.RuleVirtualHost(echo, xdsresource.RuleRoute(tt.rule))
			_, err = b.Apply(update(xdsclient.RouteType, "2", xdsresource.RouteConfiguration("8080", []*routev3.VirtualHost{vh})))
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `route configuration "8080"`) {
				t.Fatalf("Apply() error = %v, want ErrInvalid naming the route configuration and containing %q", err, tt.want)
			}
			if b.Current() != before {
				t.Error("a rejected update changed the current snapshot")
			}
		})
	}
}

func TestClusterPolicies(t *testing.T) {
	tests := []struct {
		name    string
		cluster func() any
		want    string // LB, or error text
		idle    time.Duration
	}{
		{name: "least request", cluster: func() any { return meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}) }, want: "least_request"},
		{name: "round robin", cluster: func() any {
			return xdsresource.WithRoundRobin(meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}))
		}, want: "round_robin"},
		{name: "ring hash with idle timeout", cluster: func() any {
			return xdsresource.WithIdleTimeout(xdsresource.WithRingHash(meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}), 8, 16), 7*time.Second)
		}, want: "ring_hash", idle: 7 * time.Second},
		{name: "ring too big", cluster: func() any {
			return xdsresource.WithRingHash(meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}), 8, 1<<30)
		}, want: "ring sizes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := config.NewBuilder(td)
			snap, err := b.Apply(update(xdsclient.ClusterType, "1", tt.cluster().(interface{ GetName() string }).(xdsresourceResource)))
			if err != nil {
				if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want one containing %q", err, tt.want)
				}
				return
			}
			svc, _ := snap.Cluster(echo.OutboundCluster())
			if string(svc.LB) != tt.want || svc.IdleTimeout != tt.idle {
				t.Errorf("lb %s idle %v, want %s %v", svc.LB, svc.IdleTimeout, tt.want, tt.idle)
			}
		})
	}
}

type xdsresourceResource = xdsresource.Resource
