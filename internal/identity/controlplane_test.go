package identity_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/testpki"
)

// clusterCA signs an intermediate shaped as controlplane/ca's IssueCluster
// makes it: Subject OU naming the cluster(s), MaxPathLen 0 unless open.
func (ca *testCA) clusterCA(t testing.TB, open bool, ou ...string) *testCA {
	t.Helper()
	k := testpki.Key(t)
	tmpl := caTemplate("fedmesh cluster CA", tNow.Add(-48*time.Hour), tNow.Add(300*24*time.Hour))
	tmpl.Subject = pkix.Name{Organization: []string{"fedmesh"}, OrganizationalUnit: ou, CommonName: tmpl.Subject.CommonName}
	tmpl.MaxPathLenZero = !open
	c := testpki.Sign(t, tmpl, ca.cert, k.Public(), ca.key)
	return &testCA{cert: c, key: k, td: ca.td}
}

const (
	east1ID = "spiffe://fedmesh.test/fedmesh/cluster/east-1"
	east2ID = "spiffe://fedmesh.test/fedmesh/cluster/east-2"
)

func TestVerifyControlPlane(t *testing.T) {
	root := newRoot(t, "fedmesh.test")
	east1 := root.clusterCA(t, false, "east-1")
	east2 := root.clusterCA(t, false, "east-2")
	openEast2 := root.clusterCA(t, true, "east-2")
	subEast1 := openEast2.clusterCA(t, false, "east-1") // east-2's CA posing as east-1's
	subOfEast1 := east1.clusterCA(t, false, "east-1")   // path length exceeded
	noOU := root.clusterCA(t, false)
	twoOU := root.clusterCA(t, false, "east-1", "east-2")
	badOU := root.clusterCA(t, false, "East 1")
	otherRoot := newRoot(t, "fedmesh.test")
	otherEast1 := otherRoot.clusterCA(t, false, "east-1")
	otherTD := newRoot(t, "other.test")
	otherTDEast1 := otherTD.clusterCA(t, false, "east-1")
	bundle := root.bundle()

	leaf := func(ca *testCA, id string, chain ...*x509.Certificate) []*x509.Certificate {
		c := ca.leaf(t, leafOpts{uris: []string{id}}, chain...)
		out := []*x509.Certificate{c.Leaf}
		return append(out, chain...)
	}

	tests := []struct {
		name        string
		certs       []*x509.Certificate
		wantCluster string
		wantErr     error
	}{
		{"own cluster CA", leaf(east1, east1ID, east1.cert), "east-1", nil},
		{"other cluster's CA signs east-1", leaf(east2, east1ID, east2.cert), "", identity.ErrIssuerMismatch},
		{"other cluster's CA, own CA presented too", leaf(east2, east1ID, east1.cert, east2.cert), "", identity.ErrIssuerMismatch},
		{"sub-CA named east-1 under east-2's open CA", leaf(subEast1, east1ID, subEast1.cert, openEast2.cert), "", identity.ErrIssuerMismatch},
		{"sub-CA under a MaxPathLen 0 CA", leaf(subOfEast1, east1ID, subOfEast1.cert, east1.cert), "", identity.ErrUntrusted},
		{"signed by the root directly", leaf(root, east1ID), "", identity.ErrIssuerMismatch},
		{"CA names no cluster", leaf(noOU, east1ID, noOU.cert), "", identity.ErrIssuerMismatch},
		{"CA names two clusters", leaf(twoOU, east1ID, twoOU.cert), "", identity.ErrIssuerMismatch},
		{"CA names an invalid cluster", leaf(badOU, east1ID, badOU.cert), "", identity.ErrIssuerMismatch},
		{"workload identity", leaf(east1, echoID, east1.cert), "", identity.ErrUnauthorized},
		{"trust domain root", leaf(east1, "spiffe://fedmesh.test", east1.cert), "", identity.ErrUnauthorized},
		{"another root of the same trust domain", leaf(otherEast1, east1ID, otherEast1.cert), "", identity.ErrUntrusted},
		{"another trust domain", leaf(otherTDEast1, "spiffe://other.test/fedmesh/cluster/east-1", otherTDEast1.cert), "", identity.ErrForeignTrustDomain},
		{"no certificate", nil, "", identity.ErrNoCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cluster, chains, err := identity.VerifyControlPlane(tt.certs, bundle, tNow)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("VerifyControlPlane = %q, %v; want error wrapping %v", cluster, err, tt.wantErr)
				}
				if cluster != "" || chains != nil {
					t.Errorf("refusal returned cluster %q and %d chains", cluster, len(chains))
				}
				if identity.Reason(err) == identity.ReasonOther {
					t.Errorf("Reason(%v) = other", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyControlPlane: %v", err)
			}
			if cluster != tt.wantCluster {
				t.Errorf("cluster = %q, want %q", cluster, tt.wantCluster)
			}
			if len(chains) == 0 {
				t.Fatal("no chains returned")
			}
			for _, c := range chains {
				if len(c) != 3 || c[0] != tt.certs[0] || !c[2].Equal(root.cert) {
					t.Errorf("chain %v is not leaf, cluster CA, root", c)
				}
				if got, _ := identity.IssuingCluster(c[1]); got != tt.wantCluster {
					t.Errorf("chain's CA serves %q, want %q", got, tt.wantCluster)
				}
			}
		})
	}
	if got := identity.Reason(identity.ErrIssuerMismatch); got != identity.ReasonIssuerMismatch {
		t.Errorf("Reason(ErrIssuerMismatch) = %q", got)
	}
}

