package config_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// BenchmarkRouteMatch is the per-request cost of finding a request's rule
// in a route table of 1, 100 and 1,000 rules where only the last rule
// matches (every rule is tried): rules alternate exact paths, separated
// prefixes with a header match, regular expressions and prefixes with a
// query match, as translated Gateway API routes do.
//
//	go test ./sidecar/config -run XXX -bench RouteMatch
func BenchmarkRouteMatch(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run("rules="+strconv.Itoa(n), func(b *testing.B) {
			to := []xdsresource.RuleBackend{{Cluster: echo.OutboundCluster(), Weight: 1}}
			var routes []*routev3.Route
			for i := 0; i < n-1; i++ {
				is := strconv.Itoa(i)
				var m xdsresource.RuleMatch
				switch i % 4 {
				case 0:
					m = xdsresource.RuleMatch{Exact: "/items/" + is}
				case 1:
					m = xdsresource.RuleMatch{SeparatedPrefix: "/api/v" + is, Headers: []xdsresource.RuleHeader{{Name: "x-user", Exact: "u" + is}}}
				case 2:
					m = xdsresource.RuleMatch{Regex: "/re/" + is + "/[a-z]+"}
				case 3:
					m = xdsresource.RuleMatch{Prefix: "/q", Query: []xdsresource.RuleQuery{{Name: "v", Exact: is}}}
				}
				routes = append(routes, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "r" + is, Match: m, Backends: to}))
			}
			routes = append(routes, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "last", Match: xdsresource.RuleMatch{SeparatedPrefix: "/api", Headers: []xdsresource.RuleHeader{{Name: "x-user", Exact: "beta"}}, Method: "GET"}, Backends: to}))
			bld := config.NewBuilder(td)
			if _, err := bld.Apply(update(xdsclient.ClusterType, "1", meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}))); err != nil {
				b.Fatal(err)
			}
			snap, err := bld.Apply(update(xdsclient.RouteType, "1", xdsresource.RouteConfiguration("8080", []*routev3.VirtualHost{xdsresource.RuleVirtualHost(echo, routes...)})))
			if err != nil {
				b.Fatal(err)
			}
			svc, _ := snap.Lookup("echo.demo", 8080)
			r := httptest.NewRequest(http.MethodGet, "/api/items?q=1", nil)
			r.Header.Set("X-User", "beta")
			b.ReportAllocs()
			for b.Loop() {
				if rule := svc.Routes.Match(r); rule == nil || rule.Name != "last" {
					b.Fatalf("matched %v", rule)
				}
			}
		})
	}
}
