package xds

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
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
	Clusters map[string]*ClusterReport
}

// ClusterReport explains one EDS cluster to a human.
type ClusterReport struct {
	Name      string           `json:"name"`
	Service   string           `json:"service"`
	Port      int32            `json:"port"`
	Endpoints []EndpointReport `json:"endpoints"`
}

// EndpointReport explains one catalog endpoint as one node receives it.
type EndpointReport struct {
	// Address is the endpoint's own address:port.
	Address  string `json:"address"`
	Cluster  string `json:"cluster"`
	Workload string `json:"workload,omitempty"`
	Locality string `json:"locality"`
	// Sent is false when the node does not receive the endpoint;
	// NotSentReason says why.
	Sent          bool   `json:"sent"`
	NotSentReason string `json:"notSentReason,omitempty"`
	// SentAs is the address the node receives: the endpoint's own, or
	// the gateway of its cluster (ViaGateway).
	SentAs         string `json:"sentAs,omitempty"`
	ViaGateway     bool   `json:"viaGateway,omitempty"`
	SNI            string `json:"sni,omitempty"`
	Priority       int    `json:"priority"`
	PriorityReason string `json:"priorityReason,omitempty"`
	Healthy        bool   `json:"healthy"`
	HealthReason   string `json:"healthReason"`
	// Weight is the load balancing weight of the LbEndpoint sent.
	Weight uint32 `json:"weight,omitempty"`
}

// outbound is what every sidecar (or every proxyless client) receives
// regardless of its locality.
type outbound struct {
	clusters, listeners, routes *part
}

// endpoints are the EDS resources for one locality.
type endpoints struct {
	clas    *part
	reports map[string]*ClusterReport
}

// gatewayParts are a gateway's resources for one locality.
type gatewayParts struct {
	clusters, listeners *part
	eds                 endpoints
}

type edsKey struct {
	role string
	loc  topology.Locality
}

// Generator builds nodes' resources from one View. Results shared
// between nodes (outbound clusters, endpoints per locality) are built
// once and reused; a Generator is safe for concurrent use.
type Generator struct {
	s      Settings
	view   *catalog.View
	policy topology.Policy

	// prevEDS and prevOutbound are what the previous view's generator
	// built (never changed once set), reused for services that did not
	// change; nil when the views differ in what every service depends on
	// (clusters, gateways, RTTs).
	prevEDS      map[edsKey]map[catalog.ServiceKey]*svcEndpoints
	prevOutbound map[string]*outbound

	mu         sync.Mutex // guards the following
	outbound   map[string]*outbound
	eds        map[edsKey]*endpoints
	svcEDS     map[edsKey]map[catalog.ServiceKey]*svcEndpoints
	gateway    map[topology.Locality]*gatewayParts
	consistent map[string]error
	workloads  map[workloadKey][]endpointRef // built on first use
}

// svcEndpoints are one service's assignments (one per port, ports in
// order) as nodes of one role and locality receive them. A Generator for
// a later view reuses them when the service is unchanged.
type svcEndpoints struct {
	svc     catalog.ImportedService // the input, compared with the next view's
	clas    []*resource
	reports []*ClusterReport
	err     error
}

// NewGenerator checks the settings and returns a generator for view v.
func NewGenerator(s Settings, v *catalog.View) (*Generator, error) {
	s, err := s.withDefaults()
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = &catalog.View{}
	}
	g := &Generator{
		s:          s,
		view:       v,
		policy:     s.Policy,
		outbound:   make(map[string]*outbound),
		eds:        make(map[edsKey]*endpoints),
		svcEDS:     make(map[edsKey]map[catalog.ServiceKey]*svcEndpoints),
		gateway:    make(map[topology.Locality]*gatewayParts),
		consistent: make(map[string]error),
	}
	// RTTs measured by the federation layer join the configured ones.
	rtt := maps.Clone(s.Policy.RTT)
	for name, c := range v.Clusters {
		if c.RTT > 0 {
			if rtt == nil {
				rtt = make(map[string]time.Duration)
			}
			rtt[name] = c.RTT
		}
	}
	g.policy.RTT = rtt
	return g, nil
}

