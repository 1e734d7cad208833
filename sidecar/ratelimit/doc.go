// Package ratelimit enforces the inbound rate limits of a sidecar:
// token buckets per limit, optionally one per key (the caller's
// principal, namespace or cluster, or a request header), and the
// per-sidecar shares of clusterset quotas. It is pure: time comes from
// an injected clock, and checking a request does no I/O.
//
// The configuration comes from Envoy's local rate limit filters
// (envoy.filters.http.local_ratelimit and
// envoy.filters.network.local_ratelimit), compiled by sidecar/config into
// Rules: one Limit per descriptor, with the conditions of its rate_limits
// entry. The semantics follow Envoy's documentation
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/local_rate_limit_filter):
//
//   - a bucket holds at most Max tokens and starts full; every Interval,
//     PerFill tokens are added (discrete fills, as Envoy's token bucket);
//   - a request takes one token from the bucket of every limit whose
//     conditions it matches, in order; the first empty bucket refuses
//     it (tokens already taken from earlier buckets stay taken, as in
//     Envoy); a request without a value for a keyed limit's key (an
//     absent header) is not counted by that limit, as Envoy makes no
//     descriptor for it;
//   - a keyed limit (a descriptor entry with an empty value: Envoy's
//     dynamic descriptors) keeps one bucket per value of its key, at most
//     MaxKeys of them: the least recently used bucket is evicted when a
//     new key arrives, and a key seen again after eviction starts with a
//     full bucket. The bound keeps memory fixed whatever the callers
//     send; the price is that more than MaxKeys active keys can each get
//     more than their limit.
//
// A Limiter keeps its buckets and counters across configuration
// updates: a limit that keeps its ID keeps its tokens (clamped to a new
// Max), so a quota share that changes every few seconds never refills
// the bucket. Counters are monotonic from the Limiter's start: QuotaDemand
// reads the admitted and refused requests of every quota, for the load
// report that lets the control planes split the quota by demand.
//
// On the request path, an unkeyed limit costs one mutex held for a few
// arithmetic operations; a keyed limit one map lookup and a list move
// under its limit's mutex. Nothing allocates except a new key's bucket.
//
//	l := ratelimit.New(ratelimit.Config{Now: time.Now})
//	l.Update(allRules)
//	d := l.Check(rules, &ratelimit.Request{Principal: id, Method: "GET", Path: "/"})
//	if !d.Allowed { ... 429, d.RetryAfter ... }
package ratelimit
