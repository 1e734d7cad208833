package identity_test

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/fedmesh/fedmesh/internal/identity"
)

const echoID = "spiffe://fedmesh.test/ns/demo/sa/echo"

func TestVerifyPeer(t *testing.T) {
	root := newRoot(t, "fedmesh.test")
	cluster := root.intermediate(t, tNow.Add(-48*time.Hour), tNow.Add(300*24*time.Hour))
	expiredCluster := root.intermediate(t, tNow.Add(-48*time.Hour), tNow.Add(-time.Hour))
	foreignRoot := newRoot(t, "fedmesh.test") // same trust domain name, other key
	foreignCluster := foreignRoot.intermediate(t, tNow.Add(-48*time.Hour), tNow.Add(300*24*time.Hour))
	otherTD := newRoot(t, "other.test")
	bundle := root.bundle()

	good := cluster.leaf(t, leafOpts{uris: []string{echoID}}, cluster.cert)
	raw := func(c [][]byte) [][]byte { return c }

	tests := []struct {
		name       string
		certs      [][]byte
		bundle     *x509bundle.Bundle
		now        time.Time
		wantID     string
		wantReason string
		wantErr    error
	}{
		{name: "good", certs: good.Certificate, bundle: bundle, now: tNow, wantID: echoID},
		{name: "good directly under the root", certs: root.leaf(t, leafOpts{uris: []string{echoID}}).Certificate, bundle: bundle, now: tNow, wantID: echoID},
		{name: "no certificate", certs: nil, bundle: bundle, now: tNow, wantErr: identity.ErrNoCertificate, wantReason: identity.ReasonNoCertificate},
		{name: "garbage", certs: raw([][]byte{[]byte("not a certificate")}), bundle: bundle, now: tNow, wantErr: identity.ErrBadCertificate, wantReason: identity.ReasonBadCertificate},
		{name: "no URI SAN", certs: cluster.leaf(t, leafOpts{}, cluster.cert).Certificate, bundle: bundle, now: tNow, wantErr: identity.ErrSANCount, wantReason: identity.ReasonSANCount},
		{name: "two URI SANs", certs: cluster.leaf(t, leafOpts{uris: []string{echoID, "spiffe://fedmesh.test/ns/demo/sa/other"}}, cluster.cert).Certificate, bundle: bundle, now: tNow, wantErr: identity.ErrSANCount, wantReason: identity.ReasonSANCount},
		{name: "not a SPIFFE URI", certs: cluster.leaf(t, leafOpts{uris: []string{"https://fedmesh.test/ns/demo/sa/echo"}}, cluster.cert).Certificate, bundle: bundle, now: tNow, wantErr: identity.ErrNotSPIFFE, wantReason: identity.ReasonNotSPIFFE},
		{name: "foreign trust domain", certs: otherTD.leaf(t, leafOpts{uris: []string{"spiffe://other.test/ns/demo/sa/echo"}}).Certificate, bundle: bundle, now: tNow, wantErr: identity.ErrForeignTrustDomain, wantReason: identity.ReasonForeignTrustDomain},
		{name: "foreign root", certs: foreignCluster.leaf(t, leafOpts{uris: []string{echoID}}, foreignCluster.cert).Certificate, bundle: bundle, now: tNow, wantErr: identity.ErrUntrusted, wantReason: identity.ReasonUntrusted},
		{name: "intermediate not presented", certs: good.Certificate[:1], bundle: bundle, now: tNow, wantErr: identity.ErrUntrusted, wantReason: identity.ReasonUntrusted},
		{name: "no bundle", certs: good.Certificate, bundle: nil, now: tNow, wantErr: identity.ErrUntrusted, wantReason: identity.ReasonUntrusted},
		{name: "expired leaf", certs: good.Certificate, bundle: bundle, now: tNow.Add(24 * time.Hour), wantErr: identity.ErrExpired, wantReason: identity.ReasonExpired},
		{name: "leaf not yet valid", certs: good.Certificate, bundle: bundle, now: tNow.Add(-2 * time.Hour), wantErr: identity.ErrNotYetValid, wantReason: identity.ReasonNotYetValid},
		{name: "expired intermediate", certs: expiredCluster.leaf(t, leafOpts{uris: []string{echoID}}, expiredCluster.cert).Certificate, bundle: bundle, now: tNow, wantErr: identity.ErrExpired, wantReason: identity.ReasonExpired},
		{name: "leaf is a CA", certs: cluster.leaf(t, leafOpts{uris: []string{echoID}, isCA: true}, cluster.cert).Certificate, bundle: bundle, now: tNow, wantErr: identity.ErrBadCertificate, wantReason: identity.ReasonBadCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := identity.VerifyPeer(tt.certs, tt.bundle, tt.now)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("VerifyPeer = %v, %v; want error wrapping %v", id, err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.wantReason, identity.Reason(err)); diff != "" {
					t.Errorf("Reason (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyPeer: %v", err)
			}
			if diff := cmp.Diff(tt.wantID, id.String()); diff != "" {
				t.Errorf("ID (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "nil", err: nil, want: ""},
		{name: "other", err: errors.New("boom"), want: identity.ReasonOther},
		{name: "unauthorized", err: identity.ErrUnauthorized, want: identity.ReasonUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, identity.Reason(tt.err)); diff != "" {
				t.Errorf("Reason (-want +got):\n%s", diff)
			}
		})
	}
}

func BenchmarkVerifyPeer(b *testing.B) {
	root := newRoot(b, "fedmesh.test")
	cluster := root.intermediate(b, tNow.Add(-48*time.Hour), tNow.Add(300*24*time.Hour))
	good := cluster.leaf(b, leafOpts{uris: []string{echoID}}, cluster.cert)
	bundle := x509bundle.FromX509Authorities(root.td, []*x509.Certificate{root.cert})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := identity.VerifyPeer(good.Certificate, bundle, tNow); err != nil {
			b.Fatal(err)
		}
	}
}