// next returns a generator for view v with g's settings that reuses
// what g built for services that did not change: a change of one
// endpoint's health rebuilds only that service's assignments.
func (g *Generator) next(v *catalog.View) (*Generator, error) {
	n, err := NewGenerator(g.s, v)
	if err != nil {
		return nil, err
	}
	if v.Local != g.view.Local || !maps.Equal(v.Clusters, g.view.Clusters) {
		return n, nil // every assignment depends on the clusters
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n.prevEDS = maps.Clone(g.svcEDS)
	if sameOutbound(g.view.Services, v.Services, g.identities) {
		n.prevOutbound = maps.Clone(g.outbound)
	}
	return n, nil
}

// sameOutbound reports whether two service lists give the same outbound
// clusters, listeners and routes: same services in the same order, same
// ports, same endpoint identities per port.
func sameOutbound(a, b []catalog.ImportedService, ids func(*catalog.ImportedService, catalog.Port) []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Namespace != y.Namespace || x.Name != y.Name || !slices.Equal(x.Ports, y.Ports) {
			return false
		}
		for _, p := range x.Ports {
			if !slices.Equal(ids(x, p), ids(y, p)) {
				return false
			}
		}
	}
	return true
}

// View returns the view the generator builds from.
func (g *Generator) View() *catalog.View { return g.view }

// Build returns node n's resources. sec may be nil for nodes that get no
// secrets (gateways, proxyless clients). A snapshot that fails validation
// is returned as an error wrapping ErrInvalidSnapshot.
func (g *Generator) Build(n Node, sec *Secrets) (*Built, error) {
	var sp *part
	if sec != nil && n.Role == naming.RoleSidecar {
		sp = newPart(secretResources(sec))
	}
	return g.build(n, sp)
}