func TestControlPlaneCN(t *testing.T) {
	if got := identity.ControlPlaneCN("east-1"); got != "fedmesh-cp-east-1" {
		t.Errorf("ControlPlaneCN(east-1) = %q", got)
	}
}

// FuzzVerifyControlPlane feeds arbitrary DER as a presented leaf and
// intermediate. Whatever parses must never be accepted unless it is a
// control plane leaf, chained leaf, cluster CA of the same cluster, root.
func FuzzVerifyControlPlane(f *testing.F) {
	root := newRoot(f, "fedmesh.test")
	east1 := root.clusterCA(f, false, "east-1")
	east2 := root.clusterCA(f, false, "east-2")
	good := east1.leaf(f, leafOpts{uris: []string{east1ID}}, east1.cert)
	crossed := east2.leaf(f, leafOpts{uris: []string{east1ID}}, east2.cert)
	f.Add(good.Certificate[0], good.Certificate[1])
	f.Add(crossed.Certificate[0], crossed.Certificate[1])
	f.Add(crossed.Certificate[0], east1.cert.Raw)
	f.Add([]byte("not DER"), east1.cert.Raw)
	bundle := root.bundle()
	f.Fuzz(func(t *testing.T, leafDER, caDER []byte) {
		var certs []*x509.Certificate
		for _, der := range [][]byte{leafDER, caDER} {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return
			}
			certs = append(certs, c)
		}
		cluster, chains, err := identity.VerifyControlPlane(certs, bundle, tNow)
		if err != nil {
			if identity.Reason(err) == identity.ReasonOther {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		id, err := identity.PeerID(tls.ConnectionState{PeerCertificates: certs})
		if err != nil {
			t.Fatalf("accepted a leaf without one SPIFFE ID: %v", err)
		}
		if got, err := identity.ParseControlPlaneID(id); err != nil || got != cluster {
			t.Fatalf("accepted %s as cluster %q", id, cluster)
		}
		for _, c := range chains {
			if got, err := identity.IssuingCluster(c[1]); err != nil || got != cluster || len(c) != 3 {
				t.Fatalf("accepted %s through a chain of %d with CA of %q", id, len(c), got)
			}
		}
	})
}
