package xds

import (
	"time"

	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// This file renders the plan's inbound rate limits (docs/ratelimit.md)
// for internal/xdsresource, one to one.

// renderRateLimit returns a chain's rate limits; nil when none apply.
func renderRateLimit(rl *plan.RateLimit) *xdsresource.RateLimit {
	if rl == nil {
		return nil
	}
	out := &xdsresource.RateLimit{MaxKeys: plan.MaxRateLimitKeys}
	for _, r := range rl.Limits {
		xr := xdsresource.RateLimitRule{
			ID: r.ID, Quota: r.Quota, Key: xdsresource.RateLimitKey(r.Key), Header: r.Header,
			Bucket: bucket(r.MaxTokens, r.TokensPerFill, r.FillInterval),
		}
		for _, c := range r.Conditions {
			xr.Conditions = append(xr.Conditions, xdsresource.RateLimitCondition{
				Header: c.Header, Match: xdsresource.StringMatch{Kind: xdsresource.MatchKind(c.Match.Kind), Value: c.Match.Value},
				Present: c.Present, Invert: c.Invert,
			})
		}
		out.Limits = append(out.Limits, xr)
	}
	for _, c := range rl.Connections {
		out.Connections = append(out.Connections, xdsresource.ConnectionLimit{ID: c.ID, Bucket: bucket(c.MaxTokens, c.TokensPerFill, c.FillInterval)})
	}
	return out
}

// bucket converts a planned bucket; validation bounds tokens to 32 bits.
func bucket(maxTokens, perFill int64, fill time.Duration) xdsresource.TokenBucket {
	return xdsresource.TokenBucket{MaxTokens: uint32(min(maxTokens, 1<<32-1)), TokensPerFill: uint32(min(perFill, 1<<32-1)), FillInterval: fill}
}
