package main

import (
	"fmt"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// The builders below follow docs/xds.md, sections 2 to 6, for the few
// shapes a benchmark needs.

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func sockAddr(hostport string) (*corev3.Address, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port of %q: %w", hostport, err)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}}, nil
}

func tlsSocket(m proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(m)}}
}

func tcpProxy(cluster string) *listenerv3.Filter {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}}
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
}

// outboundCluster is CDS outbound|PORT||HOST (section 2) for an HTTP port.
func outboundCluster(sp naming.ServicePort, identity string) *clusterv3.Cluster {
	up := &tlsv3.UpstreamTlsContext{
		Sni: sp.SNI(),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: naming.SecretWorkload, SdsConfig: ads()}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: tlsv3.SubjectAltNameMatcher_URI,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: identity}},
				}}},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: naming.SecretRootCA, SdsConfig: ads()},
			}},
			AlpnProtocols: []string{"h2", "http/1.1"},
		},
	}
	return &clusterv3.Cluster{
		Name:                 sp.OutboundCluster(),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LbPolicy:             clusterv3.Cluster_LEAST_REQUEST,
		LbConfig:             &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{ChoiceCount: wrapperspb.UInt32(2)}},
		OutlierDetection: &clusterv3.OutlierDetection{
			Consecutive_5Xx:           wrapperspb.UInt32(5),
			ConsecutiveGatewayFailure: wrapperspb.UInt32(5),
			Interval:                  durationpb.New(10 * time.Second),
			BaseEjectionTime:          durationpb.New(30 * time.Second),
			MaxEjectionPercent:        wrapperspb.UInt32(100),
		},
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections: wrapperspb.UInt32(1024), MaxPendingRequests: wrapperspb.UInt32(1024),
			MaxRequests: wrapperspb.UInt32(1024), MaxRetries: wrapperspb.UInt32(3),
		}}},
		CommonLbConfig:  &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 50}},
		TransportSocket: tlsSocket(up),
	}
}

// assignment is EDS for one cluster: every endpoint healthy, in one
// locality of the local cluster at priority 0 (section 3).
func assignment(name, cluster, identity string, addrs ...string) (*endpointv3.ClusterLoadAssignment, error) {
	md, err := structpb.NewStruct(map[string]any{naming.EndpointCluster: cluster, naming.EndpointIdentity: identity})
	if err != nil {
		return nil, err
	}
	le := &endpointv3.LocalityLbEndpoints{
		Locality:            &corev3.Locality{Region: "bench", Zone: "a", SubZone: cluster},
		LoadBalancingWeight: wrapperspb.UInt32(uint32(max(1, len(addrs)))),
	}
	for _, a := range addrs {
		sa, err := sockAddr(a)
		if err != nil {
			return nil, err
		}
		le.LbEndpoints = append(le.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sa}},
			HealthStatus:   corev3.HealthStatus_HEALTHY,
			Metadata:       &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{naming.MetadataNamespace: md}},
		})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{le},
		Policy:      &endpointv3.ClusterLoadAssignment_Policy{OverprovisioningFactor: wrapperspb.UInt32(140)},
	}, nil
}

// outboundListener is the virtual LDS outbound|PORT||HOST of an HTTP port
// (section 4).
func outboundListener(sp naming.ServicePort) (*listenerv3.Listener, error) {
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: sp.OutboundCluster(),
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: strconv.Itoa(int(sp.Port)), ConfigSource: ads()}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}},
	}
	addr, err := sockAddr(net.JoinHostPort("0.0.0.0", strconv.Itoa(int(sp.Port))))
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:       sp.OutboundCluster(),
		Address:    addr,
		BindToPort: wrapperspb.Bool(false),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}}}},
	}, nil
}

// routes is RDS "PORT" with one virtual host for sp.
func routes(sp naming.ServicePort) *routev3.RouteConfiguration {
	p := strconv.Itoa(int(sp.Port))
	short := sp.Name + "." + sp.Namespace
	return &routev3.RouteConfiguration{Name: p, VirtualHosts: []*routev3.VirtualHost{{
		Name:    sp.Host() + ":" + p,
		Domains: []string{sp.Host(), sp.Host() + ":" + p, short, short + ":" + p},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: sp.OutboundCluster()},
				Timeout:          durationpb.New(15 * time.Second),
				RetryPolicy: &routev3.RetryPolicy{
					RetryOn:                       "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,5xx",
					NumRetries:                    wrapperspb.UInt32(2),
					RetryHostPredicate:            []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}},
					HostSelectionRetryMaxAttempts: 3,
				},
			}},
		}},
	}}}
}

// inboundPort is one service port a workload serves behind its sidecar.
type inboundPort struct {
	sp   naming.ServicePort
	app  string // host:port of the app
	grpc bool   // h2c to the app
}

// inbound is the inbound listener inbound|ADDR with one mTLS filter chain
// per port, and its STATIC inbound clusters (section 4).
func inbound(addr string, ports ...inboundPort) ([]types.Resource, []types.Resource, error) {
	la, err := sockAddr(addr)
	if err != nil {
		return nil, nil, err
	}
	l := &listenerv3.Listener{Name: "inbound|" + addr, Address: la}
	var clusters []types.Resource
	for _, ip := range ports {
		down := &tlsv3.DownstreamTlsContext{
			RequireClientCertificate: wrapperspb.Bool(true),
			CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: naming.SecretWorkload, SdsConfig: ads()}},
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: naming.SecretRootCA, SdsConfig: ads()}},
				AlpnProtocols: []string{"h2", "http/1.1"},
			},
		}
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{ip.sp.SNI()}, TransportProtocol: "tls"},
			TransportSocket:  tlsSocket(down),
			Filters:          []*listenerv3.Filter{tcpProxy(ip.sp.InboundCluster())},
		})
		aa, err := sockAddr(ip.app)
		if err != nil {
			return nil, nil, err
		}
		c := &clusterv3.Cluster{
			Name:                 ip.sp.InboundCluster(),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			ConnectTimeout:       durationpb.New(5 * time.Second),
			LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: ip.sp.InboundCluster(), Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: aa}}}},
			}}},
		}
		if ip.grpc {
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
				"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
					UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
					}},
				}),
			}
		}
		clusters = append(clusters, c)
	}
	return []types.Resource{l}, clusters, nil
}

// gatewayListener is LDS "gateway" (section 6): one filter chain per SNI,
// each a tcp_proxy to the cluster named by the SNI.
func gatewayListener(listen string, snis []string) (*listenerv3.Listener, error) {
	la, err := sockAddr(listen)
	if err != nil {
		return nil, err
	}
	l := &listenerv3.Listener{Name: "gateway", Address: la}
	for _, sni := range snis {
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{sni}},
			Filters:          []*listenerv3.Filter{tcpProxy(sni)},
		})
	}
	return l, nil
}

// secrets is SDS "default" and "ROOTCA" (section 5).
func secrets(certPEM, keyPEM, bundlePEM []byte) []types.Resource {
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	return []types.Resource{
		&tlsv3.Secret{Name: naming.SecretWorkload, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(certPEM), PrivateKey: inline(keyPEM)}}},
		&tlsv3.Secret{Name: naming.SecretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(bundlePEM)}}},
	}
}
