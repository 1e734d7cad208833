package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/naming"
)

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

// secretResources are the node's two SDS secrets (docs/xds.md, section 5).
func secretResources(sec *Secrets) []types.Resource {
	return []types.Resource{
		&tlsv3.Secret{
			Name: naming.SecretWorkload,
			Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: inline(sec.ChainPEM),
				PrivateKey:       inline(sec.KeyPEM),
			}},
		},
		&tlsv3.Secret{
			Name: naming.SecretRootCA,
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: inline(sec.BundlePEM),
			}},
		},
	}
}
