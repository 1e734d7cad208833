package controlplane

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
)

// Unpublished is a producer route or policy of this cluster's traffic
// set that no export carries, because this cluster does not export its
// service. It is in force nowhere, not even here: producer routes and
// policies reach every cluster's plan, this one's included, only through
// the view, with their service's export.
type Unpublished struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Service is the service it is a producer object of.
	Service string `json:"service"`
}

// producers joins the source's export sets with the producer routes and
// policies of its traffic set: every export carries the Policies
// (policy.ProducerOf, policy.EncodePolicies) of its service, and each
// change of either is a new set for the writer. The store's SetExports
// writes only the exports whose bytes changed, so a changed route
// re-publishes only the exports whose Policies changed.
//
// setExports and setTraffic may be called from any goroutine.
type producers struct {
	log        *slog.Logger
	encodeErrs prometheus.Counter
	// out receives the newest joined set; an older one nobody took is
	// dropped (it has capacity 1 and is only sent to under mu).
	out chan []catalog.Export

	mu sync.Mutex // guards the following
	// exports is the source's last set; haveExports is false before the
	// first.
	exports     []catalog.Export
	haveExports bool
	// traffic is the source's traffic set; trafficReady is false while a
	// traffic source has not read its input once (always true without
	// one).
	traffic      policy.Traffic
	trafficReady bool
	// attached are the last Policies per service, kept when encoding a
	// service's policies fails.
	attached    map[catalog.ServiceKey]*catalog.Policies
	unpublished []Unpublished
	waitLogged  bool
	// gaveUp is set by stopWaiting: exports are written without waiting
	// for the traffic any longer.
	gaveUp bool
	// quotaRecords, when set, gives the clusterset-quota records each
	// export carries (quotas.go); set before the first export set.
	quotaRecords func(catalog.ServiceKey) []catalog.QuotaRecord
}

// refresh makes a new joined set from the last inputs: the quota
// records changed.
func (p *producers) refresh() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pushLocked()
}

// trafficGrace is how long exports wait for the traffic source's first
// read (see pushLocked) before they are written without their policies,
// so that a traffic source that cannot read (a missing permission) does
// not keep the cluster's services from the federation.
const trafficGrace = 30 * time.Second

// waitTraffic calls stopWaiting after trafficGrace, unless ctx ends
// first.
func (p *producers) waitTraffic(ctx context.Context) {
	t := time.NewTimer(trafficGrace)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
		p.stopWaiting()
	}
}

// stopWaiting makes exports go out without waiting for the traffic
// source any longer; they get their policies once it is ready.
func (p *producers) stopWaiting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.trafficReady || p.gaveUp {
		return
	}
	p.gaveUp = true
	p.log.Warn("the traffic source has not read its objects in time; exports are written without producer policies until it does", "waited", trafficGrace)
	p.pushLocked()
}

func newProducers(log *slog.Logger, encodeErrs prometheus.Counter, hasTraffic bool) *producers {
	return &producers{
		log: log, encodeErrs: encodeErrs,
		out:          make(chan []catalog.Export, 1),
		trafficReady: !hasTraffic,
		attached:     make(map[catalog.ServiceKey]*catalog.Policies),
	}
}

// setExports takes a new export set from the source.
func (p *producers) setExports(exports []catalog.Export) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exports, p.haveExports = exports, true
	p.pushLocked()
}

// setTraffic takes a new traffic set from the source.
func (p *producers) setTraffic(t policy.Traffic, ready bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.traffic, p.trafficReady = t, ready
	p.pushLocked()
}