// build assembles node n's snapshot from shared parts; secrets is the
// identity's secrets part (built once per certificate) or nil.
func (g *Generator) build(n Node, secrets *part) (*Built, error) {
	loc := g.nodeLocality(n)
	var clusters, eps, listeners, routes, secs []*part
	var reports map[string]*ClusterReport
	switch n.Role {
	case naming.RoleGateway:
		gp := g.gatewayFor(loc)
		clusters, eps, listeners = []*part{gp.clusters}, []*part{gp.eds.clas}, []*part{gp.listeners}
		reports = gp.eds.reports
	default:
		out := g.outboundFor(n.Role)
		e := g.endpointsFor(n.Role, loc)
		clusters, eps, listeners, routes = []*part{out.clusters}, []*part{e.clas}, []*part{out.listeners}, []*part{out.routes}
		reports = e.reports
		if n.Role == naming.RoleSidecar {
			ic, il := g.inbound(n)
			clusters = append(clusters, ic)
			listeners = append(listeners, il)
			if secrets != nil {
				secs = append(secs, secrets)
			}
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
	if err := g.checkConsistent(snap, clusters[0].version+"/"+eps[0].version+"/"+listeners[0].version); err != nil {
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

// nodeLocality completes a node's locality from its cluster's.
func (g *Generator) nodeLocality(n Node) topology.Locality {
	loc := n.Locality
	if loc.Cluster == "" {
		loc.Cluster = n.Cluster
	}
	if c, ok := g.view.Clusters[loc.Cluster]; ok && loc.Region == "" && loc.Zone == "" {
		loc.Region, loc.Zone = c.Locality.Region, c.Locality.Zone
	}
	return loc
}

// servicePorts yields every port of every service, ports sorted by number.
func sortedPorts(svc *catalog.ImportedService) []catalog.Port {
	ports := slices.Clone(svc.Ports)
	sort.SliceStable(ports, func(i, j int) bool { return ports[i].Port < ports[j].Port })
	return ports
}

func spOf(svc *catalog.ImportedService, p catalog.Port) naming.ServicePort {
	return naming.ServicePort{Namespace: svc.Namespace, Name: svc.Name, Port: p.Port}
}

func firstPort(svc *catalog.ImportedService) int32 {
	first := int32(0)
	for _, p := range svc.Ports {
		if first == 0 || p.Port < first {
			first = p.Port
		}
	}
	return first
}

func portString(p int32) string { return strconv.Itoa(int(p)) }

// identities lists the distinct SPIFFE IDs of a service's endpoints
// serving port p, sorted.
func (g *Generator) identities(svc *catalog.ImportedService, p catalog.Port) []string {
	seen := map[string]bool{}
	for i := range svc.Endpoints {
		ep := &svc.Endpoints[i]
		if ep.PortName == p.Name {
			seen[g.s.spiffeID(svc.Namespace, ep.ServiceAccount)] = true
		}
	}
	ids := slices.Collect(maps.Keys(seen))
	sort.Strings(ids)
	return ids
}

func (g *Generator) outboundFor(role string) *outbound {
	g.mu.Lock()
	defer g.mu.Unlock()
	if o, ok := g.outbound[role]; ok {
		return o
	}
	if o, ok := g.prevOutbound[role]; ok {
		g.outbound[role] = o
		return o
	}
	var o *outbound
	if role == naming.RoleProxyless {
		o = g.buildProxyless()
	} else {
		o = g.buildOutbound()
	}
	g.outbound[role] = o
	return o
}

// buildOutbound makes a sidecar's outbound clusters, listeners and routes.
func (g *Generator) buildOutbound() *outbound {
	var clusters, listeners, routes []types.Resource
	vhosts := map[int32][]*routev3.VirtualHost{}
	for i := range g.view.Services {
		svc := &g.view.Services[i]
		for _, p := range sortedPorts(svc) {
			sp := spOf(svc, p)
			name := sp.OutboundCluster()
			clusters = append(clusters, g.s.edsCluster(name, clusterOptions{
				tls: true, lb: clusterv3.Cluster_LEAST_REQUEST, sni: sp.SNI(),
				sans: g.identities(svc, p), alpn: alpn(p), outlier: true,
			}))
			var filter *listenerv3.Filter
			if isHTTP(p) {
				vhosts[p.Port] = append(vhosts[p.Port], g.s.virtualHost(sp, true))
				filter = &listenerv3.Filter{
					Name: wellknown.HTTPConnectionManager,
					ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&hcmv3.HttpConnectionManager{
						CodecType:  hcmv3.HttpConnectionManager_AUTO,
						StatPrefix: name,
						RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
							ConfigSource:    adsSource(),
							RouteConfigName: portString(p.Port),
						}},
						HttpFilters: []*hcmv3.HttpFilter{routerFilter()},
					})},
				}
			} else {
				filter = tcpProxyFilter(name)
			}
			listeners = append(listeners, &listenerv3.Listener{
				Name:         name,
				Address:      socketAddress("0.0.0.0", uint32(p.Port)),
				BindToPort:   wrapperspb.Bool(false),
				FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{filter}}},
			})
		}
	}
	ports := slices.Sorted(maps.Keys(vhosts))
	for _, port := range ports {
		routes = append(routes, &routev3.RouteConfiguration{
			Name:         portString(port),
			VirtualHosts: vhosts[port],
		})
	}
	return &outbound{clusters: newPart(clusters), listeners: newPart(listeners), routes: newPart(routes)}
}

