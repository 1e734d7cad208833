package policy

import (
	"fmt"
	"math"
	"regexp"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fedmesh/fedmesh/catalog"
)

// Limits of a ResiliencePolicy.
const (
	// MaxTargetRefs is the most targetRefs a policy may have.
	MaxTargetRefs = 16
	// MaxRetryOn is the most retry conditions a policy may list.
	MaxRetryOn = 16
	// MaxStatusCodes is the most retriable status codes a policy may list.
	MaxStatusCodes = 64
	// MaxFailoverRegions is the most regions a failover order may list.
	MaxFailoverRegions = 32
	// MaxFailoverPriority is the most label keys of failoverPriority.
	MaxFailoverPriority = 8
	// MaxRingSize is the largest hash ring (Envoy's limit, 8M entries).
	MaxRingSize = 8 << 20
)

// cookieNameRE is an RFC 6265 cookie name (an RFC 7230 token).
var cookieNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$")

func validateResilience(fe *fieldErrors, p *ResiliencePolicy) {
	if p.APIVersion != "" && p.APIVersion != APIVersion {
		fe.add("apiVersion", p.APIVersion, "must be "+APIVersion)
	}
	if p.Kind != "" && p.Kind != KindResiliencePolicy {
		fe.add("kind", p.Kind, "must be "+KindResiliencePolicy)
	}
	s := &p.Spec
	targetRefs(fe, "spec.targetRefs", s.TargetRefs)
	if r := s.Retry; r != nil {
		if r.Attempts != nil && (*r.Attempts < 0 || *r.Attempts > MaxRetryAttempts) {
			fe.add("spec.retry.attempts", fmt.Sprint(*r.Attempts), fmt.Sprintf("out of range 0-%d", MaxRetryAttempts))
		}
		if len(r.RetryOn) > MaxRetryOn {
			fe.add("spec.retry.retryOn", "", fmt.Sprintf("%d conditions, at most %d", len(r.RetryOn), MaxRetryOn))
		} else {
			seen := map[RetryOn]bool{}
			for i, on := range r.RetryOn {
				f := fmt.Sprintf("spec.retry.retryOn[%d]", i)
				switch on {
				case RetryOn5xx, RetryOnGatewayError, RetryOnReset, RetryOnConnectFailure, RetryOnRetriableStatusCodes,
					RetryOnCancelled, RetryOnDeadlineExceeded, RetryOnInternal, RetryOnResourceExhausted, RetryOnUnavailable:
					if seen[on] {
						fe.add(f, string(on), "listed twice")
					}
					seen[on] = true
				default:
					fe.add(f, short(string(on)), "must be one of 5xx, gateway-error, reset, connect-failure, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable")
				}
			}
		}
		if len(r.StatusCodes) > MaxStatusCodes {
			fe.add("spec.retry.statusCodes", "", fmt.Sprintf("%d codes, at most %d", len(r.StatusCodes), MaxStatusCodes))
		} else {
			seen := map[int32]bool{}
			for i, code := range r.StatusCodes {
				f := fmt.Sprintf("spec.retry.statusCodes[%d]", i)
				switch {
				case code < 400 || code > 599:
					fe.add(f, fmt.Sprint(code), "out of range 400-599")
				case seen[code]:
					fe.add(f, fmt.Sprint(code), "listed twice")
				}
				seen[code] = true
			}
		}
		positive(fe, "spec.retry.perTryTimeout", r.PerTryTimeout)
		if b := r.Backoff; b != nil {
			positive(fe, "spec.retry.backoff.baseInterval", b.BaseInterval)
			positive(fe, "spec.retry.backoff.maxInterval", b.MaxInterval)
			if b.BaseInterval != nil && b.MaxInterval != nil && b.MaxInterval.Duration < b.BaseInterval.Duration {
				fe.add("spec.retry.backoff.maxInterval", b.MaxInterval.Duration.String(), "must not be shorter than baseInterval "+b.BaseInterval.Duration.String())
			}
		}
	}
	if t := s.Timeouts; t != nil {
		positive(fe, "spec.timeouts.request", t.Request)
		positive(fe, "spec.timeouts.idle", t.Idle)
		positive(fe, "spec.timeouts.connect", t.Connect)
	}
	if l := s.ConnectionLimits; l != nil {
		nonNegative(fe, "spec.connectionLimits.maxConnections", l.MaxConnections)
		nonNegative(fe, "spec.connectionLimits.maxPendingRequests", l.MaxPendingRequests)
		nonNegative(fe, "spec.connectionLimits.maxRequests", l.MaxRequests)
		nonNegative(fe, "spec.connectionLimits.maxRetries", l.MaxRetries)
	}
	if o := s.OutlierDetection; o != nil {
		nonNegative(fe, "spec.outlierDetection.consecutive5xx", o.Consecutive5xx)
		nonNegative(fe, "spec.outlierDetection.consecutiveGatewayErrors", o.ConsecutiveGatewayErrors)
		positive(fe, "spec.outlierDetection.interval", o.Interval)
		positive(fe, "spec.outlierDetection.baseEjectionTime", o.BaseEjectionTime)
		if m := o.MaxEjectionPercent; m != nil && (*m < 0 || *m > 100) {
			fe.add("spec.outlierDetection.maxEjectionPercent", fmt.Sprint(*m), "out of range 0-100")
		}
	}
	if lb := s.LoadBalancer; lb != nil {
		loadBalancer(fe, lb)
	}
	if fo := s.Failover; fo != nil {
		failover(fe, fo)
	}
}

