package xds

import (
	"maps"
	"reflect"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/topology"
)

// This file renders the plan into Envoy resources (docs/xds.md); the
// plan decides, internal/xdsresource builds each message.

// GatewayListenerName is the name of a gateway's SNI listener.
const GatewayListenerName = naming.GatewayListener

// InboundListenerName is the name of a sidecar's inbound listener on
// addr:port: inbound|ADDRESS:PORT.
func InboundListenerName(addr string, port int32) string {
	return xdsresource.InboundListenerName(addr, uint32(port))
}

// cluster is the EDS cluster name with the settings' limits, outlier
// detection and connect timeout.
func (s *Settings) cluster(name string, lb clusterv3.Cluster_LbPolicy, tls *xdsresource.UpstreamTLS) *clusterv3.Cluster {
	return xdsresource.EDSCluster(xdsresource.Cluster{
		Name:           name,
		ConnectTimeout: s.ConnectTimeout,
		LB:             lb,
		TLS:            tls,
		Outlier: &xdsresource.Outlier{
			Consecutive5xx:     s.Consecutive5xx,
			Interval:           s.OutlierInterval,
			BaseEjectionTime:   s.BaseEjectionTime,
			MaxEjectionPercent: s.MaxEjectionPercent,
		},
		Limits: xdsresource.Limits{
			MaxConnections:     s.MaxConnections,
			MaxPendingRequests: s.MaxPendingRequests,
			MaxRequests:        s.MaxRequests,
			MaxRetries:         s.MaxRetries,
		},
		PanicThreshold: 50,
	})
}

// renderOutbound makes a sidecar's outbound clusters, listeners and
// routes as callers in namespace ns see them: per service port an mTLS
// cluster, a virtual listener (renderOutboundListeners), and for HTTP
// ports a virtual host (its route table, render_routes.go) in the route
// configuration of the port; then the local-only subset clusters routes
// send to. Its HTTP connection managers carry no telemetry; outboundFor
// renders the listeners again for nodes with telemetry.
func (g *Generator) renderOutbound(ns string) *outbound {
	var clusters, routes []types.Resource
	vhosts := map[int32][]*routev3.VirtualHost{}
	services := g.plan.View().Services
	for i := range services {
		for _, sp := range g.plan.ServicePorts(&services[i]) {
			clusters = append(clusters, g.serviceCluster(&services[i], sp.OutboundCluster(), clusterv3.Cluster_LEAST_REQUEST,
				&xdsresource.UpstreamTLS{SNI: sp.SNI(), SANs: sp.Identities, ALPN: xdsresource.ALPN(sp.HTTP)}))
			if sp.HTTP {
				vhosts[sp.Port.Port] = append(vhosts[sp.Port.Port], g.virtualHost(ns, &services[i], sp, false))
			}
		}
	}
	clusters = append(clusters, g.localSubsetClusters(naming.RoleSidecar)...)
	for _, port := range slices.Sorted(maps.Keys(vhosts)) {
		routes = append(routes, xdsresource.RouteConfiguration(portString(port), vhosts[port]))
	}
	return &outbound{clusters: newPart(clusters), listeners: newPart(g.renderOutboundListeners(nil)), routes: newPart(routes)}
}

// renderOutboundListeners makes a sidecar's virtual listener per service
// port: an HTTP connection manager with the port's route configuration
// and telemetry tel (render_telemetry.go) for HTTP ports, a tcp_proxy
// matching the service's addresses (Generator.addrs) for the others.
func (g *Generator) renderOutboundListeners(tel *plan.Telemetry) []types.Resource {
	var listeners []types.Resource
	xtel := renderTelemetry(tel)
	services := g.plan.View().Services
	for i := range services {
		for _, sp := range g.plan.ServicePorts(&services[i]) {
			name := sp.OutboundCluster()
			if sp.HTTP {
				filter := xdsresource.HTTPConnectionManagerWithTelemetry(name, portString(sp.Port.Port), xtel)
				listeners = append(listeners, xdsresource.OutboundListener(name, uint32(sp.Port.Port), filter))
				continue
			}
			// An opaque TCP port has no virtual host: its addresses
			// go in the filter chain match.
			filter := xdsresource.TCPProxy(name)
			listeners = append(listeners, xdsresource.OutboundListenerFor(name, uint32(sp.Port.Port), filter, g.addrs[services[i].Key()]))
		}
	}
	return listeners
}

// renderProxyless makes a grpc-go client's API listeners and clusters
// as callers in namespace ns see them: a listener per HOST:PORT target,
// and per HOST for a service's first port, each with the port's route
// table inline.
func (g *Generator) renderProxyless(ns string) *outbound {
	var clusters, listeners []types.Resource
	services := g.plan.View().Services
	for i := range services {
		for j, sp := range g.plan.ServicePorts(&services[i]) {
			clusters = append(clusters, proxylessCluster(g.serviceCluster(&services[i], sp.OutboundCluster(), clusterv3.Cluster_ROUND_ROBIN, nil), sp.Identities))
			names := []string{sp.Host() + ":" + portString(sp.Port.Port)}
			if j == 0 {
				names = append(names, sp.Host())
			}
			for _, name := range names {
				listeners = append(listeners, xdsresource.APIListener(name, g.virtualHost(ns, &services[i], sp, true)))
			}
		}
	}
	clusters = append(clusters, g.localSubsetClusters(naming.RoleProxyless)...)
	return &outbound{clusters: newPart(clusters), listeners: newPart(listeners), routes: newPart(nil)}
}

// proxylessCluster adds a proxyless client's mTLS to c: certificates from
// the bootstrap's provider, the service's identities as accepted SANs.
func proxylessCluster(c *clusterv3.Cluster, identities []string) *clusterv3.Cluster {
	c.TransportSocket = xdsresource.ProxylessUpstreamTLS(identities)
	return c
}

