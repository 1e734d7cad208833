package sidecar_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// BenchmarkRequest compares one HTTP/1.1 request with a 1 KiB body sent
// directly to the app with the same request through a sidecar pair
// (client app -> sidecar -> HTTP/2 over mTLS -> sidecar -> app). Both
// sidecars run in this process, so allocs/op counts the whole path.
//
// cpu-ns/op is the CPU time the process spent per request (user and
// system, every goroutine): on a machine shared with other work it moves
// far less than ns/op, which includes the time the process waited for a
// CPU.
func BenchmarkRequest(b *testing.B) {
	p := newPair(b)
	body := bytes.Repeat([]byte("x"), 1024)
	run := func(b *testing.B, c *http.Client, u string) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		cpu0 := cpuTime(b)
		for b.Loop() {
			resp, err := c.Post(u, "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n < int64(len(body)) {
				b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
			}
		}
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	}
	b.Run("direct", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		defer c.CloseIdleConnections()
		run(b, c, "http://"+p.appAddr+"/")
	})
	b.Run("sidecar-pair", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.client.sc.OutboundAddr()}), MaxIdleConnsPerHost: 4}}
		defer c.CloseIdleConnections()
		run(b, c, p.url("echo.demo.svc.clusterset.local"))
	})
}

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInboundAuthz is the sidecar pair's maximum rate for HTTP/1.1
// GETs to a service port without an authorization policy ("none") and to
// one with a 10-rule policy ("rbac10": 5 DENY rules that do not match and
// 5 ALLOW rules of which the last matches, so every rule is tried), both
// in front of the same app, from 16 concurrent callers. The two
// alternate for three rounds (none, rbac10, none#01, rbac10#01, ...), so
// that a machine whose load changes meanwhile affects both alike:
//
//	go test ./sidecar -run XXX -bench InboundAuthz -benchtime 3000x
//
// req/s is requests per wall second; cpu-ns/op as in BenchmarkRequest.
func BenchmarkInboundAuthz(b *testing.B) {
	p := newPair(b)
	rp := meshtest.FreePort(b)
	hs, rs := svc("echo", p.httpP), svc("echo-rbac", rp)
	clientID := p.m.ca.Workload("demo", "client")
	deny, allow := meshtest.Policies{}, meshtest.Policies{}
	for i := 0; i < 5; i++ {
		deny[fmt.Sprintf("ns[demo]-policy[deny]-rule[%d]", i)] = meshtest.Policy(
			[]meshtest.Permission{meshtest.AndRules(meshtest.Method("DELETE"), meshtest.Path(meshtest.Prefix(fmt.Sprintf("/admin/%d/", i))))},
			[]meshtest.Principal{meshtest.AnyPrincipal()})
		who := meshtest.PrincipalName(meshtest.Exact(fmt.Sprintf("spiffe://%s/ns/other/sa/caller-%d", td, i)))
		if i == 4 {
			who = meshtest.AndIDs(meshtest.PrincipalName(meshtest.Regex(`spiffe://fed\.test/ns/demo/sa/[^/]+`)), meshtest.PrincipalName(meshtest.Exact(clientID)))
		}
		allow[fmt.Sprintf("ns[demo]-policy[allow]-rule[%d]", i)] = meshtest.Policy(
			[]meshtest.Permission{meshtest.Path(meshtest.Prefix("/")), meshtest.Method("GET")},
			[]meshtest.Principal{who})
	}
	in := p.server.sc.InboundAddr()
	srv := map[string][]types.Resource{}
	res := meshtest.InboundAuthz(in,
		meshtest.AuthzPort{InboundPort: meshtest.InboundPort{SP: hs, App: p.appAddr, HTTP: true}},
		meshtest.AuthzPort{InboundPort: meshtest.InboundPort{SP: rs, App: p.appAddr, HTTP: true}, Authz: &meshtest.Authz{Deny: deny, Allow: allow}})
	rt(srv, ldsT, res[0])
	rt(srv, cdsT, res[1:]...)
	rt(srv, sdsT, p.server.secrets(p.m.ca)...)
	p.m.set("server", srv)
	echoID := p.m.ca.Workload("demo", "echo")
	rt(p.res, cdsT, meshtest.OutboundCluster(rs, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}}))
	rt(p.res, edsT, meshtest.Assignment(rs, meshtest.Endpoint{Addr: in, Cluster: "east-1", Identity: echoID, Healthy: true}))
	rt(p.res, ldsT, meshtest.OutboundListener(rs, true))
	rt(p.res, rdsT, meshtest.Routes(rp, 15*time.Second, 2, rs))
	p.m.set("client", p.res)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: p.client.sc.OutboundAddr()}), MaxIdleConnsPerHost: 64}}
	defer c.CloseIdleConnections()
	rbacURL := "http://echo-rbac.demo.svc.clusterset.local:" + strconv.Itoa(int(rp)) + "/items"
	poll.True(b, 30*time.Second, "the authorized port serves", func() bool {
		code, _, err := get(c, rbacURL)
		return err == nil && code == 200
	})
	cases := []struct{ name, url string }{
		{"none", "http://echo.demo.svc.clusterset.local:" + strconv.Itoa(int(p.httpP)) + "/items"},
		{"rbac10", rbacURL},
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
						resp, err := c.Get(tc.url)
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
	if n := p.server.counter(b, "fedmesh_authz_decisions_total", map[string]string{"decision": "allow"}); n < 1 {
		b.Errorf("no authorization decisions counted on the authorized port")
	}
}
