package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
)

// This file plans routes (docs/xds.md, "Routes"): which HTTPRoute and
// GRPCRoute rules apply to a service port for callers in one namespace,
// in Gateway API precedence order, with their backends resolved to
// cluster names. GAMMA semantics: a producer route (in the service's own
// namespace) travels with the service's export and applies to every
// caller; a consumer route (in the caller's namespace, parent in
// another) replaces the producer routes for that namespace's callers in
// this cluster.

// MissingBackendCluster is the weighted cluster a share of requests goes
// to when its backend does not resolve: it has no CDS resource and the
// sidecar answers 500 for it (Gateway API: an invalid backendRef's share
// gets 500).
const MissingBackendCluster = "fedmesh-missing-backend"

// DefaultRouteName is the name of the route of a service port that no
// HTTPRoute or GRPCRoute applies to.
const DefaultRouteName = "default"

// Route origins.
const (
	OriginDefault  = "default"
	OriginProducer = "producer"
	OriginConsumer = "consumer"
)

// RouteTable is the virtual host of one service port as callers in one
// namespace see it.
type RouteTable struct {
	// Service is the service port routed.
	Service naming.ServicePort `json:"service"`
	// Origin says where Routes come from: OriginDefault (no route
	// applies: one route to the whole service), OriginProducer or
	// OriginConsumer.
	Origin string `json:"origin"`
	// PoliciesCluster is the cluster whose producer policies are in
	// force for the service, when any are.
	PoliciesCluster string `json:"policiesCluster,omitempty"`
	// Routes are tried in order; a request matching none gets 404 (when
	// Origin is not OriginDefault: Gateway API semantics).
	Routes []Route `json:"routes"`
	// Notes record what was left out and why.
	Notes []string `json:"notes,omitempty"`
}

// PathKind is how a route matches the path.
type PathKind string

// Path match kinds. PathPrefix matches whole segments: "/foo" matches
// /foo and /foo/bar, not /foobar; a value ending in "/" (only "/" for
// HTTPRoute, "/SERVICE/" for GRPCRoute) matches as a plain prefix.
const (
	PathExact  PathKind = "exact"
	PathPrefix PathKind = "prefix"
	PathRegex  PathKind = "regex"
)

// PathMatch matches a request's path (without the query).
type PathMatch struct {
	Kind  PathKind `json:"kind"`
	Value string   `json:"value"`
}

// RouteMatch is one match of a rule: every part must match.
type RouteMatch struct {
	Path    PathMatch     `json:"path"`
	Headers []HeaderMatch `json:"headers,omitempty"`
	// Query matches query parameters (Name is the parameter).
	Query []HeaderMatch `json:"query,omitempty"`
	// Method matches the HTTP method exactly; empty matches any.
	Method string `json:"method,omitempty"`
}

// Route is one match of one rule of one route, as one Envoy route.
type Route struct {
	// Name is NS/ROUTE/rule-I, with /match-J appended when the rule has
	// several matches; DefaultRouteName for the default route.
	Name string `json:"name"`
	// Kind is HTTPRoute or GRPCRoute; empty for the default route.
	Kind string `json:"kind,omitempty"`
	// Route is the route object's namespace/name.
	Route string `json:"route,omitempty"`
	Rule  int    `json:"rule"`
	// MatchIndex is the index of Match in the rule's matches.
	MatchIndex int        `json:"matchIndex"`
	Match      RouteMatch `json:"match"`

	// Backends share the requests by weight (weight-0 backends are left
	// out). Empty with Redirect nil: every request is answered
	// DirectStatus.
	Backends []Backend `json:"backends,omitempty"`
	// DirectStatus, when not 0, is the status every request gets (500:
	// no backend, or every weight 0).
	DirectStatus uint32 `json:"directStatus,omitempty"`
	// Redirect answers with a redirect instead of forwarding.
	Redirect *Redirect `json:"redirect,omitempty"`
	// Timeout bounds the whole request; nil is the mesh default, 0 none.
	Timeout *time.Duration `json:"timeout,omitempty"`
	// Retry is nil for the mesh default.
	Retry *Retry `json:"retry,omitempty"`
	// Fault is the FaultInjection applied, if any.
	Fault   *Fault   `json:"fault,omitempty"`
	Mirrors []Mirror `json:"mirrors,omitempty"`
	// RequestHeaders and ResponseHeaders are the rule's header modifiers.
	RequestHeaders  HeaderModifier `json:"requestHeaders,omitzero"`
	ResponseHeaders HeaderModifier `json:"responseHeaders,omitzero"`
	Rewrite         *Rewrite       `json:"rewrite,omitempty"`
	// Hash is the ring hash key of the service's ResiliencePolicy.
	Hash *policy.HashKey `json:"hash,omitempty"`

	// order is the precedence key, set by the table's sort.
	order precedence
}

