package plan

import "time"

// This file plans inbound rate limits (docs/ratelimit.md): which local
// limits and clusterset quotas of RateLimitPolicies apply to each service
// port a sidecar serves, and the size of the token bucket that enforces
// each, as plain data that controlplane/xds renders into Envoy's local
// rate limit filters.

// QuotaShare is one sidecar's share of a clusterset quota: a token
// bucket of Requests tokens refilled every Interval.
type QuotaShare struct {
	Requests int64
	Interval time.Duration
}

// QuotaShares returns the share of quota quotaID ("NAMESPACE/POLICY/QUOTA")
// that node nodeID (the xDS node.id of a sidecar) enforces, and false when
// it has none to give (the plan then uses DefaultQuotaShare). It must be
// safe for concurrent use and must not block: the generator calls it
// while it builds a node's snapshot.
type QuotaShares func(quotaID, nodeID string) (QuotaShare, bool)

// RateLimitInput is what the plan needs besides the view and the
// traffic set to size rate limits.
type RateLimitInput struct {
	// QuotaShares gives each sidecar its share of each quota (the
	// clusterset split). Nil, or an answer of false: the conservative
	// default, DefaultQuotaShare.
	QuotaShares QuotaShares
}

// WithRateLimitInput returns a plan of the same view, topology policy
// and traffic that sizes quota shares from in.
func (p *Plan) WithRateLimitInput(in RateLimitInput) *Plan {
	n := p.clone()
	n.rateLimit = in
	return n
}
