package meshtest

import (
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

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3}
}

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

// OutboundCluster builds CDS outbound|PORT||HOST as docs/xds.md section 2.
func OutboundCluster(sp naming.ServicePort, o ClusterOpts) *clusterv3.Cluster {
	var sans []*tlsv3.SubjectAltNameMatcher
	for _, id := range o.Identities {
		sans = append(sans, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}})
	}
	var alpn []string
	if o.HTTP {
		alpn = []string{"h2", "http/1.1"}
	}
	up := &tlsv3.UpstreamTlsContext{
		Sni: sp.SNI(),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: naming.SecretWorkload, SdsConfig: ads()}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: naming.SecretRootCA, SdsConfig: ads()},
			}},
			AlpnProtocols: alpn,
		},
	}
	ej := o.BaseEjectionTime
	if ej == 0 {
		ej = 30 * time.Second
	}
	maxReq := o.MaxRequests
	if maxReq == 0 {
		maxReq = 1024
	}
	maxPending := o.MaxPending
	if maxPending == 0 {
		maxPending = 1024
	}
	maxRetries := o.MaxRetries
	if maxRetries == 0 {
		maxRetries = 3
	}
	return &clusterv3.Cluster{
		Name:                 sp.OutboundCluster(),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LbPolicy:             clusterv3.Cluster_LEAST_REQUEST,
		OutlierDetection: &clusterv3.OutlierDetection{
			Consecutive_5Xx:           wrapperspb.UInt32(5),
			ConsecutiveGatewayFailure: wrapperspb.UInt32(5),
			Interval:                  durationpb.New(10 * time.Second),
			BaseEjectionTime:          durationpb.New(ej),
			MaxEjectionPercent:        wrapperspb.UInt32(100),
		},
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections: wrapperspb.UInt32(1024), MaxPendingRequests: wrapperspb.UInt32(maxPending),
			MaxRequests: wrapperspb.UInt32(maxReq), MaxRetries: wrapperspb.UInt32(maxRetries),
		}}},
		CommonLbConfig:  &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 50}},
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(up)}},
	}
}

// Endpoint describes one EDS endpoint.
type Endpoint struct {
	Addr     string // host:port
	Priority uint32
	Cluster  string
	Identity string
	SNI      string // set for remote (gateway) entries
	Healthy  bool
}

// Assignment builds the EDS ClusterLoadAssignment of sp.
func Assignment(sp naming.ServicePort, eps ...Endpoint) *endpointv3.ClusterLoadAssignment {
	byPrio := map[uint32]*endpointv3.LocalityLbEndpoints{}
	var order []uint32
	for _, e := range eps {
		host, portStr, err := net.SplitHostPort(e.Addr)
		if err != nil {
			panic(err)
		}
		port, _ := strconv.Atoi(portStr)
		le := byPrio[e.Priority]
		if le == nil {
			le = &endpointv3.LocalityLbEndpoints{Priority: e.Priority, Locality: &corev3.Locality{Region: "r", Zone: "z", SubZone: e.Cluster}, LoadBalancingWeight: wrapperspb.UInt32(1)}
			byPrio[e.Priority] = le
			order = append(order, e.Priority)
		}
		fields := map[string]any{naming.EndpointCluster: e.Cluster, naming.EndpointIdentity: e.Identity}
		if e.SNI != "" {
			fields[naming.EndpointSNI] = e.SNI
		}
		md, _ := structpb.NewStruct(fields)
		hs := corev3.HealthStatus_HEALTHY
		if !e.Healthy {
			hs = corev3.HealthStatus_UNHEALTHY
		}
		le.LbEndpoints = append(le.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(host, uint32(port))}},
			HealthStatus:   hs,
			Metadata:       &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{naming.MetadataNamespace: md}},
		})
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: sp.OutboundCluster()}
	for _, p := range order {
		cla.Endpoints = append(cla.Endpoints, byPrio[p])
	}
	return cla
}

