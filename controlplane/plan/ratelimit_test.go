package plan

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// rlPolicy parses a RateLimitPolicy document, which must be valid.
func rlPolicy(t *testing.T, doc string) policy.RateLimitPolicy {
	t.Helper()
	obj, err := policy.ParseObject([]byte(doc))
	if err != nil {
		t.Fatalf("test policy: %v", err)
	}
	return *obj.(*policy.RateLimitPolicy)
}

const rlEcho = `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: limits, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  local:
  - {name: all, requests: 100, interval: 1s}
  - name: writes
    match: {methods: [POST, PUT], notPaths: ["/health*"], headers: [{name: X-Tenant, values: ["blue*"]}, {name: X-Debug}]}
    key: {type: Header, header: X-Tenant}
    requests: 5
    interval: 1m
    burst: 10
  - {name: elsewhere, match: {ports: [9999]}, requests: 1, interval: 1s}
  - {name: per-ns, key: {type: SourceNamespace}, match: {grpc: {service: demo.Echo}}, requests: 7, interval: 1s}
  quotas:
  - {name: batch, principals: ["spiffe://fedmesh.local/ns/batch/*", "spiffe://fedmesh.local/ns/etl/sa/x"], requests: 600, interval: 1m}
  tcp: {connectionsPerSecond: 3}
`

