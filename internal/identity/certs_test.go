package identity_test

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/testpki"
)

// Test certificates are real ECDSA P-256 certificates, built here rather
// than by controlplane/ca so that the tests can also build the bad ones
// (two SANs, a foreign root, an expired chain) that no CA of ours issues.

var tNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	td   spiffeid.TrustDomain
}

func caTemplate(cn string, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// newRoot makes a self-signed root valid a year around tNow.
func newRoot(t testing.TB, td string) *testCA {
	t.Helper()
	k := testpki.Key(t)
	c := testpki.Sign(t, caTemplate("root "+td, tNow.Add(-365*24*time.Hour), tNow.Add(365*24*time.Hour)), nil, k.Public(), k)
	return &testCA{cert: c, key: k, td: spiffeid.RequireTrustDomainFromString(td)}
}

// intermediate signs a cluster CA valid between nb and na.
func (ca *testCA) intermediate(t testing.TB, nb, na time.Time) *testCA {
	t.Helper()
	k := testpki.Key(t)
	tmpl := caTemplate("cluster", nb, na)
	tmpl.MaxPathLenZero = true
	c := testpki.Sign(t, tmpl, ca.cert, k.Public(), ca.key)
	return &testCA{cert: c, key: k, td: ca.td}
}

func (ca *testCA) bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.td, []*x509.Certificate{ca.cert})
}

type leafOpts struct {
	uris      []string
	notBefore time.Time
	notAfter  time.Time
	isCA      bool
}

// leaf issues a leaf under ca; chain holds the certificates above ca that
// the peer presents (the intermediate itself is appended when ca is not a
// root).
func (ca *testCA) leaf(t testing.TB, o leafOpts, chain ...*x509.Certificate) *tls.Certificate {
	t.Helper()
	if o.notBefore.IsZero() {
		o.notBefore = tNow.Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = tNow.Add(23 * time.Hour)
	}
	tmpl := &x509.Certificate{
		NotBefore:   o.notBefore,
		NotAfter:    o.notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if o.isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	for _, u := range o.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	k := testpki.Key(t)
	c := testpki.Sign(t, tmpl, ca.cert, k.Public(), ca.key)
	out := &tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
	for _, ch := range chain {
		out.Certificate = append(out.Certificate, ch.Raw)
	}
	return out
}
