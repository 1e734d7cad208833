package xds

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"sync"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/clusterset"
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// ErrInvalidSnapshot is wrapped by every error about generated resources
// that fail validation; such a snapshot is never sent.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// ValidationError says which resource failed validation and why.
type ValidationError struct {
	// Reason is a short label for metrics: "resource" (a field rule of
	// one resource) or "consistency" (a reference to a missing resource).
	Reason string
	// Resource names the failing resource, when one does.
	Resource string
	Err      error
}

func (e *ValidationError) Error() string {
	if e.Resource != "" {
		return fmt.Sprintf("%s: %s %s: %v", ErrInvalidSnapshot, e.Reason, e.Resource, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", ErrInvalidSnapshot, e.Reason, e.Err)
}

// Unwrap lets errors.Is(err, ErrInvalidSnapshot) match.
func (e *ValidationError) Unwrap() []error { return []error{ErrInvalidSnapshot, e.Err} }

// Secrets are a node's own certificate and the trust bundle, in PEM.
type Secrets struct {
	// ChainPEM is the SVID leaf followed by intermediates.
	ChainPEM []byte
	// KeyPEM is the leaf's private key (PKCS#8).
	KeyPEM []byte
	// BundlePEM holds the trusted root certificates.
	BundlePEM []byte
}

// Built is one node's resources.
type Built struct {
	// Snapshot holds the node's resources, marshalled and shared with
	// nodes that receive the same; every type carries the hash of its
	// resources as version.
	Snapshot *Snapshot
	// Clusters explains every service port's endpoints, by EDS name.
	Clusters map[string]*plan.ClusterReport
}

// outbound is what every sidecar (or every proxyless client) receives
// regardless of its locality.
type outbound struct {
	clusters, listeners, routes *part
}

// endpoints are the EDS resources for one locality.
type endpoints struct {
	clas    *part
	reports map[string]*plan.ClusterReport
}

// gatewayParts are a gateway's resources for one locality.
type gatewayParts struct {
	clusters, listeners *part
	eds                 endpoints
}

// edsKey names what nodes share of endpoints: nodes of one role at one
// locality, whose labels agree on the keys an assignment compares
// (labels is their projection on those keys, naming.FormatLabels form;
// "" when no failoverPriority applies).
type edsKey struct {
	role   string
	loc    topology.Locality
	labels string
}

// Generator renders nodes' resources from the plan of one View. Parts
// shared between nodes (outbound clusters, endpoints per locality) are
// rendered once and reused; a Generator is safe for concurrent use.
type Generator struct {
	s    Settings
	plan *plan.Plan
	// policies are the AuthorizationPolicies the plan enforces.
	policies []policy.AuthorizationPolicy
	// traffic is the local traffic set the plan routes from.
	traffic policy.Traffic
	// addrs are the services' virtual addresses that sidecars mesh: the
	// ClusterSetIP (clusterset.FromView) first, then the local cluster's
	// ClusterIPs (serviceAddrs).
	addrs map[catalog.ServiceKey][]netip.Addr

	// prevEDS and prevOutbound are what the previous view's generator
	// built (never changed once set), reused for services that did not
	// change; nil when the views differ in what every service depends on
	// (clusters, gateways, RTTs).
	prevEDS      map[edsKey]map[catalog.ServiceKey]*svcEndpoints
	prevOutbound map[outKey]*outbound
	// prevInbound is what the previous generator rendered of sidecars'
	// inbound sides, reused where the plan's inbound is unchanged.
	prevInbound map[inKey]*inboundParts

	labelKeysOnce sync.Once
	labelKeys     []string // built on first use: failoverLabelKeys

	mu         sync.Mutex // guards the following
	outbound   map[outKey]*outbound
	eds        map[edsKey]*endpoints
	localEDS   map[edsKey]*endpoints
	svcEDS     map[edsKey]map[catalog.ServiceKey]*svcEndpoints
	gateway    map[topology.Locality]*gatewayParts
	consistent map[string]error
	inbound    map[inKey]*inboundParts
}

// inKey names what sidecars share of their inbound side: their workload,
// its app ports (FormatAppPorts) and the Key of their telemetry.
type inKey struct {
	ns, workload, ports, tel string
	// node is the node's ID when the plan has quotas (each node has its
	// own shares), else empty: the workload's nodes share one render.
	node string
}

// inboundParts are a sidecar's inbound clusters and listeners, and the
// plan they were rendered from.
type inboundParts struct {
	in                  plan.Inbound
	clusters, listeners *part
}

// inboundFor returns sidecar n's inbound parts: rendered once per
// workload, app ports and telemetry, and taken from the previous
// generator when the plan's inbound for them did not change, so that a
// change elsewhere in the view re-renders no node's inbound side.
func (g *Generator) inboundFor(n Node, tel *plan.Telemetry) *inboundParts {
	k := inKey{ns: n.Namespace, workload: n.Workload, ports: FormatAppPorts(n.AppPorts), tel: tel.Key()}
	if g.plan.HasQuotas() {
		k.node = n.ID
	}
	g.mu.Lock()
	ip := g.inbound[k]
	prev := g.prevInbound[k]
	g.mu.Unlock()
	if ip != nil {
		return ip
	}
	in := g.plan.InboundNode(n.Namespace, n.Workload, k.node, n.appPort)
	if prev != nil && reflect.DeepEqual(prev.in, in) {
		ip = prev
	} else {
		ic, il := g.renderInbound(in, tel)
		ip = &inboundParts{in: in, clusters: newPart(ic), listeners: newPart(il)}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if got := g.inbound[k]; got != nil {
		return got // another build made it meanwhile
	}
	g.inbound[k] = ip
	return ip
}

// svcEndpoints are one service's assignments (one per port, ports in
// order) as nodes of one role and locality receive them. A Generator for
// a later view reuses them when the service is unchanged.
type svcEndpoints struct {
	svc     catalog.ImportedService // the input, compared with the next view's
	clas    []*resource
	reports []*plan.ClusterReport
	err     error
}

// NewGenerator checks the settings and returns a generator for view v.
func NewGenerator(s Settings, v *catalog.View) (*Generator, error) {
	return newGenerator(s, v, nil)
}

// NewGeneratorWithPolicies is NewGenerator that also renders inbound
// authorization from policies (each valid, see policy.Validate).
func NewGeneratorWithPolicies(s Settings, v *catalog.View, policies []policy.AuthorizationPolicy) (*Generator, error) {
	return newGenerator(s, v, policies)
}

// NewGeneratorWithTraffic is NewGeneratorWithPolicies that also routes
// from the local cluster's traffic set t (each object valid): its
// consumer routes and the FaultInjections they use.
func NewGeneratorWithTraffic(s Settings, v *catalog.View, policies []policy.AuthorizationPolicy, t policy.Traffic) (*Generator, error) {
	return newGeneratorTraffic(s, v, policies, t, nil)
}

func newGenerator(s Settings, v *catalog.View, policies []policy.AuthorizationPolicy) (*Generator, error) {
	return newGeneratorTraffic(s, v, policies, policy.Traffic{}, nil)
}

// newGeneratorTraffic builds a generator; prev, when set, lends its memo
// of decoded producer policies.
func newGeneratorTraffic(s Settings, v *catalog.View, policies []policy.AuthorizationPolicy, t policy.Traffic, prev *plan.Plan) (*Generator, error) {
	s, err := s.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Generator{
		s: s,
		plan: plan.New(s.TrustDomain, s.Policy, v).ReuseDecoded(prev).WithAuthorization(policies).WithTraffic(t).
			WithRateLimitInput(plan.RateLimitInput{QuotaShares: s.QuotaShares}),
		policies:   policies,
		traffic:    t,
		addrs:      serviceAddrs(clusterset.FromView(s.ClusterSetPrefix, v), v),
		outbound:   make(map[outKey]*outbound),
		eds:        make(map[edsKey]*endpoints),
		localEDS:   make(map[edsKey]*endpoints),
		svcEDS:     make(map[edsKey]map[catalog.ServiceKey]*svcEndpoints),
		gateway:    make(map[topology.Locality]*gatewayParts),
		consistent: make(map[string]error),
		inbound:    make(map[inKey]*inboundParts),
	}, nil
}

// next returns a generator for view v with g's settings that reuses
// what g built for services that did not change: a change of one
// endpoint's health rebuilds only that service's assignments.
func (g *Generator) next(v *catalog.View) (*Generator, error) {
	return g.nextWith(v, g.policies, g.traffic)
}

// withPolicies returns a generator for g's view that enforces policies;
// everything but the sidecars' inbound listeners is reused.
func (g *Generator) withPolicies(policies []policy.AuthorizationPolicy) (*Generator, error) {
	return g.nextWith(g.View(), policies, g.traffic)
}

// withTraffic returns a generator for g's view that routes from t;
// assignments are reused.
func (g *Generator) withTraffic(t policy.Traffic) (*Generator, error) {
	return g.nextWith(g.View(), g.policies, t)
}

func (g *Generator) nextWith(v *catalog.View, policies []policy.AuthorizationPolicy, t policy.Traffic) (*Generator, error) {
	n, err := newGeneratorTraffic(g.s, v, policies, t, g.plan)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n.prevInbound = maps.Clone(g.inbound) // checked against the new plan at use
	if !n.plan.SameClusters(g.plan) {
		return n, nil // every assignment depends on the clusters
	}
	n.prevEDS = maps.Clone(g.svcEDS)
	if n.plan.SameClientView(g.plan) && sameRouting(g, n) && maps.EqualFunc(g.addrs, n.addrs, slices.Equal) {
		n.prevOutbound = maps.Clone(g.outbound)
	}
	return n, nil
}

// serviceAddrs lists each service's virtual addresses: its ClusterSetIP
// from csIPs first (sidecars take the first as the one DNS answers),
// then its LocalClusterIPs. A service with neither has no entry.
func serviceAddrs(csIPs map[catalog.ServiceKey]netip.Addr, v *catalog.View) map[catalog.ServiceKey][]netip.Addr {
	out := make(map[catalog.ServiceKey][]netip.Addr, len(csIPs))
	for i := range v.Services {
		svc := &v.Services[i]
		var addrs []netip.Addr
		if ip, ok := csIPs[svc.Key()]; ok {
			addrs = append(addrs, ip)
		}
		for _, s := range svc.LocalClusterIPs {
			if ip, err := netip.ParseAddr(s); err == nil && !slices.Contains(addrs, ip) {
				addrs = append(addrs, ip)
			}
		}
		if len(addrs) > 0 {
			out[svc.Key()] = addrs
		}
	}
	return out
}

// View returns the view the generator builds from.
func (g *Generator) View() *catalog.View { return g.plan.View() }

// Build returns node n's resources. sec may be nil for nodes that get no
// secrets (proxyless clients, or a node whose certificate is not issued
// yet). A snapshot that fails validation is returned as an error wrapping
// ErrInvalidSnapshot.
func (g *Generator) Build(n Node, sec *Secrets) (*Built, error) {
	var sp *part
	if sec != nil && (n.Role == naming.RoleSidecar || n.Role == naming.RoleGateway) {
		sp = newPart(renderSecrets(sec))
	}
	return g.build(n, sp)
}

// build assembles node n's snapshot from shared parts; secrets is the
// identity's secrets part (built once per certificate) or nil.
func (g *Generator) build(n Node, secrets *part) (*Built, error) {
	loc := g.plan.NodeLocality(n.Cluster, n.Locality)
	var clusters, eps, listeners, routes, secs []*part
	var reports map[string]*plan.ClusterReport
	switch n.Role {
	case naming.RoleGateway:
		gp := g.gatewayFor(loc)
		clusters, eps, listeners = []*part{gp.clusters}, []*part{gp.eds.clas}, []*part{gp.listeners}
		reports = gp.eds.reports
		if secrets != nil {
			secs = append(secs, secrets)
		}
	default:
		var tel *plan.Telemetry
		if n.Role == naming.RoleSidecar {
			tel = g.plan.Telemetry(n.Namespace, n.Workload)
		}
		out := g.outboundFor(n.Role, g.plan.RouteNamespace(n.Namespace), tel)
		e := g.endpointsFor(n.Role, loc, n.Labels)
		clusters, eps, listeners, routes = []*part{out.clusters}, []*part{e.clas}, []*part{out.listeners}, []*part{out.routes}
		reports = e.reports
		if le := g.localEndpointsFor(n.Role, loc); le != nil {
			eps = append(eps, le.clas)
			reports = maps.Clone(reports)
			maps.Copy(reports, le.reports)
		}
		switch n.Role {
		case naming.RoleSidecar:
			ip := g.inboundFor(n, tel)
			clusters = append(clusters, ip.clusters)
			listeners = append(listeners, ip.listeners)
		case naming.RoleProxyless:
			listeners = append(listeners, newPart(g.renderProxylessServers(g.plan.Inbound(n.Namespace, n.Workload, n.appPort))))
		}
		if secrets != nil {
			secs = append(secs, secrets)
		}
	}
	for _, ps := range [][]*part{clusters, eps, listeners, routes, secs} {
		for _, p := range ps {
			if p.err != nil {
				return nil, p.err
			}
		}
	}
	snap := &Snapshot{}
	snap.sets[typeCluster] = newTypeSet(clusters)
	snap.sets[typeEndpoint] = newTypeSet(eps)
	snap.sets[typeListener] = newTypeSet(listeners)
	snap.sets[typeRoute] = newTypeSet(routes)
	snap.sets[typeSecret] = newTypeSet(secs)
	// Whether every EDS cluster has its assignment depends on the
	// clusters and on the assignments' names, not on their content: a
	// change of endpoints alone needs no new check.
	key := clusters[0].version + "/" + listeners[0].version
	for _, p := range eps {
		key += "/" + strconv.FormatUint(p.names, 16)
	}
	if err := g.checkConsistent(snap, key); err != nil {
		return nil, err
	}
	return &Built{Snapshot: snap, Clusters: reports}, nil
}

// checkConsistent runs the cache's reference check once per combination
// of shared parts: per-node parts (inbound, secrets) reference nothing
// that EDS or RDS must hold.
func (g *Generator) checkConsistent(snap *Snapshot, key string) error {
	g.mu.Lock()
	err, ok := g.consistent[key]
	g.mu.Unlock()
	if ok {
		return err
	}
	if cerr := snap.Consistent(); cerr != nil {
		err = &ValidationError{Reason: "consistency", Err: cerr}
	}
	g.mu.Lock()
	g.consistent[key] = err
	g.mu.Unlock()
	return err
}

// outKey names what nodes of one role share outside endpoints: ns is
// the namespace whose consumer routes they see ("" for none), tel the
// Key of the telemetry their HCMs carry ("" for none: every namespace
// without a TelemetryPolicy shares the same part).
type outKey struct {
	role, ns, tel string
}

// outboundFor returns the outbound part of nodes of role whose callers
// see ns's consumer routes and whose HCMs carry tel (sidecars only).
// Parts with telemetry share the clusters and routes of the part
// without; only their listeners are rendered again.
func (g *Generator) outboundFor(role, ns string, tel *plan.Telemetry) *outbound {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.outboundForLocked(role, ns, tel)
}

func (g *Generator) outboundForLocked(role, ns string, tel *plan.Telemetry) *outbound {
	k := outKey{role, ns, tel.Key()}
	if o, ok := g.outbound[k]; ok {
		return o
	}
	if o, ok := g.prevOutbound[k]; ok {
		g.outbound[k] = o
		return o
	}
	var o *outbound
	switch {
	case role == naming.RoleProxyless:
		o = g.renderProxyless(ns)
	case tel != nil:
		base := g.outboundForLocked(role, ns, nil)
		o = &outbound{clusters: base.clusters, routes: base.routes, listeners: newPart(g.renderOutboundListeners(tel))}
	default:
		o = g.renderOutbound(ns)
	}
	g.outbound[k] = o
	return o
}

// localEndpointsFor returns the local-only subsets' assignments for
// nodes of role at loc, nil when no route sends to a subset.
func (g *Generator) localEndpointsFor(role string, loc topology.Locality) *endpoints {
	if len(g.plan.LocalSubsets()) == 0 {
		return nil
	}
	if role != naming.RoleProxyless {
		role = naming.RoleSidecar
	}
	k := edsKey{role: role, loc: loc}
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := g.localEDS[k]; ok {
		return e
	}
	p, reports := g.renderLocalEndpoints(role, loc)
	e := &endpoints{clas: p, reports: reports}
	g.localEDS[k] = e
	return e
}

// sameRouting reports whether what clients receive outside endpoints
// depends on the same routing inputs in both generators: the local
// traffic set and every service's producer policies.
func sameRouting(a, b *Generator) bool {
	if !reflect.DeepEqual(a.traffic, b.traffic) {
		return false
	}
	x, y := a.plan.View().Services, b.plan.View().Services
	for i := range x {
		if !reflect.DeepEqual(x[i].Policies, y[i].Policies) {
			return false
		}
	}
	return true
}

func (g *Generator) gatewayFor(loc topology.Locality) *gatewayParts {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gp, ok := g.gateway[loc]; ok {
		return gp
	}
	k := edsKey{role: naming.RoleGateway, loc: loc}
	services := g.plan.GatewayServices()
	ses := make([]*svcEndpoints, len(services))
	for i, svc := range services {
		ses[i] = g.serviceEndpointsLocked(k, svc, nil)
	}
	clusters, listeners := g.renderGateway(services)
	gp := &gatewayParts{clusters: newPart(clusters), listeners: newPart(listeners), eds: joinEndpoints(ses)}
	g.gateway[loc] = gp
	return gp
}

// endpointsFor returns the EDS part of client nodes of role at loc with
// labels. Nodes share it when their labels agree on every key some
// service's failoverPriority names; each service's assignments are
// shared wider, by nodes whose labels agree on that service's keys (all
// nodes of role and loc, for a service without failoverPriority).
func (g *Generator) endpointsFor(role string, loc topology.Locality, labels map[string]string) *endpoints {
	if role != naming.RoleProxyless {
		role = naming.RoleSidecar
	}
	k := edsKey{role: role, loc: loc, labels: naming.FormatLabels(project(labels, g.failoverLabelKeys()))}
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := g.eds[k]; ok {
		return e
	}
	services := g.plan.View().Services
	ses := make([]*svcEndpoints, len(services))
	for i := range services {
		svc := &services[i]
		client := project(labels, g.plan.FailoverLabels(svc))
		ses[i] = g.serviceEndpointsLocked(edsKey{role: role, loc: loc, labels: naming.FormatLabels(client)}, svc, client)
	}
	e := joinEndpoints(ses)
	g.eds[k] = &e
	return &e
}

// joinEndpoints is the EDS part of several services' assignments; its
// error is the first of theirs.
func joinEndpoints(ses []*svcEndpoints) endpoints {
	var clas []*resource
	var first error
	reports := map[string]*plan.ClusterReport{}
	for _, se := range ses {
		clas = append(clas, se.clas...)
		for _, r := range se.reports {
			reports[r.Name] = r
		}
		if first == nil {
			first = se.err
		}
	}
	p := partOf(clas)
	p.err = first
	return endpoints{clas: p, reports: reports}
}

// serviceEndpointsLocked returns svc's assignments for nodes of k, whose
// labels on svc's failover keys are labels, from the previous view's
// generator when svc did not change.
func (g *Generator) serviceEndpointsLocked(k edsKey, svc *catalog.ImportedService, labels map[string]string) *svcEndpoints {
	key := svc.Key()
	if se := g.svcEDS[k][key]; se != nil {
		return se // rendered already for another combination of labels
	}
	se := g.prevEDS[k][key]
	if se == nil || !reflect.DeepEqual(&se.svc, svc) {
		se = g.renderEndpoints(k, svc, labels)
	}
	g.keepLocked(k, key, se)
	return se
}

func (g *Generator) keepLocked(k edsKey, key catalog.ServiceKey, se *svcEndpoints) {
	m := g.svcEDS[k]
	if m == nil {
		m = make(map[catalog.ServiceKey]*svcEndpoints, len(g.plan.View().Services))
		g.svcEDS[k] = m
	}
	m[key] = se
}

// failoverLabelKeys lists, sorted, every label key some service's
// assignments compare with the client's (plan.FailoverLabels): the keys
// that decide which EDS part a client node receives.
func (g *Generator) failoverLabelKeys() []string {
	g.labelKeysOnce.Do(func() {
		seen := map[string]bool{}
		services := g.plan.View().Services
		for i := range services {
			for _, k := range g.plan.FailoverLabels(&services[i]) {
				if !seen[k] {
					seen[k] = true
					g.labelKeys = append(g.labelKeys, k)
				}
			}
		}
		slices.Sort(g.labelKeys)
	})
	return g.labelKeys
}

// project returns labels' entries of keys, nil when there are none.
func project(labels map[string]string, keys []string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := labels[k]; ok {
			if out == nil {
				out = make(map[string]string, len(keys))
			}
			out[k] = v
		}
	}
	return out
}
