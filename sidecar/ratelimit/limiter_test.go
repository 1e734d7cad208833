package ratelimit_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
)

// clock is an injected clock that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func newLimiter() (*ratelimit.Limiter, *clock) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	return ratelimit.New(ratelimit.Config{Now: c.Now}), c
}

// outcomes checks n requests and returns "+" for each admitted and "-"
// for each refused one.
func outcomes(l *ratelimit.Limiter, rules *ratelimit.Rules, r *ratelimit.Request, n int) string {
	s := ""
	for range n {
		if l.Check(rules, r).Allowed {
			s += "+"
		} else {
			s += "-"
		}
	}
	return s
}

func TestBucketRefillAndBurst(t *testing.T) {
	// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/local_rate_limit_filter:
	// the bucket starts full with max_tokens; tokens_per_fill are added
	// every fill_interval, never beyond max_tokens.
	l, c := newLimiter()
	rules := &ratelimit.Rules{Limits: []ratelimit.Limit{{ID: "ns/p/a", Bucket: ratelimit.Bucket{Max: 5, PerFill: 2, Interval: time.Second}}}}
	req := &ratelimit.Request{Method: "GET", Path: "/"}
	if got, want := outcomes(l, rules, req, 7), "+++++--"; got != want {
		t.Fatalf("full bucket: got %s, want %s", got, want)
	}
	c.Advance(999 * time.Millisecond)
	if got, want := outcomes(l, rules, req, 1), "-"; got != want {
		t.Fatalf("before the first fill: got %s, want %s", got, want)
	}
	c.Advance(time.Millisecond)
	if got, want := outcomes(l, rules, req, 3), "++-"; got != want {
		t.Fatalf("after one fill: got %s, want %s", got, want)
	}
	c.Advance(10 * time.Second) // ten fills, capped at the burst
	if got, want := outcomes(l, rules, req, 6), "+++++-"; got != want {
		t.Fatalf("after a long pause: got %s, want %s", got, want)
	}
	d := l.Check(rules, req)
	if d.Allowed || d.Limit == nil || d.Limit.ID != "ns/p/a" || d.Reset != time.Second {
		t.Fatalf("refusal: got %+v, want refused by ns/p/a with reset 1s", d)
	}
	c.Advance(300 * time.Millisecond)
	if d := l.Check(rules, req); d.Reset != 700*time.Millisecond {
		t.Fatalf("reset after 300ms: got %v, want 700ms", d.Reset)
	}
	want := []ratelimit.Count{{Limit: "ns/p/a", Admitted: 12, Refused: 7}}
	if diff := cmp.Diff(want, l.Counts()); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
}

func TestBucketKeepsTokensAcrossChanges(t *testing.T) {
	l, c := newLimiter()
	req := &ratelimit.Request{}
	big := &ratelimit.Rules{Limits: []ratelimit.Limit{{ID: "ns/p/q", Quota: true, Bucket: ratelimit.Bucket{Max: 10, PerFill: 10, Interval: time.Minute}}}}
	if got := outcomes(l, big, req, 4); got != "++++" {
		t.Fatalf("got %s", got)
	}
	// A new share: the bucket keeps its 6 tokens, clamped to the new
	// size, and is not refilled by the change.
	small := &ratelimit.Rules{Limits: []ratelimit.Limit{{ID: "ns/p/q", Quota: true, Bucket: ratelimit.Bucket{Max: 3, PerFill: 3, Interval: time.Minute}}}}
	if got, want := outcomes(l, small, req, 4), "+++-"; got != want {
		t.Fatalf("after shrinking: got %s, want %s", got, want)
	}
	c.Advance(time.Minute)
	if got, want := outcomes(l, big, req, 11), "++++++++++-"; got != want {
		t.Fatalf("after growing and a fill: got %s, want %s", got, want)
	}
	want := []ratelimit.QuotaDemand{{Quota: "ns/p/q", Admitted: 17, Refused: 2}}
	if diff := cmp.Diff(want, l.QuotaDemand()); diff != "" {
		t.Fatalf("quota demand (-want +got):\n%s", diff)
	}
}

func TestQuotaDemandDeclared(t *testing.T) {
	l, _ := newLimiter()
	l.Declare(&ratelimit.Rules{Limits: []ratelimit.Limit{
		{ID: "ns/p/local", Bucket: ratelimit.Bucket{Max: 1, PerFill: 1, Interval: time.Second}},
		{ID: "ns/p/q2", Quota: true, Bucket: ratelimit.Bucket{Max: 1, PerFill: 1, Interval: time.Second}},
		{ID: "ns/p/q1", Quota: true, Bucket: ratelimit.Bucket{Max: 1, PerFill: 1, Interval: time.Second}},
	}}, nil)
	want := []ratelimit.QuotaDemand{{Quota: "ns/p/q1"}, {Quota: "ns/p/q2"}}
	if diff := cmp.Diff(want, l.QuotaDemand()); diff != "" {
		t.Fatalf("quota demand (-want +got):\n%s", diff)
	}
}

