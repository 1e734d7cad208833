// Package testpki makes throwaway certificate authorities for tests: real
// ECDSA P-256 keys and X.509 certificates, a root, intermediates under it
// and leaves with SPIFFE IDs, built directly with crypto/x509 so that tests
// can also build what no fedmesh CA would issue (no URI SAN, two of them,
// an expired chain).
//
// It is for tests only: every function takes a testing.TB and fails the
// test on error.
//
//	root := testpki.NewRoot(t, "fed")
//	cluster := root.NewIntermediate(t, "east-1")
//	key := testpki.Key(t)
//	leaf := cluster.Leaf(t, key, "spiffe://fedmesh.local/fedmesh/cluster/east-1")
//	chain := []*x509.Certificate{leaf, cluster.Cert}
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// serial numbers every certificate of the process apart.
var serial atomic.Int64

// Key returns a new ECDSA P-256 key.
func Key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Sign gives tmpl a serial number unique in the process and signs it for
// pub with parent and parentKey; a nil parent self-signs tmpl. tmpl's
// validity is used as it is.
func Sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// CA is a certificate authority: a CA certificate and its key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Now is the time the certificates the CA makes are valid around:
	// from an hour before it to a day after.
	Now time.Time
}

// NewRoot makes a self-signed root CA, "NAME root", valid around the wall
// clock.
func NewRoot(t testing.TB, name string) *CA {
	t.Helper()
	return NewRootAt(t, name, time.Now())
}

// NewRootAt makes a self-signed root CA valid around now; its
// intermediates and leaves are valid around now too.
func NewRootAt(t testing.TB, name string, now time.Time) *CA {
	t.Helper()
	k := Key(t)
	c := Sign(t, caTemplate(name+" root", now), nil, k.Public(), k)
	return &CA{Cert: c, Key: k, Now: now}
}

// NewTrustDomainRoot makes a root as `fedmesh ca init` does: self-signed,
// valid around now, with its trust domain's SPIFFE ID (spiffe://TD) as
// its one URI SAN, which SPIFFE bundles of fedmesh require.
func NewTrustDomainRoot(t testing.TB, name, td string) *CA {
	t.Helper()
	k := Key(t)
	tmpl := caTemplate(name+" root", time.Now())
	tmpl.URIs = []*url.URL{{Scheme: "spiffe", Host: td}}
	return &CA{Cert: Sign(t, tmpl, nil, k.Public(), k), Key: k, Now: time.Now()}
}

// NewIntermediate makes a CA, "NAME intermediate", signed by ca.
func (ca *CA) NewIntermediate(t testing.TB, name string) *CA {
	t.Helper()
	k := Key(t)
	c := Sign(t, caTemplate(name+" intermediate", ca.Now), ca.Cert, k.Public(), ca.Key)
	return &CA{Cert: c, Key: k, Now: ca.Now}
}

// Leaf signs a leaf certificate for key with the given URI SANs (SPIFFE
// IDs, normally exactly one), for digital signatures and TLS server and
// client authentication.
func (ca *CA) Leaf(t testing.TB, key crypto.Signer, uris ...string) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "leaf"},
		NotBefore:   ca.Now.Add(-time.Hour),
		NotAfter:    ca.Now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	return Sign(t, tmpl, ca.Cert, key.Public(), ca.Key)
}

// PEM returns the CA certificate as PEM.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

func caTemplate(cn string, now time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}
