package xdsresource

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// UpstreamTLS is a client sidecar's mTLS to a service port: its workload
// certificate and the federation roots from SDS, the SNI that names the
// service port, and the SPIFFE IDs the server may present.
type UpstreamTLS struct {
	SNI string
	// SANs are the server identities accepted (URI SANs, exact match).
	SANs []string
	ALPN []string
}

func (u *UpstreamTLS) socket() *corev3.TransportSocket {
	matchers := make([]*tlsv3.SubjectAltNameMatcher, len(u.SANs))
	for i, id := range u.SANs {
		matchers[i] = &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}},
		}
	}
	return tlsSocket(&tlsv3.UpstreamTlsContext{
		Sni: u.SNI,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  u.ALPN,
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(naming.SecretWorkload)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: matchers},
					ValidationContextSdsSecretConfig: sds(naming.SecretRootCA),
				},
			},
		},
	})
}

// DownstreamTLS is a server sidecar's mTLS: its workload certificate, a
// client certificate required and checked against the federation roots.
func DownstreamTLS(alpn []string) *corev3.TransportSocket {
	return tlsSocket(&tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  alpn,
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(naming.SecretWorkload)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sds(naming.SecretRootCA),
			},
		},
	})
}

func tlsSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       wellknown.TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: Any(ctx)},
	}
}

func sds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ADS()}
}

// Secrets are a sidecar's two SDS secrets (docs/xds.md, section 5): its
// certificate chain and key as naming.SecretWorkload, the trusted roots as
// naming.SecretRootCA.
func Secrets(chainPEM, keyPEM, bundlePEM []byte) []Resource {
	return []Resource{
		&tlsv3.Secret{
			Name: naming.SecretWorkload,
			Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: inline(chainPEM),
				PrivateKey:       inline(keyPEM),
			}},
		},
		&tlsv3.Secret{
			Name: naming.SecretRootCA,
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: inline(bundlePEM),
			}},
		},
	}
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}
