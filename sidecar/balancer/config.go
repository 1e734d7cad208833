package balancer

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrBadConfig is wrapped by every error New returns for a bad Config.
var ErrBadConfig = errors.New("bad balancer config")

// Policy chooses between the two random candidates of a pick.
type Policy int

const (
	// LeastRequest prefers the candidate with fewer outstanding requests
	// per unit of weight.
	LeastRequest Policy = iota
	// PeakEWMA prefers the candidate with the lower peak-EWMA latency
	// times (outstanding requests + 1), per unit of weight.
	PeakEWMA
	// RoundRobin takes a priority's available hosts in turn.
	RoundRobin
	// RingHash maps a request's hash (PickHash) to a host on a
	// consistent hash ring per priority (Envoy's RING_HASH with
	// XX_HASH); a request without a hash gets a random point.
	RingHash
)

// String names the policy as configuration spells it.
func (p Policy) String() string {
	switch p {
	case LeastRequest:
		return "least_request"
	case PeakEWMA:
		return "peak_ewma"
	case RoundRobin:
		return "round_robin"
	case RingHash:
		return "ring_hash"
	default:
		return fmt.Sprintf("policy(%d)", int(p))
	}
}

// Config configures a Balancer. The zero value (with a Name) is usable:
// every zero field takes the documented default.
type Config struct {
	// Name identifies the upstream (for example "demo/echo:8080") in
	// logs and metric labels.
	Name string
	// Policy chooses within a priority; default LeastRequest.
	Policy Policy
	// MinRingSize and MaxRingSize bound the ring of RingHash: each
	// priority's ring has at least MinRingSize entries (0 means 1024) and
	// at most MaxRingSize (0 means 8M, Envoy's limit).
	MinRingSize, MaxRingSize uint64
	// OverprovisioningFactor for spill-over between priorities, in
	// percent; 0 means 140 (Envoy's 1.4).
	OverprovisioningFactor int
	// PanicThreshold in percent; 0 means 50, negative disables panic
	// mode (then a priority without available hosts gets no traffic).
	PanicThreshold int
	// EWMADecay is the time constant of the peak EWMA latency; 0 means
	// 10s (linkerd and Finagle's default).
	EWMADecay time.Duration
	// EWMAInitial is the latency assumed for a host with no sample yet;
	// 0 means 10ms. Used by PeakEWMA only.
	EWMAInitial time.Duration
	// Outlier configures outlier detection.
	Outlier OutlierConfig
	// RetryBudget limits concurrent retries.
	RetryBudget RetryBudgetConfig
	// Now tells the time; default time.Now.
	Now func() time.Time
	// Seed, when not 0, makes the balancer's random choices a
	// reproducible sequence (for tests). 0 uses the runtime's per-thread
	// generator, which scales better across cores.
	Seed uint64
	// Logger receives ejection events; nil discards them.
	Logger *slog.Logger
	// Metrics records ejections and failed picks; nil records nothing.
	// One Metrics serves every balancer of a process.
	Metrics *Metrics
}

// OutlierConfig configures passive outlier detection. Defaults follow
// Envoy's outlier detection where Envoy has one.
type OutlierConfig struct {
	// Consecutive5xx ejects a host after this many 5xx answers in a
	// row; 0 means 5 (Envoy's consecutive_5xx), negative disables.
	Consecutive5xx int
	// ConsecutiveConnectFailures ejects a host after this many failed
	// connects in a row (refused, reset, timeout, TLS handshake); 0
	// means 3, negative disables. A failed connect is cheap, certain
	// evidence, so the default is lower than Consecutive5xx.
	ConsecutiveConnectFailures int
	// BaseEjectionTime is the first ejection's length; the n-th ejection
	// lasts n times as long, up to MaxEjectionTime. 0 means 30s (Envoy).
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection's length; 0 means 300s (Envoy).
	MaxEjectionTime time.Duration
	// Interval is how long a host must stay un-ejected for its ejection
	// count (the multiplier) to drop by one; 0 means 10s (Envoy's
	// interval).
	Interval time.Duration
	// MaxEjectionPercent caps, in percent of all hosts, how many hosts
	// may be ejected at once for 5xx; at least one host may always be
	// ejected. 0 means 10 (Envoy's max_ejection_percent).
	MaxEjectionPercent int
	// MaxConnectEjectionPercent is the same cap for hosts ejected for
	// failed connects; 0 means 100. A host that cannot be connected to
	// serves nothing, and a lower cap would keep traffic on a dead
	// priority (two dead local hosts out of six is already 33%).
	// Panic mode is the safety net if every host is ejected.
	MaxConnectEjectionPercent int
}

