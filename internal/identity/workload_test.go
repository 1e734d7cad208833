package identity_test

import (
	"crypto/x509"
	"errors"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/testpki"
)

func TestVerifyWorkloadOf(t *testing.T) {
	const td = "fedmesh.test"
	root := testpki.NewRootAt(t, "fed", tNow)
	bundle := x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString(td), []*x509.Certificate{root.Cert})
	east := namedClusterCA(t, root, "east-1")
	west := namedClusterCA(t, root, "west-1")
	gw := "spiffe://" + td + "/ns/fedmesh-system/sa/fedmesh-gateway"
	leaf := func(ca *testpki.CA, uri string) []*x509.Certificate {
		return []*x509.Certificate{ca.Leaf(t, testpki.Key(t), uri), ca.Cert}
	}
	tests := []struct {
		name    string
		certs   []*x509.Certificate
		wantErr error
	}{
		{name: "the cluster's own CA", certs: leaf(east, gw)},
		{name: "another cluster's CA", certs: leaf(west, gw), wantErr: identity.ErrIssuerMismatch},
		{name: "issuer names no cluster", certs: leaf(namedClusterCA(t, root), gw), wantErr: identity.ErrIssuerMismatch},
		{name: "control plane identity", certs: leaf(east, "spiffe://"+td+"/fedmesh/cluster/east-1"), wantErr: identity.ErrUnauthorized},
		{name: "untrusted root", certs: leaf(namedClusterCA(t, testpki.NewRootAt(t, "evil", tNow), "east-1"), gw), wantErr: identity.ErrUntrusted},
		{name: "no certificate", wantErr: identity.ErrNoCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := identity.VerifyWorkloadOf(tt.certs, bundle, tNow, "east-1")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("VerifyWorkloadOf = %v, %v; want an error wrapping %v", id, err, tt.wantErr)
				}
				return
			}
			if err != nil || id.String() != gw {
				t.Fatalf("VerifyWorkloadOf = %v, %v; want %s", id, err, gw)
			}
		})
	}
}