func TestRateLimit(t *testing.T) {
	store5432 := naming.ServicePort{Namespace: "demo", Name: "store", Port: 5432}
	quota := RateLimitRule{
		ID: "demo/limits/batch", Quota: true,
		Conditions: []RateLimitCondition{{Header: ClientIDHeader, Match: StringMatch{Kind: MatchRegex, Value: `(spiffe://fedmesh\.local/ns/batch/.*|spiffe://fedmesh\.local/ns/etl/sa/x)`}}},
		// 600 a minute over the three clusters that serve echo.
		MaxTokens: 200, TokensPerFill: 200, FillInterval: time.Minute, ShareDefault: true,
	}
	echoLimits := []RateLimitRule{
		{ID: "demo/limits/all", MaxTokens: 100, TokensPerFill: 100, FillInterval: time.Second},
		{
			ID: "demo/limits/writes", Key: KeyHeader, Header: "x-tenant",
			Conditions: []RateLimitCondition{
				{Header: ":method", Match: StringMatch{Kind: MatchRegex, Value: "(POST|PUT)"}},
				{Header: ":path", Match: StringMatch{Kind: MatchRegex, Value: `(/health.*)(\?.*)?`}, Invert: true},
				{Header: "x-tenant", Match: StringMatch{Kind: MatchPrefix, Value: "blue"}},
				{Header: "x-debug", Present: true},
			},
			MaxTokens: 10, TokensPerFill: 5, FillInterval: time.Minute,
		},
		{
			ID: "demo/limits/per-ns", Key: KeySourceNamespace,
			Conditions: []RateLimitCondition{{Header: ":path", Match: StringMatch{Kind: MatchPrefix, Value: "/demo.Echo/"}}},
			MaxTokens:  7, TokensPerFill: 7, FillInterval: time.Second,
		},
		quota,
	}
	split := func(id, node string) (QuotaShare, bool) {
		if id == "demo/limits/batch" && node == "sidecar-1" {
			return QuotaShare{Requests: 450, Interval: time.Minute}, true
		}
		return QuotaShare{}, false
	}
	splitQuota := quota
	splitQuota.MaxTokens, splitQuota.TokensPerFill, splitQuota.ShareDefault = 450, 450, false
	tests := []struct {
		name   string
		doc    string
		shares QuotaShares
		sp     naming.ServicePort
		http   bool
		node   string
		want   *RateLimit
	}{
		{name: "HTTP port: local limits and the default quota share", doc: rlEcho, sp: echo8080, http: true, want: &RateLimit{Limits: echoLimits}},
		{name: "the split's share for this node", doc: rlEcho, shares: split, sp: echo8080, http: true, node: "sidecar-1",
			want: &RateLimit{Limits: append(echoLimits[:3:3], splitQuota)}},
		{name: "no share for another node: the default", doc: rlEcho, shares: split, sp: echo8080, http: true, node: "sidecar-2", want: &RateLimit{Limits: echoLimits}},
		{name: "another service of the namespace: not targeted", doc: rlEcho, sp: store5432, want: nil},
		{name: "TCP port of the whole namespace: connections only", doc: rlEcho, sp: echo8080, http: false,
			want: &RateLimit{Connections: []ConnectionLimit{{ID: "demo/limits:tcp", MaxTokens: 3, TokensPerFill: 3, FillInterval: time.Second}}}},
		{name: "a policy of another namespace", doc: `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: x, namespace: other}
spec: {local: [{name: a, requests: 1, interval: 1s}]}
`, sp: echo8080, http: true, want: nil},
		{name: "TCP limit on other ports", doc: `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: x, namespace: demo}
spec: {tcp: {ports: [1234], connectionsPerSecond: 1}}
`, sp: store5432, want: nil},
		{name: "whole namespace, TCP port with burst", doc: `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: x, namespace: demo}
spec: {tcp: {ports: [5432], connectionsPerSecond: 2, burst: 9}, local: [{name: a, requests: 1, interval: 1s}]}
`, sp: store5432, want: &RateLimit{Connections: []ConnectionLimit{{ID: "demo/x:tcp", MaxTokens: 9, TokensPerFill: 2, FillInterval: time.Second}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(testTD, topology.Policy{}, testView("west-1")).
				WithTraffic(policy.Traffic{RateLimits: []policy.RateLimitPolicy{rlPolicy(t, tt.doc)}}).
				WithRateLimitInput(RateLimitInput{QuotaShares: tt.shares})
			got := p.RateLimit(tt.sp, tt.http, tt.node)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("RateLimit (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultQuotaShare(t *testing.T) {
	q := policy.Quota{Requests: 10}
	q.Interval.Duration = time.Minute
	for _, tt := range []struct {
		clusters int
		want     int64
	}{{0, 10}, {1, 10}, {3, 3}, {10, 1}, {50, 1}} {
		if got := DefaultQuotaShare(q, tt.clusters); got.Requests != tt.want || got.Interval != time.Minute {
			t.Errorf("%d clusters: %+v, want %d a minute", tt.clusters, got, tt.want)
		}
	}
}

// TestInboundRateLimit: the inbound chains carry their rate limits and
// the node's quota share.
func TestInboundRateLimit(t *testing.T) {
	v := testView("west-1")
	v.Services[0].Endpoints[3].Workload = "echo"
	var asked []string
	p := New(testTD, topology.Policy{}, v).
		WithTraffic(policy.Traffic{RateLimits: []policy.RateLimitPolicy{rlPolicy(t, rlEcho)}}).
		WithRateLimitInput(RateLimitInput{QuotaShares: func(id, node string) (QuotaShare, bool) {
			asked = append(asked, id+"@"+node)
			return QuotaShare{Requests: 42, Interval: time.Second}, true
		}})
	in := p.InboundNode("demo", "echo", "node-a", func(catalog.Port) int32 { return 9080 })
	rl := in.Listeners[0].Chains[0].RateLimit
	if rl == nil || len(rl.Limits) != 4 || rl.Limits[3].MaxTokens != 42 || rl.Limits[3].FillInterval != time.Second {
		t.Fatalf("chain rate limit = %+v, want 4 limits, the quota at 42/s", rl)
	}
	if diff := cmp.Diff([]string{"demo/limits/batch@node-a"}, asked); diff != "" {
		t.Errorf("QuotaShares calls (-want +got):\n%s", diff)
	}
	if rl := New(testTD, topology.Policy{}, v).Inbound("demo", "echo", func(catalog.Port) int32 { return 9080 }).Listeners[0].Chains[0].RateLimit; rl != nil {
		t.Errorf("without policies: %+v, want nil", rl)
	}
}