// buildProxyless makes a grpc-go client's API listeners and clusters.
func (g *Generator) buildProxyless() *outbound {
	var clusters, listeners []types.Resource
	for i := range g.view.Services {
		svc := &g.view.Services[i]
		for j, p := range sortedPorts(svc) {
			sp := spOf(svc, p)
			clusters = append(clusters, g.s.edsCluster(sp.OutboundCluster(), clusterOptions{
				lb: clusterv3.Cluster_ROUND_ROBIN, outlier: true,
			}))
			names := []string{sp.Host() + ":" + portString(p.Port)}
			if j == 0 {
				names = append(names, sp.Host())
			}
			for _, name := range names {
				hcm := &hcmv3.HttpConnectionManager{
					CodecType:  hcmv3.HttpConnectionManager_AUTO,
					StatPrefix: name,
					RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
						Name:         name,
						VirtualHosts: []*routev3.VirtualHost{g.s.virtualHost(sp, false, extraDomain(sp, name)...)},
					}},
					HttpFilters: []*hcmv3.HttpFilter{routerFilter()},
				}
				listeners = append(listeners, &listenerv3.Listener{
					Name:        name,
					ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcm)},
				})
			}
		}
	}
	return &outbound{clusters: newPart(clusters), listeners: newPart(listeners), routes: newPart(nil)}
}

func extraDomain(sp naming.ServicePort, name string) []string {
	if name == sp.Host() || name == sp.Host()+":"+portString(sp.Port) {
		return nil
	}
	return []string{name}
}

// inbound makes a sidecar's inbound listeners and clusters for its own
// workload's endpoints.
func (g *Generator) inbound(n Node) (clusters, listeners *part) {
	if n.Workload == "" {
		return newPart(nil), newPart(nil)
	}
	type listenerKey struct {
		addr string
		port int32
	}
	chains := map[listenerKey][]*listenerv3.FilterChain{}
	seenSNI := map[listenerKey]map[string]bool{}
	var cls []types.Resource
	seenCluster := map[string]bool{}
	for _, ref := range g.workloadEndpoints(n.Namespace, n.Workload) {
		svc := &g.view.Services[ref.svc]
		ep := &svc.Endpoints[ref.ep]
		p, ok := (&catalog.Service{Ports: svc.Ports}).PortByName(ep.PortName)
		if !ok {
			continue
		}
		sp := spOf(svc, p)
		k := listenerKey{ep.Address, ep.Port}
		if seenSNI[k] == nil {
			seenSNI[k] = map[string]bool{}
		}
		if seenSNI[k][sp.SNI()] {
			continue
		}
		seenSNI[k][sp.SNI()] = true
		name := sp.InboundCluster()
		chains[k] = append(chains[k], &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{
				ServerNames:       []string{sp.SNI()},
				TransportProtocol: "tls",
			},
			TransportSocket: downstreamTLS(alpn(p)),
			Filters:         []*listenerv3.Filter{tcpProxyFilter(name)},
		})
		if !seenCluster[name] {
			seenCluster[name] = true
			cls = append(cls, staticCluster(&g.s, name, ep.Address, uint32(n.appPort(p))))
		}
	}
	keys := slices.Collect(maps.Keys(chains))
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].addr != keys[j].addr {
			return keys[i].addr < keys[j].addr
		}
		return keys[i].port < keys[j].port
	})
	var ls []types.Resource
	for _, k := range keys {
		ls = append(ls, &listenerv3.Listener{
			Name:            InboundListenerName(k.addr, k.port),
			Address:         socketAddress(k.addr, uint32(k.port)),
			ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector()},
			FilterChains:    chains[k],
		})
	}
	return newPart(cls), newPart(ls)
}

type workloadKey struct{ namespace, workload string }

// endpointRef points at View.Services[svc].Endpoints[ep].
type endpointRef struct{ svc, ep int }

// workloadEndpoints returns the local-cluster endpoints of one workload,
// in view order; the index is built once per view.
func (g *Generator) workloadEndpoints(namespace, workload string) []endpointRef {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.workloads == nil {
		g.workloads = make(map[workloadKey][]endpointRef)
		for i := range g.view.Services {
			svc := &g.view.Services[i]
			for j := range svc.Endpoints {
				ep := &svc.Endpoints[j]
				if ep.Workload == "" || ep.Locality.Cluster != g.view.Local {
					continue
				}
				k := workloadKey{svc.Namespace, ep.Workload}
				g.workloads[k] = append(g.workloads[k], endpointRef{i, j})
			}
		}
	}
	return g.workloads[workloadKey{namespace, workload}]
}

