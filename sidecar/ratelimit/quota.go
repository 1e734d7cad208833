package ratelimit

// QuotaDemand is what one sidecar admitted and refused for one
// clusterset quota: the demand a control plane reports so that the
// quota's split follows where the calls are.
type QuotaDemand struct {
	// Quota is the quota's ID, "NAMESPACE/POLICY/QUOTA".
	Quota string
	// Admitted and Refused count the requests the quota's share admitted
	// and refused since the Limiter started; they only grow (a reader
	// computes rates from differences between two reads). A request the
	// share admitted can still be refused by a later limit of its port
	// (as in Envoy, the first empty bucket refuses): it counts as
	// admitted here.
	Admitted, Refused uint64
}

// QuotaDemand returns the demand of every quota the Limiter has been
// given (Declare, or a request a quota counted), sorted by quota ID. It
// is safe to call at any time from any goroutine and costs one atomic
// read per quota.
func (l *Limiter) QuotaDemand() []QuotaDemand {
	var out []QuotaDemand
	for _, c := range l.Counts() {
		if c.Quota {
			out = append(out, QuotaDemand{Quota: c.Limit, Admitted: c.Admitted, Refused: c.Refused})
		}
	}
	return out
}
