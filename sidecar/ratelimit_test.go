package sidecar_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	mt "github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
)

// The server sidecar enforces the local rate limit filters of its
// inbound chains as Envoy's do
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/local_rate_limit_filter,
// https://www.envoyproxy.io/docs/envoy/latest/configuration/listeners/network_filters/local_rate_limit_filter):
// 429 (or RESOURCE_EXHAUSTED for gRPC) once a bucket is empty, keyed
// buckets per caller, new TCP connections closed over their rate. Buckets
// refill once a minute here, so no refill happens during a test.

// perMinute is a bucket of n tokens refilled once a minute.
func perMinute(n uint32) xdsresource.TokenBucket {
	return xdsresource.TokenBucket{MaxTokens: n, TokensPerFill: n, FillInterval: time.Minute}
}

// setLimits publishes the server's inbound side of the authz mesh with
// rate limits on its HTTP, gRPC and TCP ports (no authorization), and
// waits until the server's sidecar has them.
func (a *authzMesh) setLimits(t *testing.T, httpRL, grpcRL, tcpRL *xdsresource.RateLimit) {
	t.Helper()
	ports := a.inboundPorts()
	ports[0].RateLimit, ports[1].RateLimit, ports[2].RateLimit = httpRL, grpcRL, tcpRL
	a.publishServer(mt.InboundAuthz(a.server.sc.InboundAddr(), ports[:]...))
	poll.True(t, 30*time.Second, "limits in force", func() bool {
		n := 0
		for _, in := range a.server.sc.Proxy().Snapshot().Inbound {
			for _, p := range in.Ports {
				if p.RateLimit != nil || p.ConnectionLimit != nil {
					n++
				}
			}
		}
		return n == 3
	})
	for _, w := range []*workload{a.server, a.client, a.frontend} {
		w.ready(t)
	}
}

