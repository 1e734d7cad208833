package adminapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
)

// OperatorFiles names an operator's credentials for the admin API, as
// `fedmesh ca issue-operator` writes them: the client certificate chain
// and its key, which prove who calls, and the federation root bundle the
// control plane's certificate must chain to.
type OperatorFiles struct {
	// CertFile is the operator certificate chain (PEM, leaf first).
	CertFile string
	// KeyFile is its private key (PEM).
	KeyFile string
	// BundleFile is the federation root bundle (PEM).
	BundleFile string
}

// ErrOperatorCredentials is wrapped by every error about missing,
// unreadable or unusable operator credentials.
var ErrOperatorCredentials = errors.New("operator credentials")

// ClientTLS loads the files into a TLS client configuration that presents
// the operator certificate and accepts the server only when it presents a
// control plane identity (spiffe://TD/fedmesh/cluster/NAME) of the
// operator's trust domain chaining to the bundle. As everywhere in
// fedmesh, the SPIFFE ID is checked instead of the host name, so the
// admin port is reachable through a port-forward or any address of the
// control plane. now is the time the certificate must be valid at (zero:
// time.Now); an expired one is refused here, with a clear error, rather
// than by the server.
func (f OperatorFiles) ClientTLS(now time.Time) (*tls.Config, error) {
	if now.IsZero() {
		now = time.Now()
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %s and key %s: %w", ErrOperatorCredentials, f.CertFile, f.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrOperatorCredentials, f.CertFile, err)
		}
	}
	if len(leaf.URIs) != 1 {
		return nil, fmt.Errorf("%w: %s has %d URI SANs, want one operator SPIFFE ID", ErrOperatorCredentials, f.CertFile, len(leaf.URIs))
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrOperatorCredentials, f.CertFile, err)
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%w: the certificate of %s in %s expired at %s", ErrOperatorCredentials, id, f.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	rootsPEM, err := os.ReadFile(f.BundleFile)
	if err != nil {
		return nil, fmt.Errorf("%w: trust bundle: %w", ErrOperatorCredentials, err)
	}
	roots, err := parseCerts(rootsPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: trust bundle %s: %w", ErrOperatorCredentials, f.BundleFile, err)
	}
	bundle := x509bundle.FromX509Authorities(id.TrustDomain(), roots)
	cfg := identity.ClientConfig(identity.StaticCert(&cert), identity.StaticBundle(bundle), identity.AuthorizeControlPlanes())
	cfg.NextProtos = []string{"http/1.1"}
	return cfg, nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}
