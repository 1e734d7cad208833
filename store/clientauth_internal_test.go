package store

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/testpki"
)

// rootPEM makes a self-signed CA certificate with the given URI SANs, as
// PEM.
func rootPEM(t testing.TB, isCA bool, uris ...string) []byte {
	t.Helper()
	k := testpki.Key(t)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  isCA,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	c := testpki.Sign(t, tmpl, nil, k.Public(), k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func TestParseClientCABundle(t *testing.T) {
	good := rootPEM(t, true, "spiffe://fedmesh.test")
	rotated := rootPEM(t, true, "spiffe://fedmesh.test")
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"one root", good, ""},
		{"two roots of one trust domain", append(append([]byte{}, good...), rotated...), ""},
		{"empty", nil, "no certificate"},
		{"not PEM", []byte("hello"), "not PEM"},
		{"trailing garbage", append(append([]byte{}, good...), "junk"...), "not PEM"},
		{"a key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), `"PRIVATE KEY"`},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}}), "certificate 1"},
		{"not a CA", rootPEM(t, false, "spiffe://fedmesh.test"), "not a CA"},
		{"no URI SAN", rootPEM(t, true), "0 URI SANs"},
		{"two URI SANs", rootPEM(t, true, "spiffe://fedmesh.test", "spiffe://other.test"), "2 URI SANs"},
		{"not SPIFFE", rootPEM(t, true, "https://fedmesh.test"), "URI SAN"},
		{"two trust domains", append(append([]byte{}, good...), rootPEM(t, true, "spiffe://other.test")...), "trust domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := parseClientCABundle(tt.data)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b.TrustDomain().Name() != "fedmesh.test" {
					t.Errorf("trust domain %q", b.TrustDomain().Name())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseClientCABundle = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseClientCABundle(f *testing.F) {
	good := rootPEM(f, true, "spiffe://fedmesh.test")
	f.Add(good)
	f.Add(append(append([]byte{}, good...), good...))
	f.Add(rootPEM(f, true))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseClientCABundle(data)
		if err != nil {
			return
		}
		if b.Empty() || b.TrustDomain().IsZero() {
			t.Fatalf("accepted a bundle with no authority or trust domain")
		}
		for _, c := range b.X509Authorities() {
			if !c.IsCA || len(c.URIs) != 1 {
				t.Fatalf("accepted %q: CA %v, %d URI SANs", c.Subject, c.IsCA, len(c.URIs))
			}
		}
	})
}