func TestKeyedBuckets(t *testing.T) {
	l, _ := newLimiter()
	rules := &ratelimit.Rules{Limits: []ratelimit.Limit{{
		ID: "ns/p/per-caller", Key: ratelimit.KeyPrincipal, MaxKeys: 3,
		Bucket: ratelimit.Bucket{Max: 2, PerFill: 2, Interval: time.Minute},
	}}}
	greedy := &ratelimit.Request{Principal: "spiffe://td/ns/a/sa/greedy"}
	polite := &ratelimit.Request{Principal: "spiffe://td/ns/a/sa/polite"}
	if got, want := outcomes(l, rules, greedy, 5), "++---"; got != want {
		t.Fatalf("greedy: got %s, want %s", got, want)
	}
	if got, want := outcomes(l, rules, polite, 2), "++"; got != want {
		t.Fatalf("polite after greedy: got %s, want %s", got, want)
	}
	// Three more keys evict the least recently used ones; the bound holds.
	for i := range 3 {
		outcomes(l, rules, &ratelimit.Request{Principal: fmt.Sprintf("spiffe://td/ns/b/sa/s%d", i)}, 1)
	}
	if got := l.Keys("ns/p/per-caller"); got != 3 {
		t.Fatalf("keys: got %d, want 3", got)
	}
	// greedy was evicted: it starts again with a full bucket.
	if got, want := outcomes(l, rules, greedy, 3), "++-"; got != want {
		t.Fatalf("greedy after eviction: got %s, want %s", got, want)
	}
}

