package balancer

import (
	"math"
	"sync/atomic"
	"time"
)

// Endpoint is one upstream endpoint as the control plane describes it.
type Endpoint struct {
	// Address is the host:port to dial: the endpoint itself when it is
	// local, the remote cluster's gateway when SNI is set.
	Address string
	// Cluster is the fedmesh cluster the endpoint runs in.
	Cluster string
	// SNI, when not empty, is the server name to send through a remote
	// gateway; the endpoint is then remote.
	SNI string
	// Identity is the SPIFFE ID the endpoint must present.
	Identity string
	// Priority is the endpoint's failover level from the control plane
	// (topology.Policy.Prioritize); 0 is the most preferred. Levels need
	// not be dense: the balancer orders the distinct values.
	Priority int
	// Weight scales the endpoint's share within its priority; 0 means 1.
	Weight uint32
	// Healthy is the control plane's verdict (false for fenced peers,
	// terminating or not-ready endpoints).
	Healthy bool
	// HealthReason says why the endpoint is not healthy, for humans.
	HealthReason string
	// Workload is the workload serving the endpoint, "" when unknown (a
	// gateway standing for several workloads). The balancer ignores it;
	// metrics read it.
	Workload string
}

// key identifies a host across updates: the same address reached with the
// same SNI is the same host and keeps its counters.
func (e *Endpoint) key() string { return e.Address + "|" + e.SNI }

// Kind is the outcome of a request, as outlier detection sees it.
type Kind int

const (
	// OK is a request answered without a server error.
	OK Kind = iota
	// Status5xx is a request answered with a 5xx status (or a gRPC
	// status that maps to one): the connection worked.
	Status5xx
	// ConnectFailure is a failed connect: refused, reset, timed out or
	// a failed TLS handshake, including through a gateway.
	ConnectFailure
	// Canceled is a request abandoned by the client; it feeds nothing.
	Canceled
)

// Result is what Host.End learns about a finished request.
type Result struct {
	// Kind is the outcome.
	Kind Kind
	// Latency is the time to the answer (OK and Status5xx only); it
	// feeds the peak EWMA (PeakEWMA policy only: LeastRequest does not
	// read the clock in End).
	Latency time.Duration
}

// Host is one endpoint inside a Balancer, with its load and outlier state.
// Its methods are safe for concurrent use. A host is reused across
// Updates while its address and SNI stay the same.
type Host struct {
	b   *Balancer
	key string
	ep  atomic.Pointer[Endpoint]

	active      atomic.Int64  // requests begun and not ended
	ewmaBits    atomic.Uint64 // peak EWMA latency in ns, float64 bits; 0 = no sample
	ewmaStamp   atomic.Int64  // unix ns of the last EWMA sample
	fail5xx     atomic.Int32  // consecutive 5xx
	failConnect atomic.Int32  // consecutive connect failures
	// ejectedUntil is unix ns; the host is ejected while now is before
	// it. Written under b.mu, read anywhere.
	ejectedUntil atomic.Int64

	// Guarded by b.mu.
	ejections       int    // multiplier of the ejection time
	lastEjectionEnd int64  // unix ns when the last ejection ended or ends
	ejectReason     string // why the last ejection happened
}

// Endpoint returns the host's current endpoint description.
func (h *Host) Endpoint() Endpoint { return *h.ep.Load() }

// Address returns the host:port to dial.
func (h *Host) Address() string { return h.ep.Load().Address }

// Begin counts a request as outstanding on the host. Every Begin must be
// followed by exactly one End.
func (h *Host) Begin() {
	h.active.Add(1)
	h.b.active.Add(1)
}

// End finishes a request begun with Begin, feeding least-request counts,
// the peak EWMA and outlier detection. It never allocates; an ejection it
// causes takes the balancer's lock briefly.
func (h *Host) End(r Result) {
	h.active.Add(-1)
	h.b.active.Add(-1)
	b := h.b
	o := &b.cfg.Outlier
	switch r.Kind {
	case OK:
		h.fail5xx.Store(0)
		h.failConnect.Store(0)
		if b.cfg.Policy == PeakEWMA {
			h.observe(b.now(), r.Latency)
		}
	case Status5xx:
		h.failConnect.Store(0)
		if b.cfg.Policy == PeakEWMA {
			h.observe(b.now(), r.Latency)
		}
		if n := h.fail5xx.Add(1); o.Consecutive5xx > 0 && int(n) >= o.Consecutive5xx {
			b.eject(h, reason5xx, b.now())
		}
	case ConnectFailure:
		if n := h.failConnect.Add(1); o.ConsecutiveConnectFailures > 0 && int(n) >= o.ConsecutiveConnectFailures {
			b.eject(h, reasonConnect, b.now())
		}
	}
}

// ejected reports whether the host is ejected at now (unix ns).
func (h *Host) ejected(now int64) bool { return h.ejectedUntil.Load() > now }

// observe feeds a latency sample into the peak EWMA: a sample above the
// estimate replaces it, a lower one is averaged in with a weight that
// decays with the time since the last sample (Finagle's and linkerd's
// peak EWMA). Concurrent samples may lose one another; the estimate stays
// a valid sample mix.
func (h *Host) observe(now int64, latency time.Duration) {
	if latency <= 0 {
		return
	}
	rtt := float64(latency)
	tau := float64(h.b.cfg.EWMADecay)
	for {
		oldBits := h.ewmaBits.Load()
		old := math.Float64frombits(oldBits)
		next := rtt
		if old != 0 && rtt < old {
			elapsed := float64(max(0, now-h.ewmaStamp.Load()))
			w := math.Exp(-elapsed / tau)
			next = old*w + rtt*(1-w)
		}
		if h.ewmaBits.CompareAndSwap(oldBits, math.Float64bits(next)) {
			h.ewmaStamp.Store(now)
			return
		}
	}
}

// latency returns the EWMA estimate at now, decayed toward zero since the
// last sample so that an idle host gets tried again; EWMAInitial when
// there is no sample.
func (h *Host) latency(now int64) float64 {
	v := math.Float64frombits(h.ewmaBits.Load())
	if v == 0 {
		return float64(h.b.cfg.EWMAInitial)
	}
	elapsed := float64(max(0, now-h.ewmaStamp.Load()))
	return v * math.Exp(-elapsed/float64(h.b.cfg.EWMADecay))
}

func (h *Host) weight() float64 {
	w := h.ep.Load().Weight
	if w == 0 {
		return 1
	}
	return float64(w)
}
