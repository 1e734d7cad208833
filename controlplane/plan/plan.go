package plan

import (
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// DefaultServiceAccount is the service account of an endpoint that names
// none, as in Kubernetes.
const DefaultServiceAccount = "default"

// Plan decides, for one view of the federation, what every node receives.
// Its methods are pure functions of the view and the policy; a Plan is
// safe for concurrent use and never changes the view.
type Plan struct {
	trustDomain string
	view        *catalog.View
	policy      topology.Policy

	// authz are the AuthorizationPolicies in force, sorted.
	authz []policy.AuthorizationPolicy
	// traffic is the local cluster's traffic set; consumer indexes its
	// consumer routes (route.go).
	traffic  policy.Traffic
	consumer map[consumerKey]*consumerRoutes
	// decoded memoises producer policies by digest; shared between
	// plans derived from one another.
	decoded *decodeCache
	// rateLimit sizes quota shares (ratelimit.go).
	rateLimit RateLimitInput

	subsetsOnce sync.Once
	subsets     []naming.ServicePort // built on first use

	workloadsOnce sync.Once
	workloads     map[workloadKey][]endpointRef // built on first use
}

// New returns the plan of view v (nil means empty) in trust domain td.
// RTTs that the federation layer measured (v.Clusters[].RTT) join the
// policy's configured ones.
func New(td string, policy topology.Policy, v *catalog.View) *Plan {
	if v == nil {
		v = &catalog.View{}
	}
	rtt := maps.Clone(policy.RTT)
	for name, c := range v.Clusters {
		if c.RTT > 0 {
			if rtt == nil {
				rtt = make(map[string]time.Duration)
			}
			rtt[name] = c.RTT
		}
	}
	policy.RTT = rtt
	return &Plan{trustDomain: td, view: v, policy: policy, decoded: &decodeCache{m: map[string]decoded{}}}
}

// View returns the view the plan decides from.
func (p *Plan) View() *catalog.View { return p.view }

// NodeLocality completes a node's locality: the cluster defaults to the
// node's cluster, and region and zone, when both are empty, to that
// cluster's in the view.
func (p *Plan) NodeLocality(cluster string, loc topology.Locality) topology.Locality {
	if loc.Cluster == "" {
		loc.Cluster = cluster
	}
	if c, ok := p.view.Clusters[loc.Cluster]; ok && loc.Region == "" && loc.Zone == "" {
		loc.Region, loc.Zone = c.Locality.Region, c.Locality.Zone
	}
	return loc
}

// SpiffeID is spiffe://TD/ns/NS/sa/SA; an empty service account is
// DefaultServiceAccount.
func (p *Plan) SpiffeID(ns, sa string) string {
	if sa == "" {
		sa = DefaultServiceAccount
	}
	return "spiffe://" + p.trustDomain + "/ns/" + ns + "/sa/" + sa
}

// ServicePort is one port of one service in the view, as every client
// node sees it.
type ServicePort struct {
	naming.ServicePort
	// Port is the catalog's port (name, number, app protocol).
	Port catalog.Port
	// HTTP is true for HTTP, HTTP/2 and gRPC ports, which are routed;
	// other ports are relayed as opaque TCP.
	HTTP bool
	// Identities are the distinct SPIFFE IDs of the endpoints serving
	// the port, sorted: the server identities a client accepts.
	Identities []string
}

// IsHTTP reports whether port p is routed as HTTP.
func IsHTTP(p catalog.Port) bool {
	switch p.AppProtocol {
	case catalog.AppHTTP, catalog.AppHTTP2, catalog.AppGRPC:
		return true
	}
	return false
}

// ServicePorts lists svc's ports as clients see them, sorted by number.
func (p *Plan) ServicePorts(svc *catalog.ImportedService) []ServicePort {
	out := make([]ServicePort, 0, len(svc.Ports))
	for _, port := range Ports(svc) {
		out = append(out, ServicePort{
			ServicePort: naming.ServicePort{Namespace: svc.Namespace, Name: svc.Name, Port: port.Port},
			Port:        port,
			HTTP:        IsHTTP(port),
			Identities:  p.identities(svc, port),
		})
	}
	return out
}

// SameClientView reports whether views a and b give every client node
// the same service ports: same services in the same order, same ports,
// same endpoint identities per port. Then what clients receive outside
// endpoints (clusters, listeners, routes) is the same.
func (p *Plan) SameClientView(prev *Plan) bool {
	a, b := prev.view.Services, p.view.Services
	if len(a) != len(b) || prev.trustDomain != p.trustDomain {
		return false
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Namespace != y.Namespace || x.Name != y.Name || !slices.Equal(x.Ports, y.Ports) {
			return false
		}
		for _, port := range x.Ports {
			if !slices.Equal(prev.identities(x, port), p.identities(y, port)) {
				return false
			}
		}
	}
	return true
}

// SameClusters reports whether the two plans' views agree on everything
// every assignment depends on: the local cluster and the clusters'
// localities, gateways and RTTs.
func (p *Plan) SameClusters(prev *Plan) bool {
	return p.view.Local == prev.view.Local && maps.EqualFunc(p.view.Clusters, prev.view.Clusters, catalog.ClusterInfo.Equal)
}

// identities lists the distinct SPIFFE IDs of svc's endpoints serving
// port, sorted.
func (p *Plan) identities(svc *catalog.ImportedService, port catalog.Port) []string {
	seen := map[string]bool{}
	for i := range svc.Endpoints {
		ep := &svc.Endpoints[i]
		if ep.PortName == port.Name {
			seen[p.SpiffeID(svc.Namespace, ep.ServiceAccount)] = true
		}
	}
	ids := slices.Collect(maps.Keys(seen))
	sort.Strings(ids)
	return ids
}

// Ports lists svc's ports sorted by number: the order of its clusters,
// listeners and assignments.
func Ports(svc *catalog.ImportedService) []catalog.Port {
	ports := slices.Clone(svc.Ports)
	sort.SliceStable(ports, func(i, j int) bool { return ports[i].Port < ports[j].Port })
	return ports
}

func firstPort(svc *catalog.ImportedService) int32 {
	first := int32(0)
	for _, port := range svc.Ports {
		if first == 0 || port.Port < first {
			first = port.Port
		}
	}
	return first
}
