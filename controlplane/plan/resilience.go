package plan

import (
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// This file plans what a ResiliencePolicy changes: the clusters of the
// service it targets (load balancing, limits, outlier detection,
// timeouts), the retries and timeouts of its routes, and the failover
// order of its assignments. Producer ResiliencePolicies travel with the
// service's export (ImportedService.Policies); what no policy sets is
// the mesh default (the renderer's Settings).

// LBAlgorithm is a cluster's load-balancing algorithm.
type LBAlgorithm string

// Load-balancing algorithms; "" is the mesh default.
const (
	LBLeastRequest LBAlgorithm = "LEAST_REQUEST"
	LBRoundRobin   LBAlgorithm = "ROUND_ROBIN"
	LBRingHash     LBAlgorithm = "RING_HASH"
)

// ClusterSettings are a service's cluster settings from its
// ResiliencePolicy; a zero field is the mesh default.
type ClusterSettings struct {
	// Policy is the ResiliencePolicy's namespace/name, when one applies.
	Policy string      `json:"policy,omitempty"`
	LB     LBAlgorithm `json:"lb,omitempty"`
	// MinRingSize and MaxRingSize size the ring (RING_HASH).
	MinRingSize uint64 `json:"minRingSize,omitempty"`
	MaxRingSize uint64 `json:"maxRingSize,omitempty"`

	MaxConnections     uint32 `json:"maxConnections,omitempty"`
	MaxPendingRequests uint32 `json:"maxPendingRequests,omitempty"`
	MaxRequests        uint32 `json:"maxRequests,omitempty"`
	MaxRetries         uint32 `json:"maxRetries,omitempty"`

	Consecutive5xx            uint32        `json:"consecutive5xx,omitempty"`
	ConsecutiveGatewayFailure uint32        `json:"consecutiveGatewayFailure,omitempty"`
	OutlierInterval           time.Duration `json:"outlierInterval,omitempty"`
	BaseEjectionTime          time.Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent is nil for the default (0 is a value).
	MaxEjectionPercent *uint32 `json:"maxEjectionPercent,omitempty"`

	ConnectTimeout time.Duration `json:"connectTimeout,omitempty"`
	// IdleTimeout closes idle upstream connections; 0: not set.
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
}

// resilienceFor returns the spec of the first (by namespace/name)
// ResiliencePolicy of prod that targets svc, or nil.
func resilienceFor(prod *policy.Traffic, svc *catalog.ImportedService) *policy.ResilienceSpec {
	if p := resiliencePolicy(prod, svc); p != nil {
		return &p.Spec
	}
	return nil
}

func resiliencePolicy(prod *policy.Traffic, svc *catalog.ImportedService) *policy.ResiliencePolicy {
	var best *policy.ResiliencePolicy
	for i := range prod.Resilience {
		p := &prod.Resilience[i]
		if p.Namespace != svc.Namespace || !policy.Targets(p.Spec.TargetRefs, p.Namespace, svc.Namespace, svc.Name) {
			continue
		}
		if best == nil || p.Key() < best.Key() {
			best = p
		}
	}
	return best
}

// ClusterSettings plans svc's cluster settings from its producer
// ResiliencePolicy.
func (p *Plan) ClusterSettings(svc *catalog.ImportedService) ClusterSettings {
	prod, _ := p.producer(svc)
	rp := resiliencePolicy(&prod, svc)
	if rp == nil {
		return ClusterSettings{}
	}
	cs := ClusterSettings{Policy: rp.Key()}
	s := &rp.Spec
	if lb := s.LoadBalancer; lb != nil {
		switch lb.Algorithm {
		case policy.LBLeastRequest:
			cs.LB = LBLeastRequest
		case policy.LBRoundRobin:
			cs.LB = LBRoundRobin
		case policy.LBRingHash:
			cs.LB = LBRingHash
			if rh := lb.RingHash; rh != nil {
				cs.MinRingSize = u64(rh.MinimumRingSize)
				cs.MaxRingSize = u64(rh.MaximumRingSize)
			}
		}
	}
	if l := s.ConnectionLimits; l != nil {
		cs.MaxConnections, cs.MaxPendingRequests = u32(l.MaxConnections), u32(l.MaxPendingRequests)
		cs.MaxRequests, cs.MaxRetries = u32(l.MaxRequests), u32(l.MaxRetries)
	}
	if o := s.OutlierDetection; o != nil {
		cs.Consecutive5xx, cs.ConsecutiveGatewayFailure = u32(o.Consecutive5xx), u32(o.ConsecutiveGatewayErrors)
		cs.OutlierInterval, cs.BaseEjectionTime = dur(o.Interval), dur(o.BaseEjectionTime)
		if o.MaxEjectionPercent != nil {
			v := u32(o.MaxEjectionPercent)
			cs.MaxEjectionPercent = &v
		}
	}
	if t := s.Timeouts; t != nil {
		cs.ConnectTimeout, cs.IdleTimeout = dur(t.Connect), dur(t.Idle)
	}
	return cs
}

func u32(v *int32) uint32 {
	if v == nil || *v < 0 {
		return 0
	}
	return uint32(*v)
}

func u64(v *int64) uint64 {
	if v == nil || *v < 0 {
		return 0
	}
	return uint64(*v)
}

func dur(d *metav1.Duration) time.Duration {
	if d == nil || d.Duration < 0 {
		return 0
	}
	return d.Duration
}

// applyResilience fills r's timeout, retry and hash key from res (the
// parent service's ResiliencePolicy) where the rule set none: timeout
// and perTry are the rule's own (nil: unset).
func applyResilience(r *Route, res *policy.ResilienceSpec, timeout, perTry *time.Duration) {
	r.Timeout = timeout
	if res == nil {
		if perTry != nil {
			r.Retry = &Retry{PerTryTimeout: *perTry}
		}
		return
	}
	if r.Timeout == nil && res.Timeouts != nil && res.Timeouts.Request != nil {
		d := res.Timeouts.Request.Duration
		r.Timeout = &d
	}
	if rt := res.Retry; rt != nil {
		out := &Retry{Attempts: u32(rt.Attempts)}
		if rt.Attempts == nil {
			out.Attempts = 2
		}
		for _, on := range rt.RetryOn {
			out.On = append(out.On, string(on))
		}
		if len(out.On) == 0 {
			out.On = []string{"connect-failure", "reset", "gateway-error", "unavailable"}
		}
		for _, c := range rt.StatusCodes {
			out.StatusCodes = append(out.StatusCodes, uint32(c))
		}
		if len(out.StatusCodes) > 0 && !slices.Contains(out.On, string(policy.RetryOnRetriableStatusCodes)) {
			out.On = append(out.On, string(policy.RetryOnRetriableStatusCodes))
		}
		if rt.PerTryTimeout != nil {
			out.PerTryTimeout = rt.PerTryTimeout.Duration
		}
		if b := rt.Backoff; b != nil {
			if b.BaseInterval != nil {
				out.BaseInterval = b.BaseInterval.Duration
			}
			if b.MaxInterval != nil {
				out.MaxInterval = b.MaxInterval.Duration
			}
		}
		r.Retry = out
	}
	if perTry != nil {
		if r.Retry == nil {
			r.Retry = &Retry{}
		}
		r.Retry.PerTryTimeout = *perTry
	}
	if lb := res.LoadBalancer; lb != nil && lb.Algorithm == policy.LBRingHash && lb.HashKey != nil {
		hk := *lb.HashKey
		r.Hash = &hk
	}
}

// TopologyPolicy returns the failover order of svc's assignments: the
// plan's policy, with the failover of svc's producer ResiliencePolicy
// (regions in order after the client's own region, label priority)
// when it sets one. clientRegion is the client's region.
func (p *Plan) TopologyPolicy(svc *catalog.ImportedService, clientRegion string) topology.Policy {
	prod, _ := p.producer(svc)
	rp := resiliencePolicy(&prod, svc)
	if rp == nil || rp.Spec.Failover == nil {
		return p.policy
	}
	tp := p.policy
	f := rp.Spec.Failover
	if len(f.Regions) > 0 {
		tp.Failover = nil
		for _, r := range f.Regions {
			if r == clientRegion || r == "" || clientRegion == "" {
				continue
			}
			rule := topology.FailoverRule{From: clientRegion, To: r}
			if !slices.Contains(tp.Failover, rule) {
				tp.Failover = append(tp.Failover, rule)
			}
		}
	}
	if len(f.FailoverPriority) > 0 {
		tp.FailoverPriority = slices.Clone(f.FailoverPriority)
	}
	return tp
}

// FailoverLabels returns the label keys svc's assignments compare with
// the client's labels (its failover's failoverPriority), most
// significant first; nil when none. Clients whose labels agree on these
// keys receive the same assignments of svc.
func (p *Plan) FailoverLabels(svc *catalog.ImportedService) []string {
	return p.TopologyPolicy(svc, "").FailoverPriority
}