// Backend is one weighted destination of a route.
type Backend struct {
	// Cluster is the CDS name: the whole service (ServiceImport), its
	// local-only subset (Service) or MissingBackendCluster.
	Cluster string `json:"cluster"`
	Weight  uint32 `json:"weight"`
	// Service is NS/NAME:PORT of the backend, when it names one.
	Service string `json:"service,omitempty"`
	// Missing says why the backend does not resolve.
	Missing         string         `json:"missing,omitempty"`
	RequestHeaders  HeaderModifier `json:"requestHeaders,omitzero"`
	ResponseHeaders HeaderModifier `json:"responseHeaders,omitzero"`
}

// Header is a header name and value.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// HeaderModifier sets, adds and removes headers.
type HeaderModifier struct {
	Set    []Header `json:"set,omitempty"`
	Add    []Header `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// Empty reports whether m changes nothing.
func (m HeaderModifier) Empty() bool { return len(m.Set) == 0 && len(m.Add) == 0 && len(m.Remove) == 0 }

// Redirect is a RequestRedirect filter.
type Redirect struct {
	Scheme   string `json:"scheme,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	Port     uint32 `json:"port,omitempty"`
	// FullPath replaces the whole path; PrefixPath replaces the matched
	// prefix. At most one is set.
	FullPath   *string `json:"fullPath,omitempty"`
	PrefixPath *string `json:"prefixPath,omitempty"`
	// StatusCode is 301, 302 (default), 303, 307 or 308.
	StatusCode int `json:"statusCode"`
}

// Rewrite is a URLRewrite filter.
type Rewrite struct {
	Hostname string `json:"hostname,omitempty"`
	// FullPath replaces the whole path; PrefixPath replaces the matched
	// prefix (the route's path match is then a PathPrefix). At most one.
	FullPath   *string `json:"fullPath,omitempty"`
	PrefixPath *string `json:"prefixPath,omitempty"`
}

// Mirror sends a copy of Percent percent of requests to Cluster.
type Mirror struct {
	Cluster string  `json:"cluster"`
	Percent float64 `json:"percent"`
	Missing string  `json:"missing,omitempty"`
}

// Retry is a route's retry policy.
type Retry struct {
	// On are Envoy retry_on conditions.
	On          []string `json:"on"`
	StatusCodes []uint32 `json:"statusCodes,omitempty"`
	Attempts    uint32   `json:"attempts"`
	// PerTryTimeout bounds each attempt; 0 none.
	PerTryTimeout time.Duration `json:"perTryTimeout,omitempty"`
	// BaseInterval and MaxInterval space attempts; 0 is Envoy's default.
	BaseInterval time.Duration `json:"baseInterval,omitempty"`
	MaxInterval  time.Duration `json:"maxInterval,omitempty"`
}

// routeSource is the routes one table is built from, and where the
// FaultInjections they name are found.
type routeSource struct {
	origin string
	http   []*gatewayv1.HTTPRoute
	grpc   []*gatewayv1.GRPCRoute
	faults []policy.FaultInjection
}

