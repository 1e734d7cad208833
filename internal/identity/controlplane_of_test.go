package identity_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/testpki"
)

// clusterCA signs a cluster CA under root the way `fedmesh ca
// issue-cluster` does: the cluster's name is the one organizational unit.
func namedClusterCA(t *testing.T, root *testpki.CA, ous ...string) *testpki.CA {
	t.Helper()
	k := testpki.Key(t)
	c := testpki.Sign(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "fedmesh cluster CA", OrganizationalUnit: ous},
		NotBefore:             root.Now.Add(-time.Hour),
		NotAfter:              root.Now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, root.Cert, k.Public(), root.Key)
	return &testpki.CA{Cert: c, Key: k, Now: root.Now}
}

func TestVerifyControlPlaneOf(t *testing.T) {
	const td = "fedmesh.test"
	root := testpki.NewRootAt(t, "fed", tNow)
	bundle := x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString(td), []*x509.Certificate{root.Cert})
	east := namedClusterCA(t, root, "east-1")
	west := namedClusterCA(t, root, "west-1")
	noOU := namedClusterCA(t, root)
	twoOU := namedClusterCA(t, root, "east-1", "west-1")
	cpEast := "spiffe://" + td + "/fedmesh/cluster/east-1"
	leaf := func(ca *testpki.CA, uri string) []*x509.Certificate {
		return []*x509.Certificate{ca.Leaf(t, testpki.Key(t), uri), ca.Cert}
	}

	tests := []struct {
		name    string
		certs   []*x509.Certificate
		cluster string
		wantErr error
	}{
		{name: "own cluster's CA", certs: leaf(east, cpEast), cluster: "east-1"},
		{name: "another cluster's identity", certs: leaf(west, "spiffe://"+td+"/fedmesh/cluster/west-1"), cluster: "east-1", wantErr: identity.ErrWrongCluster},
		{name: "workload identity", certs: leaf(east, "spiffe://"+td+"/ns/demo/sa/echo"), cluster: "east-1", wantErr: identity.ErrNotControlPlane},
		{name: "minted by another cluster's CA", certs: leaf(west, cpEast), cluster: "east-1", wantErr: identity.ErrIssuerMismatch},
		{name: "issuer names no cluster", certs: leaf(noOU, cpEast), cluster: "east-1", wantErr: identity.ErrIssuerMismatch},
		{name: "issuer names two clusters", certs: leaf(twoOU, cpEast), cluster: "east-1", wantErr: identity.ErrIssuerMismatch},
		{name: "signed by the root directly", certs: []*x509.Certificate{root.Leaf(t, testpki.Key(t), cpEast)}, cluster: "east-1", wantErr: identity.ErrIssuerMismatch},
		{name: "untrusted root", certs: leaf(namedClusterCA(t, testpki.NewRootAt(t, "evil", tNow), "east-1"), cpEast), cluster: "east-1", wantErr: identity.ErrUntrusted},
		{name: "no certificate", certs: nil, cluster: "east-1", wantErr: identity.ErrNoCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := identity.VerifyControlPlaneOf(tt.certs, bundle, tNow, tt.cluster)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("VerifyControlPlaneOf = %v, %v; want an error wrapping %v", id, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyControlPlaneOf: %v", err)
			}
			if diff := cmp.Diff(cpEast, id.String()); diff != "" {
				t.Errorf("ID (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIssuingCluster(t *testing.T) {
	root := testpki.NewRootAt(t, "fed", tNow)
	if got, err := identity.IssuingCluster(namedClusterCA(t, root, "east-1").Cert); err != nil || got != "east-1" {
		t.Errorf("IssuingCluster = %q, %v; want east-1", got, err)
	}
	leaf := root.Leaf(t, testpki.Key(t), "spiffe://fedmesh.test/fedmesh/cluster/east-1")
	if got, err := identity.IssuingCluster(leaf); err == nil {
		t.Errorf("IssuingCluster of a leaf = %q, want an error", got)
	}
}
