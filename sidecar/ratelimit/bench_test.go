package ratelimit_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
)

// BenchmarkCheck is the per-request cost of the limit check on the
// inbound path: one unkeyed limit, a limit keyed by principal (1000
// callers in turn) with a path condition, and a quota share with a
// principal condition. Buckets are large, so every request is admitted
// and the check runs every limit.
func BenchmarkCheck(b *testing.B) {
	api, err := ratelimit.NewHeaderMatch(":path", ratelimit.MatchPrefix, "/api/", false)
	if err != nil {
		b.Fatal(err)
	}
	batch, err := ratelimit.NewHeaderMatch(ratelimit.ClientIDHeader, ratelimit.MatchRegex, `spiffe://td/ns/(batch|etl)/.*`, false)
	if err != nil {
		b.Fatal(err)
	}
	huge := ratelimit.Bucket{Max: 1 << 40, PerFill: 1 << 40, Interval: time.Second}
	cases := []struct {
		name  string
		rules *ratelimit.Rules
	}{
		{"unkeyed", &ratelimit.Rules{Limits: []ratelimit.Limit{{ID: "ns/p/all", Bucket: huge}}}},
		{"keyed-principal", &ratelimit.Rules{Limits: []ratelimit.Limit{{ID: "ns/p/per-caller", Key: ratelimit.KeyPrincipal, Match: []ratelimit.HeaderMatch{api}, Bucket: huge, MaxKeys: 1024}}}},
		{"three-limits", &ratelimit.Rules{Limits: []ratelimit.Limit{
			{ID: "ns/p/all", Bucket: huge},
			{ID: "ns/p/per-caller", Key: ratelimit.KeyPrincipal, Match: []ratelimit.HeaderMatch{api}, Bucket: huge, MaxKeys: 1024},
			{ID: "ns/p/quota", Quota: true, Match: []ratelimit.HeaderMatch{batch}, Bucket: huge},
		}}},
	}
	reqs := make([]ratelimit.Request, 1000)
	for i := range reqs {
		reqs[i] = ratelimit.Request{
			Principal: fmt.Sprintf("spiffe://td/ns/batch/sa/caller-%d", i),
			Method:    "GET", Path: "/api/items", Headers: http.Header{"Accept": {"*/*"}},
		}
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			l := ratelimit.New(ratelimit.Config{})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if !l.Check(c.rules, &reqs[i%len(reqs)]).Allowed {
					b.Fatal("refused")
				}
				i++
			}
		})
	}
	b.Run("parallel-unkeyed", func(b *testing.B) {
		l := ratelimit.New(ratelimit.Config{})
		rules := cases[0].rules
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := reqs[0]
			for pb.Next() {
				l.Check(rules, &r)
			}
		})
	})
}