func TestKeyTypes(t *testing.T) {
	h := http.Header{}
	h.Set("X-Tenant", "blue")
	r := &ratelimit.Request{Principal: "spiffe://td/ns/shop/sa/web", Cluster: "east-1", Headers: h}
	for _, tc := range []struct {
		name   string
		key    ratelimit.KeyType
		header string
		other  *ratelimit.Request // shares r's bucket
	}{
		{"namespace", ratelimit.KeyNamespace, "", &ratelimit.Request{Principal: "spiffe://td/ns/shop/sa/other"}},
		{"cluster", ratelimit.KeyCluster, "", &ratelimit.Request{Principal: "spiffe://td/ns/x/sa/y", Cluster: "east-1"}},
		{"header", ratelimit.KeyHeader, "X-Tenant", &ratelimit.Request{Headers: http.Header{"X-Tenant": {"blue"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLimiter()
			rules := &ratelimit.Rules{Limits: []ratelimit.Limit{{ID: "ns/p/k", Key: tc.key, Header: tc.header, Bucket: ratelimit.Bucket{Max: 1, PerFill: 1, Interval: time.Minute}}}}
			if got := outcomes(l, rules, r, 1) + outcomes(l, rules, tc.other, 1); got != "+-" {
				t.Fatalf("same key: got %s, want +-", got)
			}
			if got := outcomes(l, rules, &ratelimit.Request{Principal: "spiffe://td/ns/zz/sa/zz", Cluster: "west-2", Headers: http.Header{"X-Tenant": {"red"}}}, 1); got != "+" {
				t.Fatalf("another key: got %s, want +", got)
			}
		})
	}
}

func TestMatchAndOrder(t *testing.T) {
	l, _ := newLimiter()
	get, err := ratelimit.NewHeaderMatch(":method", ratelimit.MatchExact, "GET", false)
	if err != nil {
		t.Fatal(err)
	}
	api, err := ratelimit.NewHeaderMatch(":path", ratelimit.MatchRegex, `/api/.*(\?.*)?`, false)
	if err != nil {
		t.Fatal(err)
	}
	rules := &ratelimit.Rules{Limits: []ratelimit.Limit{
		{ID: "ns/p/api-gets", Match: []ratelimit.HeaderMatch{get, api}, Bucket: ratelimit.Bucket{Max: 1, PerFill: 1, Interval: time.Minute}},
		{ID: "ns/p/all", Bucket: ratelimit.Bucket{Max: 3, PerFill: 3, Interval: time.Minute}},
	}}
	apiGet := &ratelimit.Request{Method: "GET", Path: "/api/x?y=1"}
	post := &ratelimit.Request{Method: "POST", Path: "/api/x"}
	if got, want := outcomes(l, rules, apiGet, 2), "+-"; got != want {
		t.Fatalf("api gets: got %s, want %s", got, want)
	}
	// The refused GET took no token of the second limit (the first empty
	// bucket stops the check): two POSTs are left.
	if got, want := outcomes(l, rules, post, 3), "++-"; got != want {
		t.Fatalf("posts: got %s, want %s", got, want)
	}
	d := l.Check(rules, apiGet)
	if d.Allowed || d.Limit.ID != "ns/p/api-gets" {
		t.Fatalf("got %+v, want refused by ns/p/api-gets", d)
	}
}

func TestHeaderMatchInvertAndAbsent(t *testing.T) {
	notGet, err := ratelimit.NewHeaderMatch(":method", ratelimit.MatchExact, "GET", true)
	if err != nil {
		t.Fatal(err)
	}
	lim := ratelimit.Limit{Match: []ratelimit.HeaderMatch{notGet}}
	for _, tc := range []struct {
		method string
		want   bool
	}{{"GET", false}, {"POST", true}, {"", false}} {
		if got := lim.Applies(&ratelimit.Request{Method: tc.method}); got != tc.want {
			t.Errorf("method %q: got %v, want %v", tc.method, got, tc.want)
		}
	}
	if _, err := ratelimit.NewHeaderMatch("x", ratelimit.MatchRegex, "(", false); err == nil {
		t.Error("bad regex: got no error")
	}
}

func TestNamespace(t *testing.T) {
	for in, want := range map[string]string{
		"spiffe://td/ns/shop/sa/web": "shop",
		"spiffe://td/ns/shop":        "shop",
		"spiffe://td/sa/web":         "",
		"":                           "",
	} {
		if got := ratelimit.Namespace(in); got != want {
			t.Errorf("Namespace(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCanonicalHeader(t *testing.T) {
	for _, name := range []string{"x-tenant", "X-TENANT", "content-type", "x-fedmesh-client-id", "a", "", "bad header", "x_y-z9", "ÿx"} {
		if got, want := ratelimit.CanonicalHeader(name), http.CanonicalHeaderKey(name); got != want {
			t.Errorf("CanonicalHeader(%q) = %q, want %q as net/http", name, got, want)
		}
	}
}

func TestPrune(t *testing.T) {
	l, _ := newLimiter()
	keyed := &ratelimit.Rules{Limits: []ratelimit.Limit{{ID: "ns/p/k", Key: ratelimit.KeyPrincipal, Bucket: ratelimit.Bucket{Max: 1, PerFill: 1, Interval: time.Minute}}}}
	kept := &ratelimit.Rules{Limits: []ratelimit.Limit{{ID: "ns/p/kept", Bucket: ratelimit.Bucket{Max: 1, PerFill: 1, Interval: time.Minute}}}}
	for i := range 5 {
		outcomes(l, keyed, &ratelimit.Request{Principal: fmt.Sprintf("spiffe://td/ns/a/sa/s%d", i)}, 2)
	}
	outcomes(l, kept, &ratelimit.Request{}, 1)
	if got := l.Keys("ns/p/k"); got != 5 {
		t.Fatalf("keys before: %d, want 5", got)
	}
	l.Prune(map[string]bool{"ns/p/kept": true})
	if got := l.Keys("ns/p/k"); got != 0 {
		t.Errorf("keys of a pruned limit: %d, want 0", got)
	}
	// The kept limit keeps its empty bucket; the pruned one starts full
	// if it comes back; counters stay.
	if got := outcomes(l, kept, &ratelimit.Request{}, 1); got != "-" {
		t.Errorf("kept limit: %s, want its empty bucket", got)
	}
	if got := outcomes(l, keyed, &ratelimit.Request{Principal: "spiffe://td/ns/a/sa/s0"}, 1); got != "+" {
		t.Errorf("pruned limit back: %s, want a full bucket", got)
	}
	want := []ratelimit.Count{{Limit: "ns/p/k", Admitted: 6, Refused: 5}, {Limit: "ns/p/kept", Admitted: 1, Refused: 1}}
	if diff := cmp.Diff(want, l.Counts()); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

func TestRulesJSON(t *testing.T) {
	m, err := ratelimit.NewHeaderMatch(":path", ratelimit.MatchPrefix, "/api/", true)
	if err != nil {
		t.Fatal(err)
	}
	r := ratelimit.Rules{RetryAfter: true, Limits: []ratelimit.Limit{{ID: "ns/p/a", Key: ratelimit.KeyPrincipal, Match: []ratelimit.HeaderMatch{m},
		Bucket: ratelimit.Bucket{Max: 2, PerFill: 1, Interval: time.Second}, MaxKeys: 7}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"limits":[{"id":"ns/p/a","match":[{"header":":path","kind":"prefix","value":"/api/","invert":true}],"key":"principal","bucket":{"max":2,"perFill":1,"interval":1000000000},"maxKeys":7}],"retryAfter":true}`
	if string(b) != want {
		t.Errorf("JSON %s\nwant %s", b, want)
	}
}
