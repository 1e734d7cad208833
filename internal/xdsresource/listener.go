package xdsresource

import (
	"net"
	"net/netip"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// TCPProxy is a network filter that relays bytes to cluster.
func TCPProxy(cluster string) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: wellknown.TCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: Any(&tcpproxyv3.TcpProxy{
			StatPrefix:       cluster,
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
		})},
	}
}

// HTTPConnectionManager is a network filter that routes HTTP with the
// route configuration routeName from RDS.
func HTTPConnectionManager(statPrefix, routeName string) *listenerv3.Filter {
	return HTTPConnectionManagerWithTelemetry(statPrefix, routeName, nil)
}

// HTTPConnectionManagerWithTelemetry is HTTPConnectionManager with the
// node's tracing and access log (tel nil: none), reporter "source".
func HTTPConnectionManagerWithTelemetry(statPrefix, routeName string, tel *Telemetry) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    ADS(),
			RouteConfigName: routeName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{faultFilter(), routerFilter()},
	}
	applyTelemetry(hcm, tel, ReporterSource)
	return hcmFilter(hcm)
}

func hcmFilter(hcm *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name:       wellknown.HTTPConnectionManager,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: Any(hcm)},
	}
}

func routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       wellknown.Router,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: Any(&routerv3.Router{})},
	}
}

func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       wellknown.TLSInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: Any(&tlsinspectorv3.TlsInspector{})},
	}
}

// OutboundListener is a sidecar's virtual listener for one service port
// (bind_to_port false: the sidecar's own outbound listener hands it
// connections): one filter chain with filter.
func OutboundListener(name string, port uint32, filter *listenerv3.Filter) *listenerv3.Listener {
	return OutboundListenerFor(name, port, filter, nil)
}

// OutboundListenerFor is OutboundListener whose filter chain matches
// the service's virtual addresses addrs (filter_chain_match.prefix_ranges,
// one full-length range each, in order): an opaque TCP service, which has
// no virtual host to carry them, is found by the original destination of
// a captured connection, as Envoy picks a filter chain. None: the chain
// matches any destination.
func OutboundListenerFor(name string, port uint32, filter *listenerv3.Filter, addrs []netip.Addr) *listenerv3.Listener {
	fc := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{filter}}
	if len(addrs) > 0 {
		m := &listenerv3.FilterChainMatch{}
		for _, ip := range addrs {
			m.PrefixRanges = append(m.PrefixRanges, &corev3.CidrRange{
				AddressPrefix: ip.String(),
				PrefixLen:     wrapperspb.UInt32(uint32(ip.BitLen())),
			})
		}
		fc.FilterChainMatch = m
	}
	return &listenerv3.Listener{
		Name:         name,
		Address:      SocketAddress("0.0.0.0", port),
		BindToPort:   wrapperspb.Bool(false),
		FilterChains: []*listenerv3.FilterChain{fc},
	}
}

// APIListener is a proxyless gRPC client's listener for target name, with
// its route configuration inline.
func APIListener(name string, vhost *routev3.VirtualHost) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name:         name,
			VirtualHosts: []*routev3.VirtualHost{vhost},
		}},
		HttpFilters: []*hcmv3.HttpFilter{faultFilter(), routerFilter()},
	}
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: Any(hcm)},
	}
}

// InboundChain is one mTLS filter chain of a sidecar's inbound listener:
// connections whose SNI names a service port go to that port's inbound
// cluster.
type InboundChain struct {
	SNI     string
	ALPN    []string
	Cluster string
	// HTTP makes the chain an HTTP connection manager with RBAC as HTTP
	// filters (InboundHTTPConnectionManager); otherwise the chain is
	// RBAC as network filters, then a tcp_proxy to Cluster.
	HTTP bool
	// RBAC are the chain's RBAC filters in the order they run (docs/xds.md,
	// "Inbound authorization"); none for a chain without policies.
	RBAC []RBAC
	// Telemetry is the node's tracing and access log (HTTP chains only;
	// nil: none).
	Telemetry *Telemetry
	// RateLimit is the chain's local rate limit filter, after the RBAC
	// filters (nil: none).
	RateLimit *RateLimit
}

// filters are the chain's network filters.
func (c *InboundChain) filters() []*listenerv3.Filter {
	if c.HTTP {
		return []*listenerv3.Filter{InboundHTTPConnectionManagerWithRateLimit(c.Cluster, c.RBAC, c.RateLimit, c.Telemetry)}
	}
	fs := make([]*listenerv3.Filter, 0, len(c.RBAC)+2)
	for _, r := range c.RBAC {
		fs = append(fs, NetworkRBAC(c.Cluster, r))
	}
	if c.RateLimit != nil {
		for _, cl := range c.RateLimit.Connections {
			fs = append(fs, NetworkLocalRateLimit(cl))
		}
	}
	return append(fs, TCPProxy(c.Cluster))
}

// InboundListenerName is the name of a sidecar's inbound listener on
// addr:port: inbound|ADDRESS:PORT.
func InboundListenerName(addr string, port uint32) string {
	return "inbound|" + net.JoinHostPort(addr, strconv.FormatUint(uint64(port), 10))
}

// InboundListener is a sidecar's listener on addr:port that terminates
// mTLS, one filter chain per service port by SNI.
func InboundListener(addr string, port uint32, chains []InboundChain) *listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:            InboundListenerName(addr, port),
		Address:         SocketAddress(addr, port),
		ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector()},
	}
	for i := range chains {
		c := &chains[i]
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{
				ServerNames:       []string{c.SNI},
				TransportProtocol: "tls",
			},
			TransportSocket: DownstreamTLS(c.ALPN),
			Filters:         c.filters(),
		})
	}
	return l
}

// GatewayListener is a gateway's listener on addr:port: one filter chain
// per SNI, each a tcp_proxy to the cluster of the same name; TLS is not
// terminated (docs/xds.md, section 6).
func GatewayListener(addr string, port uint32, snis []string) *listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:            naming.GatewayListener,
		Address:         SocketAddress(addr, port),
		ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector()},
	}
	for _, sni := range snis {
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{sni}},
			Filters:          []*listenerv3.Filter{TCPProxy(sni)},
		})
	}
	return l
}
