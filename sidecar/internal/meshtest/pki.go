// Package meshtest builds what sidecar tests need around a sidecar: a real
// certificate authority and SVIDs (good and deliberately bad ones), xDS
// resources following docs/xds.md, and small real apps (HTTP, gRPC, TCP)
// on loopback.
package meshtest

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/testpki"
)

// CA is a real certificate authority of one trust domain: a root, or a
// cluster intermediate under one (ClusterCA).
type CA struct {
	TD   spiffeid.TrustDomain
	Cert *x509.Certificate
	Key  crypto.Signer
	// root is the root above a cluster intermediate, nil for a root.
	root *CA
}

// ClusterCA signs a cluster intermediate CA as controlplane/ca does
// (Subject OU = cluster, one level below the root, URIs limited to the
// trust domain); the SVIDs it issues carry it in their chain.
func (ca *CA) ClusterCA(t testing.TB, cluster string) *CA {
	t.Helper()
	k := testpki.Key(t)
	now := time.Now()
	cert := testpki.Sign(t, &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"fedmesh"}, OrganizationalUnit: []string{cluster}, CommonName: "fedmesh cluster CA " + cluster},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{ca.TD.ID().URL()},
		PermittedURIDomains:   []string{ca.TD.Name()},
	}, ca.Cert, k.Public(), ca.Key)
	return &CA{TD: ca.TD, Cert: cert, Key: k, root: ca}
}

// NewCA creates a root CA for the trust domain td.
func NewCA(t testing.TB, td string) *CA {
	t.Helper()
	k := testpki.Key(t)
	now := time.Now()
	tdID := spiffeid.RequireTrustDomainFromString(td)
	cert := testpki.Sign(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: td + " root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{tdID.ID().URL()},
	}, nil, k.Public(), k)
	return &CA{TD: tdID, Cert: cert, Key: k}
}

// Bundle returns the root as a trust bundle.
func (ca *CA) Bundle() *x509bundle.Bundle {
	if ca.root != nil {
		return ca.root.Bundle()
	}
	return x509bundle.FromX509Authorities(ca.TD, []*x509.Certificate{ca.Cert})
}

// PEM returns the root certificate in PEM.
func (ca *CA) PEM() []byte {
	if ca.root != nil {
		return ca.root.PEM()
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// SVID options.
type SVID struct {
	// URIs are the URI SANs (normally exactly one SPIFFE ID).
	URIs []string
	// NotBefore and NotAfter default to an hour ago and a day ahead.
	NotBefore, NotAfter time.Time
}

// Issue signs a leaf certificate and returns it as a tls.Certificate (leaf
// parsed) and as PEM chain and PKCS#8 key.
func (ca *CA) Issue(t testing.TB, o SVID) (*tls.Certificate, []byte, []byte) {
	t.Helper()
	k := testpki.Key(t)
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	var uris []*url.URL
	for _, u := range o.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		uris = append(uris, pu)
	}
	leaf := testpki.Sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "svid"},
		NotBefore:   o.NotBefore,
		NotAfter:    o.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        uris,
	}, ca.Cert, k.Public(), ca.Key)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	c := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: k, Leaf: leaf}
	if ca.root != nil {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
		c.Certificate = append(c.Certificate, ca.Cert.Raw)
	}
	return c, certPEM, keyPEM
}

// Workload returns spiffe://TD/ns/NS/sa/SA.
func (ca *CA) Workload(ns, sa string) string {
	return "spiffe://" + ca.TD.Name() + "/ns/" + ns + "/sa/" + sa
}