// InboundListenerName is the name of a sidecar's inbound listener on
// addr:port: inbound|ADDRESS:PORT.
func InboundListenerName(addr string, port int32) string {
	return "inbound|" + net.JoinHostPort(addr, portString(port))
}

// GatewayListenerName is the name of a gateway's SNI listener.
const GatewayListenerName = "gateway"

func (g *Generator) gatewayFor(loc topology.Locality) *gatewayParts {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gp, ok := g.gateway[loc]; ok {
		return gp
	}
	k := edsKey{role: naming.RoleGateway, loc: loc}
	var clusters []types.Resource
	var chains []*listenerv3.FilterChain
	var clas []*resource
	var first error
	reports := map[string]*ClusterReport{}
	for i := range g.view.Services {
		svc := &g.view.Services[i]
		if !slices.Contains(svc.Clusters, g.view.Local) {
			continue
		}
		for _, p := range sortedPorts(svc) {
			name := spOf(svc, p).SNI()
			clusters = append(clusters, g.s.edsCluster(name, clusterOptions{lb: clusterv3.Cluster_LEAST_REQUEST, outlier: true}))
			chains = append(chains, &listenerv3.FilterChain{
				FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{name}},
				Filters:          []*listenerv3.Filter{tcpProxyFilter(name)},
			})
		}
		se := g.serviceEndpointsLocked(k, svc)
		clas = append(clas, se.clas...)
		for _, r := range se.reports {
			reports[r.Name] = r
		}
		if first == nil {
			first = se.err
		}
	}
	listener := &listenerv3.Listener{
		Name:            GatewayListenerName,
		Address:         socketAddress("0.0.0.0", g.s.GatewayPort),
		ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector()},
		FilterChains:    chains,
	}
	eds := partOf(clas)
	eds.err = first
	gp := &gatewayParts{
		clusters:  newPart(clusters),
		listeners: newPart([]types.Resource{listener}),
		eds:       endpoints{clas: eds, reports: reports},
	}
	g.gateway[loc] = gp
	return gp
}

