package main

import (
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/hostport"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/topology"
)

// The few shapes a benchmark needs (docs/xds.md, sections 2 to 6), built
// by internal/xdsresource with the control plane's defaults, so that the
// benchmark's proxies run what the control plane really sends.

// outboundCluster is CDS outbound|PORT||HOST (section 2) for an HTTP port.
func outboundCluster(sp naming.ServicePort, identity string) *clusterv3.Cluster {
	return xdsresource.EDSCluster(xdsresource.Cluster{
		Name:           sp.OutboundCluster(),
		ConnectTimeout: 5 * time.Second,
		LB:             clusterv3.Cluster_LEAST_REQUEST,
		TLS:            &xdsresource.UpstreamTLS{SNI: sp.SNI(), SANs: []string{identity}, ALPN: xdsresource.ALPN(true)},
		Outlier:        &xdsresource.Outlier{Consecutive5xx: 5, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 100},
		Limits:         xdsresource.Limits{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3},
		PanicThreshold: 50,
	})
}

// assignment is EDS for one cluster: every endpoint healthy, in one
// locality of the local cluster at priority 0 (section 3).
func assignment(name, cluster, identity string, addrs ...string) (*endpointv3.ClusterLoadAssignment, error) {
	var eps []*endpointv3.LbEndpoint
	for _, a := range addrs {
		host, port, err := hostport.SplitPort(a)
		if err != nil {
			return nil, err
		}
		eps = append(eps, xdsresource.LbEndpoint(&xdsresource.Endpoint{Host: host, Port: port, Healthy: true, Cluster: cluster, Identity: identity}))
	}
	l := xdsresource.Locality(0, "bench", "a", cluster, uint32(max(1, len(addrs))), eps)
	return xdsresource.ClusterLoadAssignment(name, topology.DefaultOverprovisioningFactor, []*endpointv3.LocalityLbEndpoints{l}), nil
}

// outboundListener is the virtual LDS outbound|PORT||HOST of an HTTP port
// (section 4).
func outboundListener(sp naming.ServicePort) *listenerv3.Listener {
	hcm := xdsresource.HTTPConnectionManager(sp.OutboundCluster(), strconv.Itoa(int(sp.Port)))
	return xdsresource.OutboundListener(sp.OutboundCluster(), uint32(sp.Port), hcm)
}

// routes is RDS "PORT" with one virtual host for sp.
func routes(sp naming.ServicePort) *routev3.RouteConfiguration {
	vh := xdsresource.VirtualHost(sp, xdsresource.Route{Timeout: 15 * time.Second, Retries: 2})
	return xdsresource.RouteConfiguration(strconv.Itoa(int(sp.Port)), []*routev3.VirtualHost{vh})
}

// inboundPort is one service port a workload serves behind its sidecar.
type inboundPort struct {
	sp   naming.ServicePort
	app  string // host:port of the app
	grpc bool   // h2c to the app
}

// inbound is the inbound listener inbound|ADDR with one mTLS filter chain
// per port, and its STATIC inbound clusters (section 4).
func inbound(addr string, ports ...inboundPort) (listeners, clusters []types.Resource, err error) {
	host, port, err := hostport.SplitPort(addr)
	if err != nil {
		return nil, nil, err
	}
	var chains []xdsresource.InboundChain
	for _, ip := range ports {
		chains = append(chains, xdsresource.InboundChain{SNI: ip.sp.SNI(), ALPN: xdsresource.ALPN(true), Cluster: ip.sp.InboundCluster()})
		ah, ap, err := hostport.SplitPort(ip.app)
		if err != nil {
			return nil, nil, err
		}
		clusters = append(clusters, xdsresource.StaticCluster(ip.sp.InboundCluster(), ah, ap, 5*time.Second, ip.grpc))
	}
	return []types.Resource{xdsresource.InboundListener(host, port, chains)}, clusters, nil
}

// gatewayListener is LDS "gateway" (section 6): one filter chain per SNI,
// each a tcp_proxy to the cluster named by the SNI.
func gatewayListener(listen string, snis []string) (*listenerv3.Listener, error) {
	host, port, err := hostport.SplitPort(listen)
	if err != nil {
		return nil, err
	}
	return xdsresource.GatewayListener(host, port, snis), nil
}

// secrets is SDS "default" and "ROOTCA" (section 5).
func secrets(certPEM, keyPEM, bundlePEM []byte) []types.Resource {
	return xdsresource.Secrets(certPEM, keyPEM, bundlePEM)
}