// Routes plans the virtual host of port of svc for callers in namespace
// clientNS: the consumer routes of clientNS when it has any for svc,
// else svc's producer routes, else the default route.
func (p *Plan) Routes(clientNS string, svc *catalog.ImportedService, port catalog.Port) *RouteTable {
	sp := naming.ServicePort{Namespace: svc.Namespace, Name: svc.Name, Port: port.Port}
	t := &RouteTable{Service: sp, Origin: OriginDefault, PoliciesCluster: svc.PoliciesCluster}
	prod, err := p.producer(svc)
	if err != nil {
		t.Notes = append(t.Notes, err.Error()+": left out")
	}
	res := resilienceFor(&prod, svc)
	var src routeSource
	if c := p.consumer[consumerKey{clientNS, svc.Key()}]; c != nil && clientNS != svc.Namespace {
		src = routeSource{origin: OriginConsumer, faults: p.traffic.Faults}
		for _, r := range c.http {
			if parentsPort(r.Spec.ParentRefs, r.Namespace, svc.Namespace, svc.Name, port) {
				src.http = append(src.http, r)
			}
		}
		for _, r := range c.grpc {
			if parentsPort(r.Spec.ParentRefs, r.Namespace, svc.Namespace, svc.Name, port) {
				src.grpc = append(src.grpc, r)
			}
		}
	}
	if !IsHTTP(port) {
		t.Routes = []Route{p.defaultRoute(sp, res)}
		return t
	}
	if len(src.http) == 0 && len(src.grpc) == 0 {
		src = routeSource{origin: OriginProducer, faults: prod.Faults}
		for i := range prod.HTTPRoutes {
			r := &prod.HTTPRoutes[i]
			if r.Namespace == svc.Namespace && parentsPort(r.Spec.ParentRefs, r.Namespace, svc.Namespace, svc.Name, port) {
				src.http = append(src.http, r)
			}
		}
		for i := range prod.GRPCRoutes {
			r := &prod.GRPCRoutes[i]
			if r.Namespace == svc.Namespace && parentsPort(r.Spec.ParentRefs, r.Namespace, svc.Namespace, svc.Name, port) {
				src.grpc = append(src.grpc, r)
			}
		}
	}
	if len(src.http) == 0 && len(src.grpc) == 0 {
		t.Routes = []Route{p.defaultRoute(sp, res)}
		return t
	}
	t.Origin = src.origin
	b := &routeBuilder{p: p, t: t, parent: sp, res: res, faults: src.faults}
	for _, r := range src.http {
		b.httpRoute(r)
	}
	for _, r := range src.grpc {
		b.grpcRoute(r)
	}
	slices.SortStableFunc(t.Routes, func(a, b Route) int { return a.order.compare(&b.order) })
	return t
}

// defaultRoute sends every path to the whole service.
func (p *Plan) defaultRoute(sp naming.ServicePort, res *policy.ResilienceSpec) Route {
	r := Route{
		Name:     DefaultRouteName,
		Match:    RouteMatch{Path: PathMatch{Kind: PathPrefix, Value: "/"}},
		Backends: []Backend{{Cluster: sp.OutboundCluster(), Weight: 1, Service: sp.String()}},
	}
	applyResilience(&r, res, nil, nil)
	return r
}

// routeBuilder translates the rules of the routes of one table.
type routeBuilder struct {
	p      *Plan
	t      *RouteTable
	parent naming.ServicePort
	res    *policy.ResilienceSpec
	faults []policy.FaultInjection
}

func (b *routeBuilder) note(format string, args ...any) {
	b.t.Notes = append(b.t.Notes, fmt.Sprintf(format, args...))
}

// ruleName is NS/NAME/rule-I[/match-J].
func ruleName(key string, rule, match, matches int) string {
	n := key + "/rule-" + strconv.Itoa(rule)
	if matches > 1 {
		n += "/match-" + strconv.Itoa(match)
	}
	return n
}

