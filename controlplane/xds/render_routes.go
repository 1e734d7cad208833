package xds

import (
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/topology"
)

// This file renders the plan's routes and resilience settings
// (docs/xds.md, "Routes"): a virtual host per service port from its
// route table as callers in one namespace see it, clusters with a
// ResiliencePolicy's settings, and the local-only subset clusters and
// assignments that Service backendRefs send to.

// virtualHost renders the route table of port sp of svc for callers in
// namespace ns; proxyless renders it for grpc-go.
func (g *Generator) virtualHost(ns string, svc *catalog.ImportedService, sp plan.ServicePort, proxyless bool) *routev3.VirtualHost {
	t := g.plan.Routes(ns, svc, sp.Port)
	routes := make([]*routev3.Route, 0, len(t.Routes))
	for i := range t.Routes {
		r := g.routeRule(&t.Routes[i], t.Origin == plan.OriginDefault, proxyless)
		routes = append(routes, xdsresource.RoutesOf(&r, proxyless)...)
	}
	return xdsresource.VirtualHostRoutes(sp.ServicePort, routes, g.clusterSetDomains(svc.Key(), sp.Port.Port)...)
}

// clusterSetDomains are the virtual host domains of port of a service's
// virtual addresses (its ClusterSetIP first, then the local cluster's
// ClusterIPs: Generator.addrs), each without and with the port (IPv6 in
// brackets, as in a Host header); none when the service has no address.
// Sidecars match a request sent to one of them by them and answer DNS
// with the first.
func (g *Generator) clusterSetDomains(k catalog.ServiceKey, port int32) []string {
	var out []string
	for _, ip := range g.addrs[k] {
		host := ip.String()
		if ip.Is6() {
			host = "[" + host + "]"
		}
		out = append(out, host, host+":"+strconv.Itoa(int(port)))
	}
	return out
}

// routeRule fills what the plan leaves to the mesh defaults (timeout,
// retries) from the settings. The default route keeps its name empty,
// as before routes existed.
func (g *Generator) routeRule(r *plan.Route, isDefault, proxyless bool) xdsresource.RouteRule {
	out := xdsresource.RouteRule{
		Name:            r.Name,
		PathKind:        xdsresource.PathKind(r.Match.Path.Kind),
		Path:            r.Match.Path.Value,
		Method:          r.Match.Method,
		Headers:         headerMatches(r.Match.Headers),
		Query:           headerMatches(r.Match.Query),
		DirectStatus:    r.DirectStatus,
		Timeout:         g.s.RouteTimeout,
		RequestHeaders:  headerModifier(r.RequestHeaders),
		ResponseHeaders: headerModifier(r.ResponseHeaders),
	}
	if isDefault {
		out.Name = ""
	}
	for _, b := range r.Backends {
		out.Clusters = append(out.Clusters, xdsresource.WeightedCluster{
			Name: b.Cluster, Weight: b.Weight,
			RequestHeaders: headerModifier(b.RequestHeaders), ResponseHeaders: headerModifier(b.ResponseHeaders),
		})
	}
	if r.Timeout != nil {
		out.Timeout, out.MaxStreamDuration = *r.Timeout, true
	}
	switch {
	case r.Retry == nil && !proxyless && g.s.NumRetries > 0:
		out.Retry = &xdsresource.Retry{On: []string{xdsresource.RetryOn}, NumRetries: g.s.NumRetries}
	case r.Retry != nil && (r.Retry.Attempts > 0 || (!proxyless && r.Retry.PerTryTimeout > 0)):
		// grpc-go refuses num_retries 0: a proxyless route without
		// retries has no retry policy.
		on := r.Retry.On
		if len(on) == 0 {
			on = []string{xdsresource.RetryOn}
		}
		out.Retry = &xdsresource.Retry{
			On: on, StatusCodes: r.Retry.StatusCodes, NumRetries: r.Retry.Attempts,
			PerTryTimeout: r.Retry.PerTryTimeout, BaseInterval: r.Retry.BaseInterval, MaxInterval: r.Retry.MaxInterval,
		}
	}
	if rd := r.Redirect; rd != nil {
		out.Redirect = &xdsresource.Redirect{Scheme: rd.Scheme, Hostname: rd.Hostname, Port: rd.Port,
			FullPath: rd.FullPath, PrefixPath: rd.PrefixPath, StatusCode: rd.StatusCode}
	}
	if rw := r.Rewrite; rw != nil {
		out.Rewrite = &xdsresource.Rewrite{Hostname: rw.Hostname, FullPath: rw.FullPath, PrefixPath: rw.PrefixPath}
	}
	for _, m := range r.Mirrors {
		out.Mirrors = append(out.Mirrors, xdsresource.Mirror{Cluster: m.Cluster, Percent: m.Percent})
	}
	if h := r.Hash; h != nil {
		out.Hash = []xdsresource.HashPolicy{{Header: h.Header, Cookie: h.Cookie, QueryParameter: h.QueryParameter, SourceIP: h.SourceIP}}
	}
	if f := r.Fault; f != nil {
		xf := &xdsresource.Fault{Headers: headerMatches(f.Headers)}
		if d := f.Delay; d != nil {
			xf.Delay = &xdsresource.FaultDelay{Fixed: d.Fixed, Percent: d.Percent}
		}
		if a := f.Abort; a != nil {
			xf.Abort = &xdsresource.FaultAbort{HTTPStatus: a.HTTPStatus, GRPCStatus: a.GRPCStatus, Percent: a.Percent}
		}
		out.Fault = xf
	}
	return out
}

