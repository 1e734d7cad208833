package ca

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
)

func TestOperatorID(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString(testTD)
	tests := []struct {
		name    string
		wantErr bool
	}{
		{"alice", false}, {"ci.deploy-bot", false}, {"Alice", true}, {"", true}, {"a/b", true}, {"-x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := OperatorID(td, tt.name)
			if (err != nil) != tt.wantErr {
				t.Fatalf("OperatorID(%q) = %v, %v; want error %v", tt.name, id, err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, identity.ErrBadID) {
					t.Errorf("error %v does not wrap ErrBadID", err)
				}
				return
			}
			if got, err := ParseOperatorID(id); err != nil || got != tt.name {
				t.Errorf("ParseOperatorID(%s) = %q, %v", id, got, err)
			}
		})
	}
	cp, _ := identity.ControlPlaneID(td, "east-1")
	wl, _ := identity.WorkloadID(td, "fedmesh", "operator")
	for _, id := range []spiffeid.ID{cp, wl, spiffeid.RequireFromString("spiffe://" + testTD + "/fedmesh/operator/Bad")} {
		if _, err := ParseOperatorID(id); !errors.Is(err, ErrNotOperator) {
			t.Errorf("ParseOperatorID(%s) = %v, want ErrNotOperator", id, err)
		}
	}
}

// TestIssueOperator checks both issuers' certificates: one URI SAN, client
// auth only, no Common Name (never an etcd user), short-lived, chaining
// to the bundle, and told apart by LeafIssuer.
func TestIssueOperator(t *testing.T) {
	east1, rootDir := newCluster(t, "east-1", AuthorityConfig{})
	root, err := LoadRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	east2Dir := filepath.Join(t.TempDir(), "east-2")
	if err := IssueClusterCA(rootDir, "east-2", east2Dir, 0); err != nil {
		t.Fatal(err)
	}
	east2, err := LoadAuthority(east2Dir)
	if err != nil {
		t.Fatal(err)
	}
	fromCluster, err := east1.IssueOperator("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	fromRoot, err := root.IssueOperator("demo", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fromPeer, err := east2.IssueOperator("mallory", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		is     *Issued
		chain  int
		ttl    time.Duration
		issuer OperatorIssuer
	}{
		{"cluster", fromCluster, 2, DefaultOperatorTTL, IssuerCluster},
		{"root", fromRoot, 1, time.Hour, IssuerRoot},
		{"peer cluster", fromPeer, 2, DefaultOperatorTTL, IssuerOther},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leaf := tt.is.Chain[0]
			if len(tt.is.Chain) != tt.chain || len(leaf.URIs) != 1 || leaf.Subject.CommonName != "" || leaf.IsCA {
				t.Errorf("chain %d, URIs %v, CN %q, CA %v", len(tt.is.Chain), leaf.URIs, leaf.Subject.CommonName, leaf.IsCA)
			}
			if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
				t.Errorf("ExtKeyUsage %v, want client auth only", leaf.ExtKeyUsage)
			}
			if got := leaf.NotAfter.Sub(leaf.NotBefore); got > tt.ttl+time.Minute || got < tt.ttl {
				t.Errorf("valid for %v, want %v (plus the backdate)", got, tt.ttl)
			}
			if _, err := identity.VerifyPeerCertificates(tt.is.Chain, east1.Bundle(), time.Now()); err != nil {
				t.Errorf("does not verify against the federation bundle: %v", err)
			}
			if got := east1.LeafIssuer(leaf); got != tt.issuer {
				t.Errorf("LeafIssuer = %v, want %v", got, tt.issuer)
			}
		})
	}
	if _, err := east1.IssueOperator("alice", MaxOperatorTTL+time.Hour); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("IssueOperator past the maximum TTL = %v, want an error", err)
	}
}

// TestWriteOperator writes and re-writes an operator directory: the key
// is 0600, and a second issue replaces the first.
func TestWriteOperator(t *testing.T) {
	_, rootDir := newCluster(t, "east-1", AuthorityConfig{})
	out := filepath.Join(t.TempDir(), "op")
	first, err := IssueOperatorFiles("", rootDir, "alice", out, 0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := IssueOperatorFiles("", rootDir, "alice", out, 0)
	if err != nil {
		t.Fatalf("re-issuing into the same directory: %v", err)
	}
	if got := modeOf(t, filepath.Join(out, OperatorKeyFile)); got != 0o600 {
		t.Errorf("key mode %v, want 0600", got)
	}
	data, err := os.ReadFile(filepath.Join(out, OperatorCertFile))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ParseCertsPEM(data)
	if err != nil || certs[0].SerialNumber.Cmp(second.Chain[0].SerialNumber) != 0 || certs[0].SerialNumber.Cmp(first.Chain[0].SerialNumber) == 0 {
		t.Errorf("the directory holds %v, want the second certificate", err)
	}
	if _, err := IssueOperatorFiles("", "", "alice", out, 0); err == nil {
		t.Error("IssueOperatorFiles with no CA succeeded")
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 3 {
		t.Errorf("operator directory holds %d files, want 3 (no temporary files left)", len(entries))
	}
}