// targetRefs checks the targets of a policy: at least one, each a
// Service or ServiceImport of the policy's namespace, none twice.
func targetRefs(fe *fieldErrors, f string, refs []TargetRef) {
	switch {
	case len(refs) == 0:
		fe.add(f, "", `at least one is required: a Service (group "") or a ServiceImport (group `+MCSGroup+`)`)
		return
	case len(refs) > MaxTargetRefs:
		fe.add(f, "", fmt.Sprintf("%d targetRefs, at most %d", len(refs), MaxTargetRefs))
		return
	}
	seen := map[TargetRef]int{}
	for i, t := range refs {
		tf := fmt.Sprintf("%s[%d]", f, i)
		switch {
		case t.Group == "" && t.Kind == KindService, t.Group == MCSGroup && t.Kind == KindServiceImport:
		case t.Kind == KindService:
			fe.add(tf+".group", short(t.Group), `must be "" (the core group) for kind Service`)
		case t.Kind == KindServiceImport:
			fe.add(tf+".group", short(t.Group), "must be "+MCSGroup+" for kind ServiceImport")
		default:
			fe.add(tf+".kind", short(t.Kind), `must be Service (group "") or ServiceImport (group `+MCSGroup+`)`)
		}
		if why := catalog.IsServiceName(t.Name); why != "" {
			fe.add(tf+".name", short(t.Name), why)
		}
		if first, dup := seen[t]; dup {
			fe.add(tf, t.Name, fmt.Sprintf("the same target as targetRefs[%d]", first))
		} else {
			seen[t] = i
		}
	}
}