func sockAddr(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// OutboundListener builds LDS outbound|PORT||HOST (section 4).
func OutboundListener(sp naming.ServicePort, http bool) *listenerv3.Listener {
	var f *listenerv3.Filter
	if http {
		hcm := &hcmv3.HttpConnectionManager{
			CodecType:  hcmv3.HttpConnectionManager_AUTO,
			StatPrefix: sp.OutboundCluster(),
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
				RouteConfigName: strconv.Itoa(int(sp.Port)), ConfigSource: ads()}},
			HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}},
		}
		f = &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}
	} else {
		tp := &tcpproxyv3.TcpProxy{StatPrefix: sp.OutboundCluster(), ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: sp.OutboundCluster()}}
		f = &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
	}
	return &listenerv3.Listener{
		Name:         sp.OutboundCluster(),
		Address:      sockAddr("0.0.0.0", uint32(sp.Port)),
		BindToPort:   wrapperspb.Bool(false),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{f}}},
	}
}

// Routes builds RDS "PORT" with one virtual host per HTTP service.
func Routes(port int32, timeout time.Duration, retries uint32, sps ...naming.ServicePort) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: strconv.Itoa(int(port))}
	for _, sp := range sps {
		p := strconv.Itoa(int(sp.Port))
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    sp.Host() + ":" + p,
			Domains: []string{sp.Host(), sp.Host() + ":" + p, sp.Name + "." + sp.Namespace, sp.Name + "." + sp.Namespace + ":" + p},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: sp.OutboundCluster()},
					Timeout:          durationpb.New(timeout),
					RetryPolicy: &routev3.RetryPolicy{
						RetryOn:                       "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,5xx",
						NumRetries:                    wrapperspb.UInt32(retries),
						HostSelectionRetryMaxAttempts: 3,
					},
				}},
			}},
		})
	}
	return rc
}

// InboundPort is one port of an inbound listener.
type InboundPort struct {
	SP   naming.ServicePort
	App  string // host:port
	HTTP bool
	GRPC bool
}

// Inbound builds the inbound listener inbound|ADDR and its STATIC
// inbound clusters (section 4).
func Inbound(addr string, ports ...InboundPort) []types.Resource {
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	l := &listenerv3.Listener{Name: "inbound|" + addr, Address: sockAddr(host, uint32(port))}
	out := []types.Resource{l}
	for _, ip := range ports {
		var alpn []string
		if ip.HTTP || ip.GRPC {
			alpn = []string{"h2", "http/1.1"}
		}
		down := &tlsv3.DownstreamTlsContext{
			RequireClientCertificate: wrapperspb.Bool(true),
			CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: naming.SecretWorkload, SdsConfig: ads()}},
				ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: naming.SecretRootCA, SdsConfig: ads()}},
				AlpnProtocols:                  alpn,
			},
		}
		tp := &tcpproxyv3.TcpProxy{StatPrefix: ip.SP.InboundCluster(), ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: ip.SP.InboundCluster()}}
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{ip.SP.SNI()}, TransportProtocol: "tls"},
			TransportSocket:  &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(down)}},
			Filters:          []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}}},
		})
		ah, ap, _ := net.SplitHostPort(ip.App)
		apn, _ := strconv.Atoi(ap)
		c := &clusterv3.Cluster{
			Name:                 ip.SP.InboundCluster(),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			ConnectTimeout:       durationpb.New(5 * time.Second),
			LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: ip.SP.InboundCluster(), Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(ah, uint32(apn))}}}},
			}}},
		}
		out = append(out, c)
	}
	return out
}

// Secrets builds SDS "default" and "ROOTCA".
func Secrets(certPEM, keyPEM, rootPEM []byte) []types.Resource {
	return []types.Resource{
		&tlsv3.Secret{Name: naming.SecretWorkload, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
		}}},
		&tlsv3.Secret{Name: naming.SecretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: rootPEM}},
		}}},
	}
}