// followTraffic feeds src's traffic sets to setTraffic until ctx is done.
func (p *producers) followTraffic(ctx context.Context, src source.TrafficSource) {
	for {
		t, ready, changed := src.Traffic()
		p.setTraffic(t, ready)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// Unpublished returns the producer objects no export carries.
func (p *producers) Unpublished() []Unpublished {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.unpublished)
}

// pushLocked joins exports and traffic and leaves the set in out. Until
// both the exports and the traffic have been read once (or stopWaiting
// was called) nothing is sent: writing exports without their policies
// would withdraw them from every peer until the traffic arrives.
func (p *producers) pushLocked() {
	if !p.haveExports {
		return
	}
	if !p.trafficReady && !p.gaveUp {
		if !p.waitLogged {
			p.waitLogged = true
			p.log.Info("exports wait for the traffic source's first read, so that they carry their producer policies")
		}
		return
	}
	joined := make([]catalog.Export, len(p.exports))
	exported := make(map[catalog.ServiceKey]bool, len(p.exports))
	for i, e := range p.exports {
		k := e.Service.Key()
		exported[k] = true
		own := policy.ProducerOf(&p.traffic, k.Namespace, k.Name)
		pol, err := policy.EncodePolicies(own)
		if err != nil {
			p.encodeErrs.Inc()
			pol = p.attached[k]
			p.log.Warn("cannot encode the producer policies of a service; its export keeps the last good ones", "service", k.String(), "err", err)
		}
		if pol == nil {
			delete(p.attached, k)
		} else {
			p.attached[k] = pol
		}
		e.Policies = pol
		if p.quotaRecords != nil {
			e.Quotas = p.quotaRecords(k)
		}
		joined[i] = e
	}
	for k := range p.attached {
		if !exported[k] {
			delete(p.attached, k)
		}
	}
	unpublished := unpublishedOf(&p.traffic, exported)
	if !slices.Equal(unpublished, p.unpublished) {
		p.unpublished = unpublished
		if len(unpublished) > 0 {
			p.log.Warn("producer routes or policies not published, so in force nowhere: this cluster does not export their service", "objects", unpublished)
		}
	}
	select {
	case <-p.out: // drop the older set nobody wrote yet
	default:
	}
	p.out <- joined
}

// unpublishedOf lists the producer objects of t (routes whose parentRefs
// name a service of their own namespace, ResiliencePolicies targeting
// one) whose service is not in exported, once per object and service.
func unpublishedOf(t *policy.Traffic, exported map[catalog.ServiceKey]bool) []Unpublished {
	var out []Unpublished
	add := func(kind, ns, name string, svc catalog.ServiceKey) {
		if exported[svc] {
			return
		}
		u := Unpublished{Kind: kind, Namespace: ns, Name: name, Service: svc.String()}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	for i := range t.HTTPRoutes {
		r := &t.HTTPRoutes[i]
		for _, svc := range producerParents(r.Namespace, r.Spec.ParentRefs) {
			add(policy.KindHTTPRoute, r.Namespace, r.Name, svc)
		}
	}
	for i := range t.GRPCRoutes {
		r := &t.GRPCRoutes[i]
		for _, svc := range producerParents(r.Namespace, r.Spec.ParentRefs) {
			add(policy.KindGRPCRoute, r.Namespace, r.Name, svc)
		}
	}
	for i := range t.Resilience {
		rp := &t.Resilience[i]
		for _, ref := range rp.Spec.TargetRefs {
			svc := catalog.ServiceKey{Namespace: rp.Namespace, Name: ref.Name}
			if policy.Targets([]policy.TargetRef{ref}, rp.Namespace, svc.Namespace, svc.Name) {
				add(policy.KindResiliencePolicy, rp.Namespace, rp.Name, svc)
			}
		}
	}
	return out
}

// producerParents returns the services of namespace ns that parentRefs
// of a route in ns name: those the route is a producer route of.
func producerParents(ns string, refs []gatewayv1.ParentReference) []catalog.ServiceKey {
	var out []catalog.ServiceKey
	for _, pr := range refs {
		svc := catalog.ServiceKey{Namespace: ns, Name: string(pr.Name)}
		if policy.RouteParents([]gatewayv1.ParentReference{pr}, ns, svc.Namespace, svc.Name) && !slices.Contains(out, svc) {
			out = append(out, svc)
		}
	}
	return out
}