// RetryBudgetConfig limits retries as Envoy's retry_budget does: active
// retries may be at most BudgetPercent of active requests, and at least
// MinRetryConcurrency.
type RetryBudgetConfig struct {
	// BudgetPercent of active requests that may be retries; 0 means 20.
	BudgetPercent int
	// MinRetryConcurrency is the number of concurrent retries always
	// allowed; 0 means 3.
	MinRetryConcurrency int
}

func (c *Config) fill() error {
	if c.MinRingSize == 0 {
		c.MinRingSize = 1024
	}
	if c.MaxRingSize == 0 {
		c.MaxRingSize = 8 << 20
	}
	if c.MinRingSize > c.MaxRingSize || c.MaxRingSize > 8<<20 {
		return fmt.Errorf("%w: ring sizes %d..%d are not within 1..%d", ErrBadConfig, c.MinRingSize, c.MaxRingSize, 8<<20)
	}
	if c.Policy < LeastRequest || c.Policy > RingHash {
		return fmt.Errorf("%w: unknown policy %d", ErrBadConfig, int(c.Policy))
	}
	if c.OverprovisioningFactor < 0 {
		return fmt.Errorf("%w: overprovisioning factor %d is negative", ErrBadConfig, c.OverprovisioningFactor)
	}
	if c.OverprovisioningFactor == 0 {
		c.OverprovisioningFactor = 140
	}
	if c.PanicThreshold > 100 {
		return fmt.Errorf("%w: panic threshold %d%% is above 100", ErrBadConfig, c.PanicThreshold)
	}
	if c.EWMADecay < 0 || c.EWMAInitial < 0 {
		return fmt.Errorf("%w: negative EWMA decay or initial latency", ErrBadConfig)
	}
	if c.EWMADecay == 0 {
		c.EWMADecay = 10 * time.Second
	}
	if c.EWMAInitial == 0 {
		c.EWMAInitial = 10 * time.Millisecond
	}
	o := &c.Outlier
	if o.Consecutive5xx == 0 {
		o.Consecutive5xx = 5
	}
	if o.ConsecutiveConnectFailures == 0 {
		o.ConsecutiveConnectFailures = 3
	}
	if o.BaseEjectionTime < 0 || o.MaxEjectionTime < 0 || o.Interval < 0 {
		return fmt.Errorf("%w: negative outlier duration", ErrBadConfig)
	}
	if o.BaseEjectionTime == 0 {
		o.BaseEjectionTime = 30 * time.Second
	}
	if o.MaxEjectionTime == 0 {
		o.MaxEjectionTime = 300 * time.Second
	}
	if o.MaxEjectionTime < o.BaseEjectionTime {
		return fmt.Errorf("%w: max ejection time %v is below base ejection time %v", ErrBadConfig, o.MaxEjectionTime, o.BaseEjectionTime)
	}
	if o.Interval == 0 {
		o.Interval = 10 * time.Second
	}
	for _, p := range []*int{&o.MaxEjectionPercent, &o.MaxConnectEjectionPercent} {
		if *p < 0 || *p > 100 {
			return fmt.Errorf("%w: max ejection percent %d is outside 0..100", ErrBadConfig, *p)
		}
	}
	if o.MaxEjectionPercent == 0 {
		o.MaxEjectionPercent = 10
	}
	if o.MaxConnectEjectionPercent == 0 {
		o.MaxConnectEjectionPercent = 100
	}
	r := &c.RetryBudget
	if r.BudgetPercent < 0 || r.MinRetryConcurrency < 0 {
		return fmt.Errorf("%w: negative retry budget", ErrBadConfig)
	}
	if r.BudgetPercent == 0 {
		r.BudgetPercent = 20
	}
	if r.MinRetryConcurrency == 0 {
		r.MinRetryConcurrency = 3
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