func loadBalancer(fe *fieldErrors, lb *LoadBalancer) {
	switch lb.Algorithm {
	case "", LBLeastRequest, LBRoundRobin, LBRingHash:
	default:
		fe.add("spec.loadBalancer.algorithm", short(string(lb.Algorithm)), "must be LeastRequest, RoundRobin or RingHash")
	}
	ring := lb.Algorithm == LBRingHash
	if lb.RingHash != nil && !ring {
		fe.add("spec.loadBalancer.ringHash", "", "only with algorithm RingHash")
	}
	if rh := lb.RingHash; rh != nil && ring {
		if m := rh.MinimumRingSize; m != nil && (*m < 1 || *m > MaxRingSize) {
			fe.add("spec.loadBalancer.ringHash.minimumRingSize", fmt.Sprint(*m), fmt.Sprintf("out of range 1-%d", MaxRingSize))
		}
		if m := rh.MaximumRingSize; m != nil && (*m < 1 || *m > MaxRingSize) {
			fe.add("spec.loadBalancer.ringHash.maximumRingSize", fmt.Sprint(*m), fmt.Sprintf("out of range 1-%d", MaxRingSize))
		}
		if rh.MinimumRingSize != nil && rh.MaximumRingSize != nil && *rh.MaximumRingSize < *rh.MinimumRingSize {
			fe.add("spec.loadBalancer.ringHash.maximumRingSize", fmt.Sprint(*rh.MaximumRingSize), fmt.Sprintf("must not be smaller than minimumRingSize %d", *rh.MinimumRingSize))
		}
	}
	h := lb.HashKey
	switch {
	case h == nil && ring:
		fe.add("spec.loadBalancer.hashKey", "", "required with algorithm RingHash: header, cookie, queryParameter or sourceIP")
	case h != nil && !ring:
		fe.add("spec.loadBalancer.hashKey", "", "only with algorithm RingHash")
	case h != nil:
		n := 0
		if h.Header != "" {
			n++
			if why := headerName(h.Header); why != "" {
				fe.add("spec.loadBalancer.hashKey.header", short(h.Header), why)
			}
		}
		if h.Cookie != "" {
			n++
			if len(h.Cookie) > 256 || !cookieNameRE.MatchString(h.Cookie) {
				fe.add("spec.loadBalancer.hashKey.cookie", short(h.Cookie), "must be a cookie name (an HTTP token of at most 256 characters)")
			}
		}
		if h.QueryParameter != "" {
			n++
			if len(h.QueryParameter) > 256 {
				fe.add("spec.loadBalancer.hashKey.queryParameter", short(h.QueryParameter), "longer than 256 characters")
			}
		}
		if h.SourceIP {
			n++
		}
		if n != 1 {
			fe.add("spec.loadBalancer.hashKey", "", fmt.Sprintf("exactly one of header, cookie, queryParameter and sourceIP must be set, not %d", n))
		}
	}
}

func failover(fe *fieldErrors, fo *Failover) {
	if len(fo.Regions) > MaxFailoverRegions {
		fe.add("spec.failover.regions", "", fmt.Sprintf("%d regions, at most %d", len(fo.Regions), MaxFailoverRegions))
	} else {
		seen := map[string]int{}
		for i, r := range fo.Regions {
			f := fmt.Sprintf("spec.failover.regions[%d]", i)
			if why := catalog.IsDNS1123Label(r); why != "" {
				fe.add(f, short(r), why)
			}
			if first, dup := seen[r]; dup {
				fe.add(f, r, fmt.Sprintf("listed already as regions[%d]", first))
			} else {
				seen[r] = i
			}
		}
	}
	if len(fo.FailoverPriority) > MaxFailoverPriority {
		fe.add("spec.failover.failoverPriority", "", fmt.Sprintf("%d label keys, at most %d", len(fo.FailoverPriority), MaxFailoverPriority))
		return
	}
	seen := map[string]int{}
	for i, k := range fo.FailoverPriority {
		f := fmt.Sprintf("spec.failover.failoverPriority[%d]", i)
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			fe.add(f, short(k), "must be a label key such as topology.kubernetes.io/region: "+errs[0])
		}
		if first, dup := seen[k]; dup {
			fe.add(f, k, fmt.Sprintf("listed already as failoverPriority[%d]", first))
		} else {
			seen[k] = i
		}
	}
}

// positive checks that an optional duration is above zero.
func positive(fe *fieldErrors, f string, d *metav1.Duration) {
	if d != nil && d.Duration <= 0 {
		fe.add(f, d.Duration.String(), "must be positive")
	}
}

// nonNegative checks that an optional count is not below zero.
func nonNegative(fe *fieldErrors, f string, n *int32) {
	if n != nil && *n < 0 {
		fe.add(f, fmt.Sprint(*n), "must not be negative")
	}
}

// percent checks a share in percent: 0 to 100, at most 4 decimals (the
// resolution of a per-million fraction).
func percent(fe *fieldErrors, f string, p Percent) {
	v := float64(p)
	switch {
	case math.IsNaN(v) || v < 0 || v > 100:
		fe.add(f, fmt.Sprint(v), "out of range 0-100")
	case math.Abs(v*1e4-math.Round(v*1e4)) > 1e-6:
		fe.add(f, fmt.Sprint(v), "at most 4 decimals (a resolution of one in a million)")
	}
}

// PerMillion returns p as parts per million, as Envoy's
// FractionalPercent with denominator MILLION counts.
func (p Percent) PerMillion() uint32 {
	return uint32(math.Round(float64(p) * 1e4))
}

// maxFixedDelay bounds an injected delay.
const maxFixedDelay = time.Hour