func (g *Generator) endpointsFor(role string, loc topology.Locality) *endpoints {
	if role != naming.RoleProxyless {
		role = naming.RoleSidecar
	}
	k := edsKey{role: role, loc: loc}
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := g.eds[k]; ok {
		return e
	}
	var clas []*resource
	var first error
	reports := map[string]*ClusterReport{}
	for i := range g.view.Services {
		se := g.serviceEndpointsLocked(k, &g.view.Services[i])
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
	e := &endpoints{clas: p, reports: reports}
	g.eds[k] = e
	return e
}

// serviceEndpointsLocked returns svc's assignments for nodes of k, from
// the previous view's generator when svc did not change.
func (g *Generator) serviceEndpointsLocked(k edsKey, svc *catalog.ImportedService) *svcEndpoints {
	key := svc.Key()
	if prev := g.prevEDS[k][key]; prev != nil && reflect.DeepEqual(&prev.svc, svc) {
		g.keepLocked(k, key, prev)
		return prev
	}
	se := &svcEndpoints{svc: *svc}
	for _, p := range sortedPorts(svc) {
		sp := spOf(svc, p)
		name := sp.OutboundCluster()
		if k.role == naming.RoleGateway {
			name = sp.SNI()
		}
		cla, rep := g.assignment(name, svc, p, k.loc, k.role)
		r, err := newResource(cla)
		if err != nil && se.err == nil {
			se.err = err
		}
		se.clas = append(se.clas, r)
		se.reports = append(se.reports, rep)
	}
	g.keepLocked(k, key, se)
	return se
}

func (g *Generator) keepLocked(k edsKey, key catalog.ServiceKey, se *svcEndpoints) {
	m := g.svcEDS[k]
	if m == nil {
		m = make(map[catalog.ServiceKey]*svcEndpoints, len(g.view.Services))
		g.svcEDS[k] = m
	}
	m[key] = se
}

// lbEntry is one LbEndpoint to send.
type lbEntry struct {
	host     string
	port     uint32
	loc      topology.Locality
	healthy  bool
	weight   uint32 // 0: unset
	cluster  string
	identity string
	sni      string
	reports  []int
}

// assignment builds the ClusterLoadAssignment of one service port as a
// node at loc with the given role receives it.
func (g *Generator) assignment(name string, svc *catalog.ImportedService, p catalog.Port, loc topology.Locality, role string) (*endpointv3.ClusterLoadAssignment, *ClusterReport) {
	sp := spOf(svc, p)
	rep := &ClusterReport{Name: name, Service: svc.Key().String(), Port: p.Port}
	var entries []*lbEntry
	gateways := map[string]*lbEntry{}
	for i := range svc.Endpoints {
		ep := &svc.Endpoints[i]
		r := EndpointReport{
			Address:  net.JoinHostPort(ep.Address, strconv.Itoa(int(ep.Port))),
			Cluster:  ep.Locality.Cluster,
			Workload: ep.Workload,
			Locality: ep.Locality.String(),
			Healthy:  ep.Healthy,
		}
		switch {
		case ep.Healthy:
			r.HealthReason = "ready"
		case ep.HealthReason != "":
			r.HealthReason = ep.HealthReason
		default:
			r.HealthReason = "not ready"
		}
		if ep.PortName != p.Name {
			if _, ok := (&catalog.Service{Ports: svc.Ports}).PortByName(ep.PortName); !ok && p.Port == firstPort(svc) {
				r.NotSentReason = fmt.Sprintf("port name %q is not a port of the merged service", ep.PortName)
				r.Priority = -1
				rep.Endpoints = append(rep.Endpoints, r)
			}
			continue // another port of the service
		}
		local := ep.Locality.Cluster == g.view.Local
		switch {
		case role == naming.RoleGateway && !local:
			continue // a gateway only ever reaches its own cluster
		case local || role == naming.RoleProxyless:
			r.Sent, r.SentAs = true, r.Address
			rep.Endpoints = append(rep.Endpoints, r)
			entries = append(entries, &lbEntry{
				host: ep.Address, port: uint32(ep.Port), loc: ep.Locality, healthy: ep.Healthy,
				cluster: ep.Locality.Cluster, identity: g.s.spiffeID(svc.Namespace, ep.ServiceAccount),
				reports: []int{len(rep.Endpoints) - 1},
			})
			continue
		}
		ci, known := g.view.Clusters[ep.Locality.Cluster]
		host, portStr, err := net.SplitHostPort(ci.GatewayAddress)
		gwPort, perr := strconv.ParseUint(portStr, 10, 16)
		switch {
		case !known || ci.GatewayAddress == "":
			r.NotSentReason = "cluster " + ep.Locality.Cluster + " has no gateway address"
		case err != nil || perr != nil || gwPort == 0:
			r.NotSentReason = fmt.Sprintf("cluster %s gateway address %q is not host:port", ep.Locality.Cluster, ci.GatewayAddress)
		}
		if r.NotSentReason != "" {
			rep.Endpoints = append(rep.Endpoints, r)
			continue
		}
		r.Sent, r.SentAs, r.ViaGateway, r.SNI = true, ci.GatewayAddress, true, sp.SNI()
		rep.Endpoints = append(rep.Endpoints, r)
		e := gateways[ep.Locality.Cluster]
		if e == nil {
			l := ci.Locality
			if l.Cluster == "" {
				l = ep.Locality
			}
			e = &lbEntry{
				host: host, port: uint32(gwPort), loc: l, cluster: ep.Locality.Cluster,
				identity: g.s.spiffeID(svc.Namespace, ep.ServiceAccount), sni: sp.SNI(),
			}
			gateways[ep.Locality.Cluster] = e
			entries = append(entries, e)
		}
		if ep.Healthy {
			e.healthy = true
			e.weight++
		}
		e.reports = append(e.reports, len(rep.Endpoints)-1)
	}
	for _, e := range gateways {
		healthy := e.weight
		if e.weight == 0 {
			e.weight = 1
		}
		for _, ri := range e.reports {
			rep.Endpoints[ri].Weight = e.weight
			rep.Endpoints[ri].Healthy = e.healthy
			rep.Endpoints[ri].HealthReason = fmt.Sprintf("%d of %d endpoints behind the gateway healthy (this one: %s)",
				healthy, len(e.reports), rep.Endpoints[ri].HealthReason)
		}
	}

	// Rank localities relative to the node.
	nodes := make([]topology.Node, len(entries))
	for i, e := range entries {
		nodes[i] = topology.Node{Locality: e.loc}
	}
	ranks := g.policy.Prioritize(topology.Node{Locality: loc}, nodes)
	for i, e := range entries {
		for _, ri := range e.reports {
			rep.Endpoints[ri].Priority = ranks[i].Priority
			rep.Endpoints[ri].PriorityReason = ranks[i].Reason
		}
	}

	type groupKey struct {
		prio int
		loc  topology.Locality
	}
	groups := map[groupKey]*endpointv3.LocalityLbEndpoints{}
	healthyCount := map[groupKey]uint32{}
	for i, e := range entries {
		k := groupKey{ranks[i].Priority, e.loc}
		grp := groups[k]
		if grp == nil {
			grp = &endpointv3.LocalityLbEndpoints{
				Locality: &corev3.Locality{Region: e.loc.Region, Zone: e.loc.Zone, SubZone: e.loc.Cluster},
				Priority: uint32(ranks[i].Priority),
			}
			groups[k] = grp
		}
		lb := &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(e.host, e.port)}},
			HealthStatus:   corev3.HealthStatus_UNHEALTHY,
			Metadata:       endpointMetadata(e),
		}
		if e.healthy {
			lb.HealthStatus = corev3.HealthStatus_HEALTHY
			if e.sni != "" {
				healthyCount[k] += e.weight
			} else {
				healthyCount[k]++
			}
		}
		if e.sni != "" {
			lb.LoadBalancingWeight = wrapperspb.UInt32(e.weight)
		}
		grp.LbEndpoints = append(grp.LbEndpoints, lb)
	}
	keys := slices.Collect(maps.Keys(groups))
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].prio != keys[j].prio {
			return keys[i].prio < keys[j].prio
		}
		return keys[i].loc.String() < keys[j].loc.String()
	})
	cla := &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Policy: &endpointv3.ClusterLoadAssignment_Policy{
			OverprovisioningFactor: wrapperspb.UInt32(topology.DefaultOverprovisioningFactor),
		},
	}
	for _, k := range keys {
		groups[k].LoadBalancingWeight = wrapperspb.UInt32(max(1, healthyCount[k]))
		cla.Endpoints = append(cla.Endpoints, groups[k])
	}
	for i, r := range rep.Endpoints {
		if !r.Sent {
			rep.Endpoints[i].Priority = -1
		}
	}
	return cla, rep
}

func endpointMetadata(e *lbEntry) *corev3.Metadata {
	f := map[string]*structpb.Value{
		naming.EndpointCluster:  structpb.NewStringValue(e.cluster),
		naming.EndpointIdentity: structpb.NewStringValue(e.identity),
	}
	if e.sni != "" {
		f[naming.EndpointSNI] = structpb.NewStringValue(e.sni)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		naming.MetadataNamespace: {Fields: f},
	}}
}
