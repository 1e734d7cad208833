package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Reasons a peer certificate is refused. Every error returned by VerifyPeer
// wraps exactly one of them; Reason turns it into a metric label.
var (
	// ErrNoCertificate: the peer presented no certificate.
	ErrNoCertificate = errors.New("no peer certificate")
	// ErrBadCertificate: a presented certificate does not parse, or the
	// leaf is a CA certificate.
	ErrBadCertificate = errors.New("malformed peer certificate")
	// ErrSANCount: the leaf does not carry exactly one URI SAN.
	ErrSANCount = errors.New("leaf certificate must have exactly one URI SAN")
	// ErrNotSPIFFE: the one URI SAN is not a valid SPIFFE ID.
	ErrNotSPIFFE = errors.New("URI SAN is not a SPIFFE ID")
	// ErrForeignTrustDomain: the SPIFFE ID is outside the bundle's trust domain.
	ErrForeignTrustDomain = errors.New("SPIFFE ID in a foreign trust domain")
	// ErrExpired: the leaf or a certificate of its chain has expired.
	ErrExpired = errors.New("certificate expired")
	// ErrNotYetValid: the leaf or a certificate of its chain is not valid yet.
	ErrNotYetValid = errors.New("certificate not yet valid")
	// ErrUntrusted: the chain does not lead to an authority of the bundle
	// (or there is no bundle).
	ErrUntrusted = errors.New("certificate not signed by the trust bundle")
	// ErrUnauthorized: the peer is valid but its SPIFFE ID is not one the
	// caller accepts (the authorize or expect function refused it).
	ErrUnauthorized = errors.New("peer identity not authorized")
	// ErrIssuerMismatch: the control plane ID names another cluster than
	// the cluster CA that signed the leaf (VerifyControlPlane).
	ErrIssuerMismatch = errors.New("control plane identity not signed by its own cluster's CA")
)

// Reason labels, one per refusal sentinel, for Prometheus counters.
const (
	ReasonNoCertificate      = "no_certificate"
	ReasonBadCertificate     = "bad_certificate"
	ReasonSANCount           = "san_count"
	ReasonNotSPIFFE          = "not_spiffe"
	ReasonForeignTrustDomain = "foreign_trust_domain"
	ReasonExpired            = "expired"
	ReasonNotYetValid        = "not_yet_valid"
	ReasonUntrusted          = "untrusted"
	ReasonUnauthorized       = "unauthorized"
	ReasonIssuerMismatch     = "issuer_mismatch"
	ReasonOther              = "other"
)

var reasons = []struct {
	err   error
	label string
}{
	{ErrNoCertificate, ReasonNoCertificate},
	{ErrBadCertificate, ReasonBadCertificate},
	{ErrSANCount, ReasonSANCount},
	{ErrNotSPIFFE, ReasonNotSPIFFE},
	{ErrForeignTrustDomain, ReasonForeignTrustDomain},
	{ErrExpired, ReasonExpired},
	{ErrNotYetValid, ReasonNotYetValid},
	{ErrUntrusted, ReasonUntrusted},
	{ErrUnauthorized, ReasonUnauthorized},
	{ErrIssuerMismatch, ReasonIssuerMismatch},
}

// Reason returns the metric label of a refusal error ("foreign_trust_domain",
// "expired", ...), ReasonOther for an error that wraps none of the sentinels,
// and "" for nil.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return ReasonOther
}

// VerifyPeer parses the DER certificates a TLS peer presented (leaf first,
// then intermediates) and checks them as an X.509 SVID of bundle's trust
// domain at time now (time.Now when zero). It returns the peer's SPIFFE ID,
// or an error wrapping one of the refusal sentinels (ErrNoCertificate,
// ErrBadCertificate, ErrSANCount, ErrNotSPIFFE, ErrForeignTrustDomain,
// ErrExpired, ErrNotYetValid, ErrUntrusted).
func VerifyPeer(rawCerts [][]byte, bundle *x509bundle.Bundle, now time.Time) (spiffeid.ID, error) {
	if len(rawCerts) == 0 {
		return spiffeid.ID{}, ErrNoCertificate
	}
	certs := make([]*x509.Certificate, 0, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("%w: certificate %d: %w", ErrBadCertificate, i, err)
		}
		certs = append(certs, c)
	}
	return VerifyPeerCertificates(certs, bundle, now)
}

// VerifyPeerCertificates is VerifyPeer for certificates already parsed, as
// in tls.ConnectionState.PeerCertificates.
func VerifyPeerCertificates(certs []*x509.Certificate, bundle *x509bundle.Bundle, now time.Time) (spiffeid.ID, error) {
	id, _, err := verifyChains(certs, bundle, now)
	return id, err
}

// verifyChains is VerifyPeerCertificates, also returning the verified
// chains (each leaf first, a bundle authority last).
func verifyChains(certs []*x509.Certificate, bundle *x509bundle.Bundle, now time.Time) (spiffeid.ID, [][]*x509.Certificate, error) {
	if len(certs) == 0 {
		return spiffeid.ID{}, nil, ErrNoCertificate
	}
	if now.IsZero() {
		now = time.Now()
	}
	leaf := certs[0]
	if n := len(leaf.URIs); n != 1 {
		return spiffeid.ID{}, nil, fmt.Errorf("%w: leaf %q has %d", ErrSANCount, leaf.Subject.String(), n)
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return spiffeid.ID{}, nil, fmt.Errorf("%w: %q: %w", ErrNotSPIFFE, leaf.URIs[0].String(), err)
	}
	if bundle == nil || bundle.Empty() {
		return id, nil, fmt.Errorf("%w: no trust bundle to verify %s against", ErrUntrusted, id)
	}
	if td := bundle.TrustDomain(); id.TrustDomain() != td {
		return id, nil, fmt.Errorf("%w: %s is not in trust domain %q", ErrForeignTrustDomain, id, td.Name())
	}
	if leaf.IsCA || leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		return id, nil, fmt.Errorf("%w: leaf of %s is a CA certificate", ErrBadCertificate, id)
	}
	switch {
	case now.After(leaf.NotAfter):
		return id, nil, fmt.Errorf("%w: %s expired at %s", ErrExpired, id, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return id, nil, fmt.Errorf("%w: %s is valid from %s", ErrNotYetValid, id, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	_, chains, err := x509svid.Verify(certs, bundle, x509svid.WithTime(now))
	if err != nil {
		// The leaf's own validity was checked above; an Expired reason here
		// comes from an intermediate or root.
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			for _, c := range certs[1:] {
				if now.Before(c.NotBefore) {
					return id, nil, fmt.Errorf("%w: chain of %s: %w", ErrNotYetValid, id, err)
				}
			}
			return id, nil, fmt.Errorf("%w: chain of %s: %w", ErrExpired, id, err)
		}
		return id, nil, fmt.Errorf("%w: %s: %w", ErrUntrusted, id, err)
	}
	return id, chains, nil
}
