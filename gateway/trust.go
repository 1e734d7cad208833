package gateway

// This file holds the gateway's own identity: the SVID and the trust
// bundle the control plane sends it over SDS (secrets "default" and
// "ROOTCA", as to sidecars). The bundle verifies the control plane at
// every reconnect, so the gateway follows a root rotation; the SVID and
// the bundle answer peers' probes of the gateway itself (selfprobe.go).

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// ErrNoIdentity is returned by the identity sources before the control
// plane has sent the gateway its SVID and trust bundle.
var ErrNoIdentity = errors.New("gateway: no certificate from the control plane yet")

// gwIdentity is an SVID and the trust bundle that came with it;
// immutable once stored.
type gwIdentity struct {
	cert   *tls.Certificate
	bundle *x509bundle.Bundle
	roots  *x509.CertPool // the bundle's authorities, for the xDS client
}

var (
	_ identity.CertSource   = identitySource{}
	_ identity.BundleSource = identitySource{}
)

// identitySource reads the gateway's current identity at every handshake.
type identitySource struct{ g *Gateway }

// Certificate implements identity.CertSource.
func (s identitySource) Certificate() (*tls.Certificate, error) {
	id := s.g.ident.Load()
	if id == nil {
		return nil, ErrNoIdentity
	}
	return id.cert, nil
}

// Bundle implements identity.BundleSource; nil before the first SDS.
func (s identitySource) Bundle() *x509bundle.Bundle {
	if id := s.g.ident.Load(); id != nil {
		return id.bundle
	}
	return nil
}

// SetIdentity replaces the gateway's SVID (with its chain and key) and
// the federation's trust bundle. The xDS client calls it for every SDS
// update; a gateway fed without a control plane may call it directly. An
// SVID without a SPIFFE ID of bundle's trust domain is refused, and the
// identity held before stays.
func (g *Gateway) SetIdentity(cert *tls.Certificate, bundle *x509bundle.Bundle) error {
	if cert == nil || len(cert.Certificate) == 0 || bundle == nil || len(bundle.X509Authorities()) == 0 {
		return errors.New("gateway: an SVID and a non-empty trust bundle are required")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("gateway: SVID: %w", err)
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return fmt.Errorf("gateway: SVID: %w", err)
	}
	if id.TrustDomain() != bundle.TrustDomain() {
		return fmt.Errorf("gateway: SVID %s is not of the bundle's trust domain %s", id, bundle.TrustDomain())
	}
	roots := x509.NewCertPool()
	for _, c := range bundle.X509Authorities() {
		roots.AddCert(c)
	}
	g.ident.Store(&gwIdentity{cert: cert, bundle: bundle, roots: roots})
	g.log.Info("identity from the control plane", "id", id.String(), "not_after", leaf.NotAfter, "roots", len(bundle.X509Authorities()))
	return nil
}

// controlPlaneRoots are the roots that verify the control plane: the
// bundle from SDS once there is one, else the one the gateway started
// with (Config.RootCAs).
func (g *Gateway) controlPlaneRoots() *x509.CertPool {
	if id := g.ident.Load(); id != nil {
		return id.roots
	}
	return g.cfg.RootCAs
}

// setSecrets takes an SDS update: both secrets, or none (a control plane
// that issues gateways no SVID keeps the bundle from the start).
func (g *Gateway) setSecrets(secrets map[string]proto.Message) error {
	if len(secrets) == 0 {
		return nil
	}
	cs, _ := secrets[naming.SecretWorkload].(*tlsv3.Secret)
	rs, _ := secrets[naming.SecretRootCA].(*tlsv3.Secret)
	if cs == nil || rs == nil || len(secrets) != 2 {
		return fmt.Errorf("secrets %q and %q are both required, got %d secrets", naming.SecretWorkload, naming.SecretRootCA, len(secrets))
	}
	tc := cs.GetTlsCertificate()
	cert, err := tls.X509KeyPair(tc.GetCertificateChain().GetInlineBytes(), tc.GetPrivateKey().GetInlineBytes())
	if err != nil {
		return fmt.Errorf("secret %q: %w", naming.SecretWorkload, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("secret %q: %w", naming.SecretWorkload, err)
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return fmt.Errorf("secret %q: %w", naming.SecretWorkload, err)
	}
	var roots []*x509.Certificate
	rest := rs.GetValidationContext().GetTrustedCa().GetInlineBytes()
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("secret %q: %w", naming.SecretRootCA, err)
		}
		roots = append(roots, c)
	}
	if len(roots) == 0 {
		return fmt.Errorf("secret %q holds no certificate", naming.SecretRootCA)
	}
	return g.SetIdentity(&cert, x509bundle.FromX509Authorities(id.TrustDomain(), roots))
}
