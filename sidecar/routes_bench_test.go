package sidecar_test

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// BenchmarkRoutes is the sidecar pair's maximum rate for HTTP/1.1 GETs to
// a service with the default route ("none") and to one with a 10-rule
// route table in force ("routes10": 9 rules that do not match, tried in
// order, then a path_separated_prefix rule with a header and a method
// match that does, with a request header to set), both in front of the
// same app, from 16 concurrent callers, alternating for three rounds as
// BenchmarkInboundAuthz does:
//
//	go test ./sidecar -run XXX -bench Routes -benchtime 3000x
func BenchmarkRoutes(b *testing.B) {
	p := newPair(b)
	rp := meshtest.FreePort(b)
	hs, rs := svc("echo", p.httpP), svc("echo-routed", rp)
	in := p.server.sc.InboundAddr()
	srv := map[string][]types.Resource{}
	res := meshtest.Inbound(in,
		meshtest.InboundPort{SP: hs, App: p.appAddr, HTTP: true},
		meshtest.InboundPort{SP: rs, App: p.appAddr, HTTP: true})
	rt(srv, ldsT, res[0])
	rt(srv, cdsT, res[1:]...)
	rt(srv, sdsT, p.server.secrets(p.m.ca)...)
	p.m.set("server", srv)
	echoID := p.m.ca.Workload("demo", "echo")
	to := []xdsresource.RuleBackend{{Cluster: rs.OutboundCluster(), Weight: 1}}
	var routes []*routev3.Route
	for i := 0; i < 9; i++ {
		is := strconv.Itoa(i)
		m := xdsresource.RuleMatch{Exact: "/other/" + is}
		switch i % 3 {
		case 1:
			m = xdsresource.RuleMatch{SeparatedPrefix: "/items", Headers: []xdsresource.RuleHeader{{Name: "x-user", Exact: "u" + is}}}
		case 2:
			m = xdsresource.RuleMatch{Regex: "/re/" + is + "/[a-z]+"}
		}
		routes = append(routes, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "demo/r/rule-" + is, Match: m, Backends: to}))
	}
	routes = append(routes, xdsresource.RuleRoute(xdsresource.RuleSpec{Name: "demo/r/rule-9",
		Match:    xdsresource.RuleMatch{SeparatedPrefix: "/items", Headers: []xdsresource.RuleHeader{{Name: "x-user", Exact: "beta"}}, Method: "GET"},
		Backends: to, RequestHeaders: xdsresource.RuleHeaderMods{Set: [][2]string{{"x-route", "9"}}}}))
	rt(p.res, cdsT, meshtest.OutboundCluster(rs, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}}))
	rt(p.res, edsT, meshtest.Assignment(rs, meshtest.Endpoint{Addr: in, Cluster: "east-1", Identity: echoID, Healthy: true}))
	rt(p.res, ldsT, meshtest.OutboundListener(rs, true))
	rt(p.res, rdsT, xdsresource.RouteConfiguration(strconv.Itoa(int(rp)), []*routev3.VirtualHost{xdsresource.RuleVirtualHost(rs, routes...)}))
	p.m.set("client", p.res)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.client.sc.OutboundAddr()}), MaxIdleConnsPerHost: 64}}
	defer c.CloseIdleConnections()
	routedURL := "http://echo-routed.demo.svc.clusterset.local:" + strconv.Itoa(int(rp)) + "/items"
	get := func(u string) (*http.Response, error) {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-User", "beta")
		return c.Do(req)
	}
	poll.True(b, 30*time.Second, "the routed port serves", func() bool {
		resp, err := get(routedURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	cases := []struct{ name, url string }{
		{"none", "http://echo.demo.svc.clusterset.local:" + strconv.Itoa(int(p.httpP)) + "/items"},
		{"routes10", routedURL},
	}
	for round := 0; round < 3; round++ {
		for _, tc := range cases {
			b.Run(tc.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(8) // 16 callers on 2 CPUs
				cpu0 := cpuTime(b)
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := get(tc.url)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
				b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
	if n := p.client.counter(b, "fedmesh_sidecar_request_errors_total", map[string]string{"reason": "no_route_match"}); n != 0 {
		b.Errorf("%v requests matched no rule", n)
	}
}