// renderProxylessServers makes the listeners of an xDS gRPC server of the
// node's workload: one per address and port of its local endpoints, with
// the authorization of the service port served there.
func (g *Generator) renderProxylessServers(in plan.Inbound) []types.Resource {
	out := make([]types.Resource, len(in.Listeners))
	for i, l := range in.Listeners {
		out[i] = xdsresource.ProxylessServerListener(l.Address, uint32(l.Port), g.proxylessRBAC(l))
	}
	return out
}

// proxylessRBAC is what a gRPC server on listener l enforces. grpc-go
// picks no filter chain by SNI, so one listener has one authorization:
// that of its service port, or, when several service ports with
// different policies share the address, an ALLOW filter with no policies
// (nothing is served: closed rather than open).
func (g *Generator) proxylessRBAC(l plan.InboundListener) []xdsresource.RBAC {
	var out []xdsresource.RBAC
	for j, c := range l.Chains {
		sp, err := naming.ParseSNI(c.SNI)
		if err != nil {
			return []xdsresource.RBAC{{Action: xdsresource.RBACAllow}}
		}
		r := renderRBAC(g.plan.ProxylessAuthorization(sp))
		if j > 0 && !reflect.DeepEqual(r, out) {
			return []xdsresource.RBAC{{Action: xdsresource.RBACAllow}}
		}
		out = r
	}
	return out
}

// renderInbound makes a sidecar's inbound clusters and listeners: per
// service port a filter chain by SNI, an HTTP connection manager for
// HTTP ports and a tcp_proxy for the others, with the port's RBAC filters
// (render_authz.go) and, on HTTP chains, the node's telemetry tel.
func (g *Generator) renderInbound(in plan.Inbound, tel *plan.Telemetry) (clusters, listeners []types.Resource) {
	xtel := renderTelemetry(tel)
	for _, c := range in.Clusters {
		clusters = append(clusters, xdsresource.StaticCluster(c.Name, c.Host, uint32(c.AppPort), g.s.ConnectTimeout, false))
	}
	for _, l := range in.Listeners {
		chains := make([]xdsresource.InboundChain, len(l.Chains))
		for i, c := range l.Chains {
			chains[i] = xdsresource.InboundChain{SNI: c.SNI, ALPN: xdsresource.ALPN(c.HTTP), Cluster: c.Cluster, HTTP: c.HTTP, RBAC: renderRBAC(c.Authz), Telemetry: xtel, RateLimit: renderRateLimit(c.RateLimit)}
		}
		listeners = append(listeners, xdsresource.InboundListener(l.Address, uint32(l.Port), chains))
	}
	return clusters, listeners
}

// renderGateway makes a gateway's clusters and its SNI listener: one
// cluster and one filter chain per port of every service it routes, and
// in the listener's metadata the addresses of every cluster, which the
// gateway labels connections with (plan.GatewaySourceClusters).
func (g *Generator) renderGateway(services []*catalog.ImportedService) (clusters, listeners []types.Resource) {
	var snis []string
	for _, svc := range services {
		for _, p := range plan.Ports(svc) {
			sni := naming.ServicePort{Namespace: svc.Namespace, Name: svc.Name, Port: p.Port}.SNI()
			snis = append(snis, sni)
			clusters = append(clusters, g.s.cluster(sni, clusterv3.Cluster_LEAST_REQUEST, nil))
		}
	}
	l := xdsresource.GatewayListener("0.0.0.0", g.s.GatewayPort, snis)
	if sources := g.plan.GatewaySourceClusters(); sources != nil {
		l = xdsresource.WithGatewaySourceClusters(l, sources)
	}
	return clusters, []types.Resource{l}
}

// renderEndpoints makes svc's assignments, one per port, as nodes of k
// with labels receive them.
func (g *Generator) renderEndpoints(k edsKey, svc *catalog.ImportedService, labels map[string]string) *svcEndpoints {
	se := &svcEndpoints{svc: *svc}
	client := topology.Node{Locality: k.loc, Labels: labels}
	for _, p := range plan.Ports(svc) {
		a := g.plan.AssignTo(svc, p, client, k.role)
		r, err := newResource(renderAssignment(a))
		if err != nil && se.err == nil {
			se.err = err
		}
		se.clas = append(se.clas, r)
		se.reports = append(se.reports, a.Report)
	}
	return se
}

// renderAssignment makes the ClusterLoadAssignment of a planned
// assignment; a locality's sub-zone is its cluster.
func renderAssignment(a *plan.Assignment) *endpointv3.ClusterLoadAssignment {
	ls := make([]*endpointv3.LocalityLbEndpoints, len(a.Localities))
	for i := range a.Localities {
		l := &a.Localities[i]
		eps := make([]*endpointv3.LbEndpoint, len(l.Endpoints))
		for j := range l.Endpoints {
			eps[j] = xdsresource.LbEndpoint((*xdsresource.Endpoint)(&l.Endpoints[j]))
		}
		ls[i] = xdsresource.Locality(uint32(l.Priority), l.Locality.Region, l.Locality.Zone, l.Locality.Cluster, l.Weight, eps)
	}
	return xdsresource.ClusterLoadAssignment(a.Name, topology.DefaultOverprovisioningFactor, ls)
}

// renderSecrets are the node's two SDS secrets (docs/xds.md, section 5).
func renderSecrets(sec *Secrets) []types.Resource {
	return xdsresource.Secrets(sec.ChainPEM, sec.KeyPEM, sec.BundlePEM)
}

func portString(p int32) string { return strconv.Itoa(int(p)) }
