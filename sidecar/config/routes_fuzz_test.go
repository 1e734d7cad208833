package config_test

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// FuzzApplyRoutes feeds arbitrary RouteConfiguration bytes to Apply: it
// either refuses them with ErrInvalid and keeps the last good snapshot,
// or accepts them, and then matching any request never panics.
func FuzzApplyRoutes(f *testing.F) {
	seeds := []*routev3.RouteConfiguration{
		meshtest.Routes(8080, time.Second, 2, echo),
		xdsresource.RouteConfiguration("8080", []*routev3.VirtualHost{xdsresource.RuleVirtualHost(echo,
			xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "a", Match: xdsresource.RuleMatch{Regex: "/v[0-9]+", Headers: []xdsresource.RuleHeader{{Name: "x", Regex: "a.*"}}, Query: []xdsresource.RuleQuery{{Name: "q", Exact: "1"}}, Method: "GET"},
				Backends: []xdsresource.RuleBackend{{Cluster: echo.OutboundCluster(), Weight: 9}, {Cluster: echoV2.OutboundCluster(), Weight: 1}},
				Retry:    &xdsresource.RuleRetry{RetryOn: "5xx,unavailable", NumRetries: 2, PerTryTimeout: time.Second},
				Fault:    &xdsresource.RuleFault{Delay: time.Millisecond, DelayPerMillion: 10, AbortHTTP: 503, AbortPerMillion: 10}}),
			xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "b", Match: xdsresource.RuleMatch{SeparatedPrefix: "/r"}, Redirect: &xdsresource.RuleRedirect{Host: "x", Code: 307}}),
			xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "c", DirectStatus: 404, FullPathRewrite: "/x"}),
		)}),
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "/v1", "x", "abc", "q=1")
	}
	f.Fuzz(func(t *testing.T, data []byte, path, hname, hval, query string) {
		rc := &routev3.RouteConfiguration{}
		if err := proto.Unmarshal(data, rc); err != nil {
			return
		}
		rc.Name = "8080"
		b := config.NewBuilder(td)
		before, err := b.Apply(update(xdsclient.ClusterType, "1", meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}), meshtest.OutboundCluster(echoV2, meshtest.ClusterOpts{HTTP: true})))
		if err != nil {
			t.Fatal(err)
		}
		snap, err := b.Apply(xdsclient.Update{TypeURL: xdsclient.RouteType, Version: "2", Resources: map[string]proto.Message{"8080": rc}})
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			if b.Current() != before {
				t.Fatal("a refused update changed the snapshot")
			}
			return
		}
		r := &http.Request{Method: "GET", URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}, Host: "echo.demo"}
		if hname != "" {
			r.Header[http.CanonicalHeaderKey(hname)] = []string{hval}
		}
		for _, svc := range snap.ClusterList() {
			if svc.Routes == nil {
				continue
			}
			if rule := svc.Routes.Match(r); rule != nil && rule.Kind == config.ActionRoute && rule.Route.TotalWeight > 0 {
				if bk := rule.Route.Pick(rule.Route.TotalWeight - 1); bk == nil || bk.Weight == 0 {
					t.Fatalf("Pick gave %+v", bk)
				}
			}
		}
	})
}

// FuzzRouteMatch compiles a path regex and a header regex from the
// fuzzer and matches fuzzed requests: a pattern is refused with
// ErrInvalid or compiled, and matching never panics; an exact-path rule
// matches exactly its own path.
func FuzzRouteMatch(f *testing.F) {
	f.Add("/v[0-9]+", "b.*", "/v1", "beta", "a=1&b=%zz")
	f.Add("(", ")", "", "", "")
	f.Fuzz(func(t *testing.T, pathRe, headerRe, path, hval, query string) {
		snap, err := routed(t, xdsresource.RuleSpec{Name: "re", Match: xdsresource.RuleMatch{Regex: pathRe, Headers: []xdsresource.RuleHeader{{Name: "x-h", Regex: headerRe}}},
			Backends: []xdsresource.RuleBackend{{Cluster: echo.OutboundCluster(), Weight: 1}}},
			xdsresource.RuleSpec{Name: "exact", Match: xdsresource.RuleMatch{Exact: "/exact"}, Backends: []xdsresource.RuleBackend{{Cluster: echo.OutboundCluster(), Weight: 1}}})
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		svc, _ := snap.Lookup("echo.demo", 8080)
		r := &http.Request{Method: "GET", URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{"X-H": {hval}}}
		got := svc.Routes.Match(r)
		if got != nil && got.Name == "exact" && path != "/exact" {
			t.Fatalf("exact rule took %q", path)
		}
	})
}