func TestRateLimit(t *testing.T) {
	a := newAuthzMesh(t)
	httpRL := &xdsresource.RateLimit{MaxKeys: 16, Limits: []xdsresource.RateLimitRule{
		// Three requests a minute per caller, for paths under /api.
		{ID: "demo/limits/per-caller", Key: xdsresource.KeyPrincipal, Bucket: perMinute(3),
			Conditions: []xdsresource.RateLimitCondition{{Header: ":path", Match: xdsresource.StringMatch{Kind: xdsresource.MatchPrefix, Value: "/api/"}}}},
		// The quota's share: five a minute for everyone, /quota only.
		{ID: "demo/limits/shared", Quota: true, Bucket: perMinute(5),
			Conditions: []xdsresource.RateLimitCondition{{Header: ":path", Match: xdsresource.StringMatch{Kind: xdsresource.MatchExact, Value: "/quota"}}}},
	}}
	grpcRL := &xdsresource.RateLimit{Limits: []xdsresource.RateLimitRule{{ID: "demo/limits/grpc", Bucket: perMinute(1)}}}
	tcpRL := &xdsresource.RateLimit{Connections: []xdsresource.ConnectionLimit{{ID: "demo/limits:tcp", Bucket: perMinute(2)}}}
	a.setLimits(t, httpRL, grpcRL, tcpRL)
	client, frontend := proxyClient(a.client), proxyClient(a.frontend)

	get := func(c *http.Client, path string) *http.Response {
		t.Helper()
		resp, err := c.Get(a.url(path))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Header.Set("X-Test-Body", string(body))
		return resp
	}

	t.Run("429 with headers, keyed per caller", func(t *testing.T) {
		var codes []int
		for range 4 {
			codes = append(codes, get(client, "/api/x").StatusCode)
		}
		if want := []int{200, 200, 200, 429}; !slices.Equal(codes, want) {
			t.Fatalf("client's four requests: %v, want %v", codes, want)
		}
		resp := get(client, "/api/x?page=2")
		h := resp.Header
		if resp.StatusCode != http.StatusTooManyRequests || h.Get("X-Test-Body") != "local_rate_limited" {
			t.Errorf("refusal: %d %q, want 429 local_rate_limited", resp.StatusCode, h.Get("X-Test-Body"))
		}
		if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Errorf("Retry-After %q, want 1-60 seconds", h.Get("Retry-After"))
		}
		if got, want := h.Get("RateLimit-Policy"), `"demo/limits/per-caller";q=3;w=60`; got != want {
			t.Errorf("RateLimit-Policy %q, want %q", got, want)
		}
		if got := h.Get("RateLimit"); !strings.HasPrefix(got, `"demo/limits/per-caller";r=0;t=`) {
			t.Errorf("RateLimit %q, want the per-caller limit with r=0", got)
		}
		// Another caller has its own bucket: the client's burst does not
		// starve it.
		for i := range 3 {
			if resp := get(frontend, "/api/x"); resp.StatusCode != 200 {
				t.Fatalf("frontend's request %d: %d, want 200", i, resp.StatusCode)
			}
		}
		if resp := get(frontend, "/api/x"); resp.StatusCode != 429 {
			t.Errorf("frontend's fourth request: %d, want 429", resp.StatusCode)
		}
		// A path no limit matches is not limited.
		if resp := get(client, "/other"); resp.StatusCode != 200 {
			t.Errorf("GET /other: %d, want 200", resp.StatusCode)
		}
		if got := a.server.counter(t, "fedmesh_ratelimit_requests_total", map[string]string{"limit": "demo/limits/per-caller", "decision": "refused"}); got != 3 {
			t.Errorf("refused by per-caller: %v, want 3", got)
		}
		if got := a.server.counter(t, "fedmesh_ratelimit_requests_total", map[string]string{"limit": "demo/limits/per-caller", "decision": "admitted"}); got != 6 {
			t.Errorf("admitted by per-caller: %v, want 6", got)
		}
		if got := a.server.counter(t, "fedmesh_requests_total", map[string]string{"reporter": "destination", "response_flags": "RL", "response_code": "429"}); got != 3 {
			t.Errorf("fedmesh_requests_total{response_flags=RL}: %v, want 3", got)
		}
	})

	t.Run("a CONNECT tunnel cannot pass the limits", func(t *testing.T) {
		// An opaque tunnel to a rate-limited HTTP port is read as HTTP
		// by the server sidecar, as with request-level authorization:
		// what comes through it is never spliced to the app unchecked.
		target := "echo.demo:" + strconv.Itoa(int(a.httpP))
		conn, br := tunnel(t, a.client, target)
		defer conn.Close()
		io.WriteString(conn, "GET /api/x HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
		if resp, err := http.ReadResponse(br, nil); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("request in the tunnel: %d, want 429 or no answer", resp.StatusCode)
			}
		}
	})

	t.Run("quota demand", func(t *testing.T) {
		var codes []int
		for i := range 7 {
			c := client
			if i%2 == 1 {
				c = frontend
			}
			codes = append(codes, get(c, "/quota").StatusCode)
		}
		if want := []int{200, 200, 200, 200, 200, 429, 429}; !slices.Equal(codes, want) {
			t.Fatalf("seven requests to /quota: %v, want %v", codes, want)
		}
		want := []ratelimit.QuotaDemand{{Quota: "demo/limits/shared", Admitted: 5, Refused: 2}}
		if got := a.server.sc.QuotaDemand(); len(got) != 1 || got[0] != want[0] {
			t.Errorf("QuotaDemand() = %+v, want %+v", got, want)
		}
	})

	t.Run("grpc gets RESOURCE_EXHAUSTED", func(t *testing.T) {
		poll.True(t, 30*time.Second, "grpc listener", func() bool { return a.client.sc.ServiceAddr(a.grpcP) != "" })
		conn := grpcConn(t, a.client, a.grpcP)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		hc := healthpb.NewHealthClient(conn)
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"}); err != nil {
			t.Fatalf("first call: %v", err)
		}
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
		if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted || st.Message() != "local_rate_limited" {
			t.Errorf("second call: %v %q, want ResourceExhausted local_rate_limited", st.Code(), st.Message())
		}
	})

	t.Run("tcp connections over the rate are closed", func(t *testing.T) {
		var got []bool
		for range 3 {
			conn, br := tunnel(t, a.frontend, "echo-tcp.demo:"+strconv.Itoa(int(a.tcpP)))
			io.WriteString(conn, "ping\n")
			line, err := br.ReadString('\n')
			got = append(got, err == nil && line == "ping\n")
			conn.Close()
		}
		if want := []bool{true, true, false}; !slices.Equal(got, want) {
			t.Errorf("three connections echoed: %v, want %v", got, want)
		}
		poll.True(t, 30*time.Second, "tcp refusal counted", func() bool {
			return a.server.counter(t, "fedmesh_ratelimit_requests_total", map[string]string{"limit": "demo/limits:tcp", "decision": "refused"}) == 1
		})
	})
}