func (b *routeBuilder) httpRoute(r *gatewayv1.HTTPRoute) {
	key := r.Namespace + "/" + r.Name
	for ri := range r.Spec.Rules {
		rule := &r.Spec.Rules[ri]
		base := Route{Kind: policy.KindHTTPRoute, Route: key, Rule: ri}
		ok := b.httpFilters(&base, key, ri, rule.Filters, r.Namespace)
		if !ok {
			continue
		}
		b.httpBackends(&base, key, ri, r.Namespace, rule.BackendRefs)
		var timeout, perTry *time.Duration
		if to := rule.Timeouts; to != nil {
			timeout = b.duration(key, ri, "timeouts.request", to.Request)
			perTry = b.duration(key, ri, "timeouts.backendRequest", to.BackendRequest)
		}
		applyResilience(&base, b.res, timeout, perTry)
		if rule.Retry != nil {
			base.Retry = b.ruleRetry(key, ri, rule.Retry, base.Retry)
		}
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gatewayv1.HTTPRouteMatch{{}}
		}
		for mi := range matches {
			m, err := httpMatch(&matches[mi])
			if err != nil {
				b.note("%s rule %d match %d left out: %v", key, ri, mi, err)
				continue
			}
			rt := base
			rt.Name, rt.MatchIndex, rt.Match = ruleName(key, ri, mi, len(matches)), mi, m
			if rt.Rewrite != nil && rt.Rewrite.PrefixPath != nil && m.Path.Kind != PathPrefix {
				b.note("%s rule %d match %d left out: URLRewrite ReplacePrefixMatch needs a PathPrefix match", key, ri, mi)
				continue
			}
			if rt.Redirect != nil && rt.Redirect.PrefixPath != nil && m.Path.Kind != PathPrefix {
				b.note("%s rule %d match %d left out: RequestRedirect ReplacePrefixMatch needs a PathPrefix match", key, ri, mi)
				continue
			}
			rt.order = precedenceOf(&m, r.CreationTimestamp.Time, key, ri, mi)
			b.t.Routes = append(b.t.Routes, rt)
		}
	}
}

func (b *routeBuilder) grpcRoute(r *gatewayv1.GRPCRoute) {
	key := r.Namespace + "/" + r.Name
	for ri := range r.Spec.Rules {
		rule := &r.Spec.Rules[ri]
		base := Route{Kind: policy.KindGRPCRoute, Route: key, Rule: ri}
		if !b.grpcFilters(&base, key, ri, rule.Filters, r.Namespace) {
			continue
		}
		refs := make([]gatewayv1.HTTPBackendRef, len(rule.BackendRefs))
		for i, br := range rule.BackendRefs {
			refs[i] = gatewayv1.HTTPBackendRef{BackendRef: br.BackendRef, Filters: grpcToHTTPFilters(br.Filters)}
		}
		b.httpBackends(&base, key, ri, r.Namespace, refs)
		applyResilience(&base, b.res, nil, nil)
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gatewayv1.GRPCRouteMatch{{}}
		}
		for mi := range matches {
			m, err := grpcMatch(&matches[mi])
			if err != nil {
				b.note("%s rule %d match %d left out: %v", key, ri, mi, err)
				continue
			}
			rt := base
			rt.Name, rt.MatchIndex, rt.Match = ruleName(key, ri, mi, len(matches)), mi, m
			rt.order = precedenceOf(&m, r.CreationTimestamp.Time, key, ri, mi)
			b.t.Routes = append(b.t.Routes, rt)
		}
	}
}

// LocalSubsets lists the service ports some route table of the plan
// sends to by a Service backendRef (the local-only subset), sorted:
// those need the local subset's cluster and assignment.
func (p *Plan) LocalSubsets() []naming.ServicePort {
	p.subsetsOnce.Do(func() {
		seen := map[naming.ServicePort]bool{}
		add := func(t *RouteTable) {
			for _, r := range t.Routes {
				for _, b := range r.Backends {
					if sp, subset, err := naming.ParseCluster(b.Cluster); err == nil && subset == naming.SubsetLocal {
						seen[sp] = true
					}
				}
				for _, m := range r.Mirrors {
					if sp, subset, err := naming.ParseCluster(m.Cluster); err == nil && subset == naming.SubsetLocal {
						seen[sp] = true
					}
				}
			}
		}
		namespaces := map[string]bool{"": true}
		for k := range p.consumer {
			namespaces[k.ns] = true
		}
		for i := range p.view.Services {
			svc := &p.view.Services[i]
			for _, port := range Ports(svc) {
				if !IsHTTP(port) {
					continue
				}
				for ns := range namespaces {
					add(p.Routes(ns, svc, port))
				}
			}
		}
		p.subsets = slices.SortedFunc(func(yield func(naming.ServicePort) bool) {
			for sp := range seen {
				if !yield(sp) {
					return
				}
			}
		}, func(a, b naming.ServicePort) int {
			return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name), cmp.Compare(a.Port, b.Port))
		})
	})
	return p.subsets
}