func headerMatches(hs []plan.HeaderMatch) []xdsresource.HeaderMatch {
	var out []xdsresource.HeaderMatch
	for _, h := range hs {
		out = append(out, xdsresource.HeaderMatch{Name: h.Name, Match: xdsresource.StringMatch{Kind: xdsresource.MatchKind(h.Match.Kind), Value: h.Match.Value}})
	}
	return out
}

func headerModifier(m plan.HeaderModifier) xdsresource.HeaderModifier {
	out := xdsresource.HeaderModifier{Remove: m.Remove}
	for _, h := range m.Set {
		out.Set = append(out.Set, xdsresource.Header{Name: h.Name, Value: h.Value})
	}
	for _, h := range m.Add {
		out.Add = append(out.Add, xdsresource.Header{Name: h.Name, Value: h.Value})
	}
	return out
}

// serviceCluster is the EDS cluster name of svc with the settings, less
// what svc's ResiliencePolicy changes; lb is the default algorithm of
// the node's role.
func (g *Generator) serviceCluster(svc *catalog.ImportedService, name string, lb clusterv3.Cluster_LbPolicy, tls *xdsresource.UpstreamTLS) *clusterv3.Cluster {
	cs := g.plan.ClusterSettings(svc)
	s := g.s
	or := func(v *uint32, o uint32) {
		if o > 0 {
			*v = o
		}
	}
	ord := func(v *time.Duration, o time.Duration) {
		if o > 0 {
			*v = o
		}
	}
	or(&s.MaxConnections, cs.MaxConnections)
	or(&s.MaxPendingRequests, cs.MaxPendingRequests)
	or(&s.MaxRequests, cs.MaxRequests)
	or(&s.MaxRetries, cs.MaxRetries)
	or(&s.Consecutive5xx, cs.Consecutive5xx)
	ord(&s.OutlierInterval, cs.OutlierInterval)
	ord(&s.BaseEjectionTime, cs.BaseEjectionTime)
	ord(&s.ConnectTimeout, cs.ConnectTimeout)
	if cs.MaxEjectionPercent != nil {
		s.MaxEjectionPercent = *cs.MaxEjectionPercent
	}
	switch cs.LB {
	case plan.LBLeastRequest:
		lb = clusterv3.Cluster_LEAST_REQUEST
	case plan.LBRoundRobin:
		lb = clusterv3.Cluster_ROUND_ROBIN
	case plan.LBRingHash:
		lb = clusterv3.Cluster_RING_HASH
	}
	c := xdsresource.Cluster{
		Name: name, ConnectTimeout: s.ConnectTimeout, LB: lb, TLS: tls,
		Outlier: &xdsresource.Outlier{
			Consecutive5xx: s.Consecutive5xx, ConsecutiveGatewayFailure: cs.ConsecutiveGatewayFailure,
			Interval: s.OutlierInterval, BaseEjectionTime: s.BaseEjectionTime, MaxEjectionPercent: s.MaxEjectionPercent,
		},
		Limits: xdsresource.Limits{
			MaxConnections: s.MaxConnections, MaxPendingRequests: s.MaxPendingRequests,
			MaxRequests: s.MaxRequests, MaxRetries: s.MaxRetries,
		},
		PanicThreshold: 50,
		IdleTimeout:    cs.IdleTimeout,
	}
	if lb == clusterv3.Cluster_RING_HASH && (cs.MinRingSize > 0 || cs.MaxRingSize > 0) {
		c.RingHash = &xdsresource.RingHash{MinimumRingSize: cs.MinRingSize, MaximumRingSize: cs.MaxRingSize}
	}
	return xdsresource.EDSCluster(c)
}

// localSubsetClusters are the clusters of the local-only subsets the
// plan's routes send to, for nodes of role.
func (g *Generator) localSubsetClusters(role string) []types.Resource {
	var out []types.Resource
	for _, ls := range g.plan.LocalSubsets() {
		svc, port, ok := g.servicePort(ls)
		if !ok {
			continue
		}
		sp := g.plan.ServicePorts(svc)
		for _, p := range sp {
			if p.Port.Port != port.Port {
				continue
			}
			if role == naming.RoleProxyless {
				out = append(out, proxylessCluster(g.serviceCluster(svc, ls.LocalCluster(), clusterv3.Cluster_ROUND_ROBIN, nil), p.Identities))
			} else {
				out = append(out, g.serviceCluster(svc, ls.LocalCluster(), clusterv3.Cluster_LEAST_REQUEST,
					&xdsresource.UpstreamTLS{SNI: p.SNI(), SANs: p.Identities, ALPN: xdsresource.ALPN(p.HTTP)}))
			}
		}
	}
	return out
}

// servicePort finds sp in the view.
func (g *Generator) servicePort(sp naming.ServicePort) (*catalog.ImportedService, catalog.Port, bool) {
	svcs := g.plan.View().Services
	for i := range svcs {
		if svcs[i].Namespace == sp.Namespace && svcs[i].Name == sp.Name {
			for _, p := range svcs[i].Ports {
				if p.Port == sp.Port {
					return &svcs[i], p, true
				}
			}
		}
	}
	return nil, catalog.Port{}, false
}

// renderLocalEndpoints makes the assignments of the local-only subsets
// as nodes of role at loc receive them: the local cluster's endpoints
// only, at priority 0.
func (g *Generator) renderLocalEndpoints(role string, loc topology.Locality) (*part, map[string]*plan.ClusterReport) {
	var clas []types.Resource
	reports := map[string]*plan.ClusterReport{}
	for _, ls := range g.plan.LocalSubsets() {
		svc, port, ok := g.servicePort(ls)
		if !ok {
			continue
		}
		a := g.plan.AssignLocal(svc, port, loc, role)
		clas = append(clas, renderAssignment(a))
		reports[a.Name] = a.Report
	}
	return newPart(clas), reports
}
