package meshtest

import (
	"net/netip"
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

// The resources below are built by internal/xdsresource, as the control
// plane builds them; these helpers only pick test-friendly shapes and the
// control plane's defaults.

// ClusterOpts tune an outbound cluster.
type ClusterOpts struct {
	HTTP             bool
	Identities       []string
	BaseEjectionTime time.Duration
	MaxRequests      uint32
	MaxRetries       uint32
	// MaxPending defaults to 1024.
	MaxPending uint32
}

// OutboundCluster builds CDS outbound|PORT||HOST as docs/xds.md section 2,
// with the control plane's defaults where o leaves a field zero.
func OutboundCluster(sp naming.ServicePort, o ClusterOpts) *clusterv3.Cluster {
	or := func(v, def uint32) uint32 {
		if v == 0 {
			return def
		}
		return v
	}
	ej := o.BaseEjectionTime
	if ej == 0 {
		ej = 30 * time.Second
	}
	return xdsresource.EDSCluster(xdsresource.Cluster{
		Name:           sp.OutboundCluster(),
		ConnectTimeout: 5 * time.Second,
		LB:             clusterv3.Cluster_LEAST_REQUEST,
		TLS:            &xdsresource.UpstreamTLS{SNI: sp.SNI(), SANs: o.Identities, ALPN: xdsresource.ALPN(o.HTTP)},
		Outlier:        &xdsresource.Outlier{Consecutive5xx: 5, Interval: 10 * time.Second, BaseEjectionTime: ej, MaxEjectionPercent: 100},
		Limits: xdsresource.Limits{
			MaxConnections:     1024,
			MaxPendingRequests: or(o.MaxPending, 1024),
			MaxRequests:        or(o.MaxRequests, 1024),
			MaxRetries:         or(o.MaxRetries, 3),
		},
		PanicThreshold: 50,
	})
}

// Endpoint describes one EDS endpoint.
type Endpoint struct {
	Addr     string // host:port
	Priority uint32
	Cluster  string
	Identity string
	SNI      string // set for remote (gateway) entries
	Healthy  bool
	Workload string // sent as Endpoint.hostname; "" leaves it unset
}

// Assignment builds the EDS ClusterLoadAssignment of sp: one locality
// (region r, zone z, the endpoint's cluster) per priority, in the order
// the priorities first appear, each of weight 1.
func Assignment(sp naming.ServicePort, eps ...Endpoint) *endpointv3.ClusterLoadAssignment {
	var ls []*endpointv3.LocalityLbEndpoints
	index := map[uint32]*endpointv3.LocalityLbEndpoints{}
	for _, e := range eps {
		host, port := mustSplit(e.Addr)
		l := index[e.Priority]
		if l == nil {
			l = xdsresource.Locality(e.Priority, "r", "z", e.Cluster, 1, nil)
			index[e.Priority] = l
			ls = append(ls, l)
		}
		l.LbEndpoints = append(l.LbEndpoints, xdsresource.LbEndpoint(&xdsresource.Endpoint{
			Host: host, Port: port, Healthy: e.Healthy, Cluster: e.Cluster, Identity: e.Identity, SNI: e.SNI,
			Workload: e.Workload,
		}))
	}
	return xdsresource.ClusterLoadAssignment(sp.OutboundCluster(), topology.DefaultOverprovisioningFactor, ls)
}

// OutboundListener builds LDS outbound|PORT||HOST (section 4).
func OutboundListener(sp naming.ServicePort, http bool) *listenerv3.Listener {
	f := xdsresource.TCPProxy(sp.OutboundCluster())
	if http {
		f = xdsresource.HTTPConnectionManager(sp.OutboundCluster(), strconv.Itoa(int(sp.Port)))
	}
	return xdsresource.OutboundListener(sp.OutboundCluster(), uint32(sp.Port), f)
}

// OutboundListenerAt is OutboundListener whose filter chain matches the
// service's virtual addresses addrs (IP literals, the ClusterSetIP
// first), as the control plane renders an opaque TCP port.
func OutboundListenerAt(sp naming.ServicePort, http bool, addrs ...string) *listenerv3.Listener {
	f := xdsresource.TCPProxy(sp.OutboundCluster())
	if http {
		f = xdsresource.HTTPConnectionManager(sp.OutboundCluster(), strconv.Itoa(int(sp.Port)))
	}
	ips := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		ips[i] = netip.MustParseAddr(a)
	}
	return xdsresource.OutboundListenerFor(sp.OutboundCluster(), uint32(sp.Port), f, ips)
}

// Routes builds RDS "PORT" with one virtual host per HTTP service.
func Routes(port int32, timeout time.Duration, retries uint32, sps ...naming.ServicePort) *routev3.RouteConfiguration {
	var vhosts []*routev3.VirtualHost
	for _, sp := range sps {
		vhosts = append(vhosts, xdsresource.VirtualHost(sp, xdsresource.Route{Timeout: timeout, Retries: retries}))
	}
	return xdsresource.RouteConfiguration(strconv.Itoa(int(port)), vhosts)
}

// InboundPort is one port of an inbound listener.
type InboundPort struct {
	SP   naming.ServicePort
	App  string // host:port
	HTTP bool
	GRPC bool
}

// Inbound builds the inbound listener inbound|ADDR and, after it, its
// STATIC inbound clusters (section 4); a gRPC port's cluster speaks h2c
// to the app.
func Inbound(addr string, ports ...InboundPort) []types.Resource {
	host, port := mustSplit(addr)
	var chains []xdsresource.InboundChain
	var clusters []types.Resource
	for _, ip := range ports {
		chains = append(chains, xdsresource.InboundChain{SNI: ip.SP.SNI(), ALPN: xdsresource.ALPN(ip.HTTP || ip.GRPC), Cluster: ip.SP.InboundCluster()})
		ah, ap := mustSplit(ip.App)
		clusters = append(clusters, xdsresource.StaticCluster(ip.SP.InboundCluster(), ah, ap, 5*time.Second, ip.GRPC))
	}
	return append([]types.Resource{xdsresource.InboundListener(host, port, chains)}, clusters...)
}

// mustSplit splits a test's host:port, which is always well formed.
func mustSplit(addr string) (string, uint32) {
	host, port, err := hostport.SplitPort(addr)
	if err != nil {
		panic(err)
	}
	return host, port
}

// Secrets builds SDS "default" and "ROOTCA".
func Secrets(certPEM, keyPEM, rootPEM []byte) []types.Resource {
	return xdsresource.Secrets(certPEM, keyPEM, rootPEM)
}
