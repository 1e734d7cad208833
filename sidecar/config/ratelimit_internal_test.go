package config

import (
	"net/http"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	localrlhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	localrlnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
)

// goodRateLimit is what the control plane renders for one keyed limit
// with conditions and one quota.
func goodRateLimit(t testing.TB) *localrlhttpv3.LocalRateLimit {
	t.Helper()
	f := xdsresource.HTTPLocalRateLimit("inbound|8080||echo", &xdsresource.RateLimit{MaxKeys: 7, Limits: []xdsresource.RateLimitRule{
		{ID: "demo/p/a", Key: xdsresource.KeySourceCluster, Conditions: []xdsresource.RateLimitCondition{
			{Header: ":method", Match: xdsresource.StringMatch{Kind: xdsresource.MatchExact, Value: "GET"}, Invert: true},
			{Header: "x-debug", Present: true},
		}, Bucket: xdsresource.TokenBucket{MaxTokens: 5, TokensPerFill: 2, FillInterval: time.Second}},
		{ID: "demo/p/q", Quota: true, Bucket: xdsresource.TokenBucket{MaxTokens: 9, TokensPerFill: 9, FillInterval: time.Minute}},
	}})
	var c localrlhttpv3.LocalRateLimit
	if err := f.GetTypedConfig().UnmarshalTo(&c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestHTTPRateLimitCompiles(t *testing.T) {
	r, err := httpRateLimit(goodRateLimit(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Limits) != 2 || !r.XRateLimitHeaders || !r.RetryAfter || !r.ResourceExhausted {
		t.Fatalf("rules %+v", r)
	}
	a, q := r.Limits[0], r.Limits[1]
	if a.ID != "demo/p/a" || a.Quota || a.Key != ratelimit.KeyCluster || a.MaxKeys != 7 || len(a.Match) != 2 ||
		a.Bucket != (ratelimit.Bucket{Max: 5, PerFill: 2, Interval: time.Second}) {
		t.Errorf("limit a = %+v", a)
	}
	if q.ID != "demo/p/q" || !q.Quota || q.Key != ratelimit.KeyNone || q.Bucket.Max != 9 {
		t.Errorf("quota = %+v", q)
	}
	// The conditions hold as rendered: not GET, with x-debug.
	req := &ratelimit.Request{Method: "POST", Cluster: "east-1", Headers: map[string][]string{"X-Debug": {"1"}}}
	if !a.Applies(req) {
		t.Error("a POST with x-debug from a known cluster: a does not apply")
	}
	req.Method = "GET"
	if a.Applies(req) {
		t.Error("a GET: a applies")
	}
}

func TestHTTPRateLimitRefusals(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *localrlhttpv3.LocalRateLimit)
		want string
	}{
		{"default bucket", func(c *localrlhttpv3.LocalRateLimit) { c.TokenBucket = c.Descriptors[0].TokenBucket }, "token_bucket"},
		{"half enforced", func(c *localrlhttpv3.LocalRateLimit) { c.FilterEnforced.DefaultValue.Numerator = 50 }, "only 100%"},
		{"another status", func(c *localrlhttpv3.LocalRateLimit) {
			c.Status = &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}
		}, "status"},
		{"zero tokens", func(c *localrlhttpv3.LocalRateLimit) { c.Descriptors[1].TokenBucket.MaxTokens = 0 }, "descriptors[1]: token_bucket: max_tokens 0"},
		{"descriptor without entry", func(c *localrlhttpv3.LocalRateLimit) { c.RateLimits = c.RateLimits[:1] }, "descriptors[1]: no rate_limits entry"},
		{"entry without descriptor", func(c *localrlhttpv3.LocalRateLimit) { c.Descriptors[0].Entries[0].Value = "x" }, "rate_limits[0]: no descriptor"},
		{"first action not a generic key", func(c *localrlhttpv3.LocalRateLimit) {
			c.RateLimits[1].Actions[0] = &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{}}
		}, "rate_limits[1]: actions[0]"},
		{"shadow mode", func(c *localrlhttpv3.LocalRateLimit) { c.Descriptors[1].ShadowMode = true }, "shadow_mode"},
		{"expect no match", func(c *localrlhttpv3.LocalRateLimit) {
			c.RateLimits[0].Actions[1].GetHeaderValueMatch().ExpectMatch = wrapperspb.Bool(false)
		}, "expect_match false"},
		{"bad regex", func(c *localrlhttpv3.LocalRateLimit) {
			hv := c.RateLimits[0].Actions[1].GetHeaderValueMatch()
			hv.Headers[0] = &routev3.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: xdsresource.StringMatcher(xdsresource.StringMatch{Kind: xdsresource.MatchRegex, Value: "("})}}
		}, "headers[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := goodRateLimit(t)
			tt.mod(c)
			_, err := httpRateLimit(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// Envoy's defaults leave the filter off: nothing is limited.
	c := goodRateLimit(t)
	c.FilterEnabled, c.FilterEnforced = nil, nil
	if r, err := httpRateLimit(c); r != nil || err != nil {
		t.Errorf("a disabled filter: %+v, %v; want nil, nil", r, err)
	}
}

// FuzzRateLimit feeds arbitrary bytes as an HTTP and a network local rate
// limit configuration (what a control plane could send) and arbitrary
// requests: compiling fails with an error or gives rules whose buckets
// are valid, and checking a request against them never panics and
// decides consistently.
func FuzzRateLimit(f *testing.F) {
	seed, err := proto.Marshal(goodRateLimit(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, "spiffe://td/ns/a/sa/b", "east-1", "POST", "/api?x=1", "x-debug", "1")
	f.Add([]byte{}, "", "", "GET", "/", "", "")
	f.Fuzz(func(t *testing.T, cfg []byte, principal, cluster, method, path, hname, hval string) {
		req := &ratelimit.Request{Principal: principal, Cluster: cluster, Method: method, Path: path,
			Headers: map[string][]string{http.CanonicalHeaderKey(hname): {hval}}}
		l := ratelimit.New(ratelimit.Config{})
		var hc localrlhttpv3.LocalRateLimit
		if proto.Unmarshal(cfg, &hc) == nil {
			if r, err := httpRateLimit(&hc); err == nil && r != nil {
				for _, lim := range r.Limits {
					if err := lim.Bucket.Validate(); err != nil || lim.ID == "" {
						t.Fatalf("accepted limit %q with bucket %+v: %v", lim.ID, lim.Bucket, err)
					}
				}
				checkDecision(t, l.Check(r, req))
			}
		}
		var nc localrlnetv3.LocalRateLimit
		if proto.Unmarshal(cfg, &nc) == nil {
			if lim, err := connectionLimit(&nc); err == nil {
				if err := lim.Bucket.Validate(); err != nil {
					t.Fatalf("accepted connection limit with bucket %+v: %v", lim.Bucket, err)
				}
				checkDecision(t, l.Check(&ratelimit.Rules{Limits: []ratelimit.Limit{lim}}, req))
			}
		}
	})
}

func checkDecision(t *testing.T, d ratelimit.Decision) {
	t.Helper()
	if !d.Allowed && d.Limit == nil {
		t.Fatal("refused without naming a limit")
	}
	if d.Remaining < 0 || d.Reset < 0 {
		t.Fatalf("remaining %d, reset %v", d.Remaining, d.Reset)
	}
}
