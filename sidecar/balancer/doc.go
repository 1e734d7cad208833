// Package balancer is the sidecar's load balancer for one upstream
// service: it spreads requests over priorities from the control plane,
// spills over between them as hosts fail, balances within a priority, and
// ejects failing hosts on its own, so that a dead local endpoint loses its
// traffic within a few requests and with no control plane involved.
//
// # Data
//
// The xDS client calls Update with the service's endpoints ([]Endpoint:
// address, SNI for remote ones behind a gateway, expected SPIFFE ID,
// priority, weight, health from the control plane). Update swaps in a new
// immutable state (copy on write); a host whose address and SNI are
// unchanged keeps its counters and ejection state.
//
// For each request the proxy calls
//
//	h, err := b.Pick()        // or b.Pick(tried...) for a retry
//	if err != nil { ... 503: errors.Is(err, balancer.ErrNoHealthy) }
//	h.Begin()
//	... dial h.Endpoint().Address (TLS with SNI if set), send ...
//	h.End(balancer.Result{Kind: balancer.OK, Latency: d})
//
// and before a retry asks b.TryRetry() (and b.RetryDone() after it).
// Pick never blocks and never allocates; Begin and End never allocate.
//
// # Choosing a host
//
// Priorities are the distinct Endpoint.Priority values in increasing order
// (they need not be dense). The share of traffic per priority comes from
// topology.ComputeLoad over each priority's host count and its available
// hosts (healthy from the control plane and not ejected), with Envoy's
// overprovisioning factor (default 1.4) and panic threshold (default 50%).
// A priority is drawn by that share (randomness from the runtime's
// per-thread generator, or a lock-free splitmix64 sequence when
// Config.Seed is set), then two distinct random available hosts of that
// priority are compared (power of two choices):
//
//   - LeastRequest: fewer outstanding requests per unit of weight wins,
//     comparing (active+1)/weight.
//   - PeakEWMA: lower (peak EWMA latency) x (active+1) / weight wins. The
//     estimate jumps to any slower sample and decays toward faster ones
//     and toward zero when idle, with time constant EWMADecay (10s), as
//     in Finagle and linkerd; a host without samples counts EWMAInitial.
//
// A priority in panic uses all its hosts regardless of health (Envoy).
// When the drawn priority has no eligible host left, the first priority in
// order that has one serves.
//
// # Retries
//
// Pick(exclude...) avoids the hosts of earlier attempts while any other
// host can serve (a retry goes to an excluded host only when it is the
// sole one left). TryRetry enforces a retry budget like Envoy's
// retry_budget: concurrent retries may be 20% of outstanding requests,
// with at least 3 always allowed.
//
// # Outlier detection
//
// End feeds passive outlier detection:
//
//   - ConsecutiveConnectFailures (default 3) failed connects in a row, or
//     Consecutive5xx (default 5, Envoy's) 5xx answers in a row, eject the
//     host. A success resets both counts, a 5xx resets the connect count.
//   - The n-th ejection lasts n x BaseEjectionTime (30s), capped at
//     MaxEjectionTime (300s); the multiplier drops by one for every
//     Interval (10s) the host stays in. Ejections end by the clock: the
//     first Pick after the end recomputes the shares (without waiting:
//     it uses the old state if the lock is busy).
//   - MaxEjectionPercent (default 10%, Envoy's) caps how many hosts may be
//     ejected at once for 5xx, but one host may always be ejected. Hosts
//     failing to connect have their own cap, MaxConnectEjectionPercent,
//     100% by default: a host that refuses connections serves nothing,
//     and with a 10% cap two dead local hosts out of six (2 local, 2 in
//     the region, 2 remote) would keep their priority's share and never
//     fail over. If every host ends up ejected, panic mode sends traffic
//     to all of them again rather than to none.
//
// Ejected hosts count as unavailable for the spill-over shares, so an
// ejection moves traffic to the next priority at once.
//
// Snapshot reports every host's priority, health, load, latency,
// ejection and the reason, for the sidecar's admin /endpoints page.
package balancer
