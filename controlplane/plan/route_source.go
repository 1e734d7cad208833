package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/policy"
)

// This file finds the routes a table is built from: consumer routes
// from the local traffic set, producer routes and policies from the
// view (decoded once per digest).

// WithTraffic returns a plan of the same view, topology policy and
// authorization that also plans the local cluster's consumer routes from
// t (each object valid). Producer routes and policies come from the
// view (ImportedService.Policies), the local cluster's own included;
// from t only routes in a caller's namespace whose parent is a service
// of another namespace (consumer routes) and the FaultInjections they
// use are read.
func (p *Plan) WithTraffic(t policy.Traffic) *Plan {
	n := p.clone()
	n.traffic = t
	n.consumer = indexConsumers(&t)
	return n
}

// clone copies p's inputs into a new plan (lazy indexes are rebuilt).
func (p *Plan) clone() *Plan {
	return &Plan{
		trustDomain: p.trustDomain, view: p.view, policy: p.policy, authz: p.authz,
		traffic: p.traffic, consumer: p.consumer, decoded: p.decoded,
		rateLimit: p.rateLimit,
	}
}

// Traffic returns the local traffic set the plan routes consumer routes
// from. Callers must not change it.
func (p *Plan) Traffic() policy.Traffic { return p.traffic }

// consumerKey is a caller namespace and a service.
type consumerKey struct {
	ns  string
	svc catalog.ServiceKey
}

// consumerRoutes are the consumer routes of one caller namespace for
// one service.
type consumerRoutes struct {
	http []*gatewayv1.HTTPRoute
	grpc []*gatewayv1.GRPCRoute
}

// indexConsumers finds t's consumer routes by caller namespace and
// parent service.
func indexConsumers(t *policy.Traffic) map[consumerKey]*consumerRoutes {
	idx := map[consumerKey]*consumerRoutes{}
	get := func(k consumerKey) *consumerRoutes {
		c := idx[k]
		if c == nil {
			c = &consumerRoutes{}
			idx[k] = c
		}
		return c
	}
	for i := range t.HTTPRoutes {
		r := &t.HTTPRoutes[i]
		for _, svc := range consumerParents(r.Namespace, r.Spec.ParentRefs) {
			c := get(consumerKey{r.Namespace, svc})
			c.http = append(c.http, r)
		}
	}
	for i := range t.GRPCRoutes {
		r := &t.GRPCRoutes[i]
		for _, svc := range consumerParents(r.Namespace, r.Spec.ParentRefs) {
			c := get(consumerKey{r.Namespace, svc})
			c.grpc = append(c.grpc, r)
		}
	}
	return idx
}

// consumerParents lists the services of other namespaces that parents
// (of a route in ns) name, each once.
func consumerParents(ns string, parents []gatewayv1.ParentReference) []catalog.ServiceKey {
	var out []catalog.ServiceKey
	for _, pr := range parents {
		group, kind, refNS := parentRef(pr, ns)
		if !isServiceKind(group, kind) || refNS == ns {
			continue
		}
		k := catalog.ServiceKey{Namespace: refNS, Name: string(pr.Name)}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func parentRef(pr gatewayv1.ParentReference, routeNS string) (group, kind, ns string) {
	group, kind, ns = "", policy.KindService, routeNS
	if pr.Group != nil {
		group = string(*pr.Group)
	}
	if pr.Kind != nil {
		kind = string(*pr.Kind)
	}
	if pr.Namespace != nil {
		ns = string(*pr.Namespace)
	}
	return group, kind, ns
}

func isServiceKind(group, kind string) bool {
	return (group == "" && kind == policy.KindService) || (group == policy.MCSGroup && kind == policy.KindServiceImport)
}

// parentsPort reports whether parents (of a route in routeNS) attach the
// route to port of service ns/name: a parent naming the service with no
// port and no section name attaches to every port.
func parentsPort(parents []gatewayv1.ParentReference, routeNS, ns, name string, port catalog.Port) bool {
	for _, pr := range parents {
		group, kind, refNS := parentRef(pr, routeNS)
		if !policy.NamesService(group, kind, string(pr.Name), refNS, ns, name) {
			continue
		}
		if pr.Port != nil && *pr.Port != port.Port {
			continue
		}
		if pr.SectionName != nil && string(*pr.SectionName) != port.Name {
			continue
		}
		return true
	}
	return false
}

// RouteNamespace returns the namespace whose consumer routes callers in
// ns see, or "" when ns has none: every namespace without consumer
// routes sees the same tables (the renderer shares them).
func (p *Plan) RouteNamespace(ns string) string {
	for k := range p.consumer {
		if k.ns == ns {
			return ns
		}
	}
	return ""
}

// decodeCache memoises decoded producer policies by digest.
type decodeCache struct {
	mu sync.Mutex // guards m
	m  map[string]decoded
}

type decoded struct {
	t   policy.Traffic
	err error
}

// ReuseDecoded returns a plan like p that shares prev's memo of decoded
// producer policies, less the digests p's view no longer carries.
func (p *Plan) ReuseDecoded(prev *Plan) *Plan {
	n := p.clone()
	n.decoded = &decodeCache{m: map[string]decoded{}}
	if prev == nil || prev.decoded == nil {
		return n
	}
	prev.decoded.mu.Lock()
	defer prev.decoded.mu.Unlock()
	for i := range p.view.Services {
		if pol := p.view.Services[i].Policies; pol != nil {
			if d, ok := prev.decoded.m[pol.Digest]; ok {
				n.decoded.m[pol.Digest] = d
			}
		}
	}
	return n
}

// producer returns svc's producer routes and policies, decoded once per
// digest; an error leaves them out (the merge validated them, so it
// means a bug or a peer of another version).
func (p *Plan) producer(svc *catalog.ImportedService) (policy.Traffic, error) {
	if svc.Policies == nil {
		return policy.Traffic{}, nil
	}
	c := p.decoded
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.m[svc.Policies.Digest]; ok && svc.Policies.Digest != "" {
		return d.t, d.err
	}
	t, err := policy.DecodePolicies(svc.Policies)
	if err != nil {
		err = fmt.Errorf("producer policies of %s from cluster %s: %w", svc.Key(), svc.PoliciesCluster, err)
	}
	c.m[svc.Policies.Digest] = decoded{t, err}
	return t, err
}

// DecodeErrors lists the services whose producer policies do not decode,
// with why.
func (p *Plan) DecodeErrors() []error {
	var out []error
	for i := range p.view.Services {
		if _, err := p.producer(&p.view.Services[i]); err != nil {
			out = append(out, err)
		}
	}
	return out
}

// service finds ns/name in the view.
func (p *Plan) service(ns, name string) *catalog.ImportedService {
	svcs := p.view.Services
	i, ok := slices.BinarySearchFunc(svcs, catalog.ServiceKey{Namespace: ns, Name: name}, func(s catalog.ImportedService, k catalog.ServiceKey) int {
		return cmp.Or(strings.Compare(s.Namespace, k.Namespace), strings.Compare(s.Name, k.Name))
	})
	if ok {
		return &svcs[i]
	}
	for i := range svcs { // not sorted: a hand-made view
		if svcs[i].Namespace == ns && svcs[i].Name == name {
			return &svcs[i]
		}
	}
	return nil
}
