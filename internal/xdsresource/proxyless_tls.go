package xdsresource

import (
	"net"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// Proxyless gRPC (grpc-go's xDS security, gRFC A29): grpc-go fetches no
// secrets over SDS; its TLS contexts name certificate provider instances
// of its bootstrap instead. fedmesh's bootstrap has one instance,
// ProxylessCertProvider, a file_watcher over the files `fedmesh certs`
// writes; its identity certificate is the workload's SVID
// (naming.SecretWorkload) and its root certificate the federation bundle
// (naming.SecretRootCA).

// ProxylessCertProvider is the certificate provider instance name every
// proxyless TLS context refers to; the bootstrap must define it.
const ProxylessCertProvider = "fedmesh"

// ProxylessServerListenerTemplate is the bootstrap's
// server_listener_resource_name_template: grpc-go's xDS server asks for
// the listener named by it with %s replaced by its listening address
// (host:port, IPv6 in brackets).
const ProxylessServerListenerTemplate = "fedmesh/proxyless-server?listening_address=%s"

// ProxylessServerListenerName is the listener an xDS gRPC server
// listening on addr:port asks for.
func ProxylessServerListenerName(addr string, port uint32) string {
	return strings.Replace(ProxylessServerListenerTemplate, "%s", net.JoinHostPort(addr, strconv.FormatUint(uint64(port), 10)), 1)
}

func proxylessProvider(certName string) *tlsv3.CertificateProviderPluginInstance {
	return &tlsv3.CertificateProviderPluginInstance{InstanceName: ProxylessCertProvider, CertificateName: certName}
}

// ProxylessUpstreamTLS is a proxyless client's mTLS to a service port: its
// SVID and the federation roots from the bootstrap's certificate
// provider, and the SPIFFE IDs the server may present (exact URI SANs;
// grpc-go reads match_subject_alt_names).
func ProxylessUpstreamTLS(sans []string) *corev3.TransportSocket {
	matchers := make([]*matcherv3.StringMatcher, len(sans))
	for i, id := range sans {
		matchers[i] = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}
	}
	return tlsSocket(&tlsv3.UpstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateProviderInstance: proxylessProvider(naming.SecretWorkload),
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				CaCertificateProviderInstance: proxylessProvider(naming.SecretRootCA),
				// Deprecated in Envoy, but the field grpc-go reads
				// (match_typed_subject_alt_names is ignored there).
				MatchSubjectAltNames: matchers, //lint:ignore SA1019 grpc-go reads only this field

			}},
		},
	})
}

// ProxylessServerListener is the listener of an xDS gRPC server
// (xds.NewGRPCServer) on addr:port: one filter chain that requires a
// client certificate of the federation, presents the workload's SVID, and
// serves every call (route action non_forwarding, gRFC A36) that the RBAC
// filters rbac, in order, allow (grpc-go's RBAC, gRFC A41).
func ProxylessServerListener(addr string, port uint32, rbac []RBAC) *listenerv3.Listener {
	name := ProxylessServerListenerName(addr, port)
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: name,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    name,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
				}},
			}},
		}},
		HttpFilters: httpFilters(rbac),
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: SocketAddress(addr, port),
		FilterChains: []*listenerv3.FilterChain{{
			Name:    name,
			Filters: []*listenerv3.Filter{hcmFilter(hcm)},
			TransportSocket: tlsSocket(&tlsv3.DownstreamTlsContext{
				RequireClientCertificate: wrapperspb.Bool(true),
				CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsCertificateProviderInstance: proxylessProvider(naming.SecretWorkload),
					ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
						CaCertificateProviderInstance: proxylessProvider(naming.SecretRootCA),
					}},
				},
			}),
		}},
	}
}
