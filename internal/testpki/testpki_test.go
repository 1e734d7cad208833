package testpki_test

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/testpki"
)

func TestChainVerifies(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	root := testpki.NewRootAt(t, "fed", now)
	inter := root.NewIntermediate(t, "east-1")
	leaf := inter.Leaf(t, testpki.Key(t), "spiffe://fedmesh.local/fedmesh/cluster/east-1")

	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Cert)
	inters.AddCert(inter.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now.Add(25 * time.Hour)}); err == nil {
		t.Error("leaf verifies a day after its CA's Now")
	}
	var uris []string
	for _, u := range leaf.URIs {
		uris = append(uris, u.String())
	}
	if diff := cmp.Diff([]string{"spiffe://fedmesh.local/fedmesh/cluster/east-1"}, uris); diff != "" {
		t.Errorf("leaf URIs (-want +got):\n%s", diff)
	}
	if leaf.SerialNumber.Cmp(inter.Cert.SerialNumber) == 0 {
		t.Error("leaf and intermediate share a serial number")
	}
	b, _ := pem.Decode(root.PEM())
	if b == nil || string(b.Bytes) != string(root.Cert.Raw) {
		t.Error("PEM does not hold the root certificate")
	}
}
