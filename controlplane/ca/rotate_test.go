package ca

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/identity"
)

func TestCheck(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	oldFP, newFP := strings.Repeat("a", 64), strings.Repeat("b", 64)
	added := &RotationState{Root: &RootRotation{Phase: PhaseAdd, OldRoots: []string{oldFP}, NewRoot: newFP, AddedAt: now}}
	switched := &RotationState{Root: &RootRotation{Phase: PhaseSwitch, OldRoots: []string{oldFP}, NewRoot: newFP,
		AddedAt: now, SwitchedAt: now, Window: Duration(time.Hour)}}
	none := &RotationState{}
	tests := []struct {
		name   string
		rs     *RotationState
		bundle []string
		step   Step
		at     time.Time
		ok     bool
	}{
		{"intermediate under the bundle's root", none, []string{oldFP}, Step{Kind: "intermediate", NewRoot: oldFP}, now, true},
		{"intermediate under a root not in the bundle", none, []string{oldFP}, Step{Kind: "intermediate", NewRoot: newFP}, now, false},
		{"intermediate during a root rotation", added, []string{oldFP, newFP}, Step{Kind: "intermediate", NewRoot: oldFP}, now, false},
		{"add", none, []string{oldFP}, Step{Kind: "root", Phase: PhaseAdd, NewRoot: newFP}, now, true},
		{"add a root already trusted", none, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseAdd, NewRoot: newFP}, now, false},
		{"add again is a no-op", added, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseAdd, NewRoot: newFP}, now, true},
		{"add another root mid-rotation", added, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseAdd, NewRoot: oldFP}, now, false},
		{"add after switch", switched, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseAdd, NewRoot: newFP}, now, false},
		{"switch before add", none, []string{oldFP}, Step{Kind: "root", Phase: PhaseSwitch, NewRoot: newFP}, now, false},
		{"switch", added, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseSwitch, NewRoot: newFP}, now, true},
		{"switch to another root", added, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseSwitch, NewRoot: oldFP}, now, false},
		{"switch twice", switched, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseSwitch, NewRoot: newFP}, now, false},
		{"remove before switch", added, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseRemove}, now.Add(time.Hour), false},
		{"remove inside the window", switched, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseRemove}, now.Add(59 * time.Minute), false},
		{"remove inside the window, forced", switched, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseRemove, Force: true}, now, true},
		{"remove after the window", switched, []string{oldFP, newFP}, Step{Kind: "root", Phase: PhaseRemove}, now.Add(time.Hour), true},
		{"remove without rotation", none, []string{oldFP}, Step{Kind: "root", Phase: PhaseRemove}, now, false},
		{"unknown phase", added, []string{oldFP}, Step{Kind: "root", Phase: "swap"}, now, false},
		{"unknown kind", none, []string{oldFP}, Step{Kind: "leaf"}, now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.rs, tt.bundle, tt.step, tt.at)
			if (err == nil) != tt.ok {
				t.Fatalf("Check = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrRotation) {
				t.Errorf("error %v does not wrap ErrRotation", err)
			}
		})
	}
}

func TestRotateIntermediate(t *testing.T) {
	a, rootDir := newCluster(t, "east-1", AuthorityConfig{})
	caDir := filepath.Join(filepath.Dir(rootDir), "east-1")
	oldCA := a.CACertificate()
	oldLeaf, err := a.IssueWorkload("demo", "echo", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	oldOp, err := a.IssueOperator("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tokBefore, err := a.IssueBootstrapToken("demo", "echo", "echo-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	root, err := LoadRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := RotateIntermediate(root, caDir, 0, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	changed, err := a.Reload(caDir)
	if err != nil || !changed {
		t.Fatalf("Reload = %v, %v; want changed", changed, err)
	}
	if a.CACertificate().Equal(oldCA) {
		t.Fatal("the authority still signs with the old intermediate")
	}
	if changed, err := a.Reload(caDir); err != nil || changed {
		t.Fatalf("second Reload = %v, %v; want unchanged", changed, err)
	}
	newLeaf, err := a.IssueWorkload("demo", "echo", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if newLeaf.Chain[1].Equal(oldCA) {
		t.Error("new leaf signed by the old intermediate")
	}
	// Both generations verify: same root.
	for name, is := range map[string]*Issued{"old": oldLeaf, "new": newLeaf} {
		if _, err := identity.VerifyPeerCertificates(is.Chain, a.Bundle(), time.Time{}); err != nil {
			t.Errorf("%s leaf refused: %v", name, err)
		}
	}
	// An operator certificate of the retired intermediate is still this
	// cluster's own during the window.
	if got := a.LeafIssuer(oldOp.Chain[0]); got != IssuerCluster {
		t.Errorf("LeafIssuer(operator of the retired CA) = %v, want IssuerCluster", got)
	}
	// The token secret is kept: tokens issued before still verify.
	if _, _, _, err := a.VerifyBootstrapToken(tokBefore); err != nil {
		t.Errorf("bootstrap token from before the rotation refused: %v", err)
	}
	rs, err := ReadRotation(caDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Retired) != 1 || rs.Retired[0].SHA256 != Fingerprint(oldCA) {
		t.Fatalf("retired = %+v, want the old intermediate", rs.Retired)
	}
	if m := modeOf(t, filepath.Join(caDir, CAKeyFile)); m != 0o600 {
		t.Errorf("ca.key mode %v, want 0600", m)
	}
	// A fresh load sees the same thing.
	b, err := LoadAuthority(caDir)
	if err != nil {
		t.Fatal(err)
	}
	if !b.CACertificate().Equal(a.CACertificate()) {
		t.Error("LoadAuthority after rotation reads another intermediate")
	}
}

func TestRotateRoot(t *testing.T) {
	a, rootDir := newCluster(t, "east-1", AuthorityConfig{})
	base := filepath.Dir(rootDir)
	caDir := filepath.Join(base, "east-1")
	// A second cluster of the same federation, rotated alongside.
	if err := IssueClusterCA(rootDir, "west-1", filepath.Join(base, "west-1"), 0); err != nil {
		t.Fatal(err)
	}
	west, err := LoadAuthority(filepath.Join(base, "west-1"))
	if err != nil {
		t.Fatal(err)
	}
	newRootDir := filepath.Join(base, "root2")
	if err := InitRoot(testTD, newRootDir); err != nil {
		t.Fatal(err)
	}
	newRoot, err := LoadRoot(newRootDir)
	if err != nil {
		t.Fatal(err)
	}
	oldLeaf, err := a.IssueWorkload("demo", "echo", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	const window = time.Hour
	step := func(cluster *Authority, dir, phase string, at time.Time, force bool) error {
		t.Helper()
		if err := RotateRoot(phase, newRoot, dir, 0, window, force, at); err != nil {
			return err
		}
		if _, err := cluster.Reload(dir); err != nil {
			t.Fatalf("reload after %s: %v", phase, err)
		}
		return nil
	}
	westDir := filepath.Join(base, "west-1")

	// Switch before add is refused and changes nothing.
	if err := RotateRoot(PhaseSwitch, newRoot, caDir, 0, window, false, now); !errors.Is(err, ErrRotation) {
		t.Fatalf("switch before add = %v, want ErrRotation", err)
	}
	for _, c := range []struct {
		a   *Authority
		dir string
	}{{a, caDir}, {west, westDir}} {
		if err := step(c.a, c.dir, PhaseAdd, now, false); err != nil {
			t.Fatal(err)
		}
		if n := len(c.a.TrustBundle()); n != 2 {
			t.Fatalf("%s trusts %d roots after add, want 2", c.a.Cluster(), n)
		}
	}
	if err := step(a, caDir, PhaseSwitch, now, false); err != nil {
		t.Fatal(err)
	}
	newLeaf, err := a.IssueWorkload("demo", "echo", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := newLeaf.Chain[1].CheckSignatureFrom(newRoot.Certificate()); got != nil {
		t.Fatalf("new intermediate not signed by the new root: %v", got)
	}
	// During the window, west (not switched yet) trusts both.
	for name, is := range map[string]*Issued{"old": oldLeaf, "new": newLeaf} {
		if _, err := identity.VerifyPeerCertificates(is.Chain, west.Bundle(), time.Time{}); err != nil {
			t.Errorf("west refuses the %s leaf during the window: %v", name, err)
		}
	}
	if err := step(a, caDir, PhaseRemove, now.Add(window/2), false); !errors.Is(err, ErrRotation) {
		t.Fatalf("remove inside the window = %v, want ErrRotation", err)
	}
	if n := len(a.TrustBundle()); n != 2 {
		t.Fatalf("a refused remove changed the bundle: %d roots", n)
	}
	if err := step(a, caDir, PhaseRemove, now.Add(window), false); err != nil {
		t.Fatal(err)
	}
	if got, want := Fingerprint(a.TrustBundle()[0]), Fingerprint(newRoot.Certificate()); len(a.TrustBundle()) != 1 || got != want {
		t.Fatalf("bundle after remove holds %d roots, first %s; want only the new root %s", len(a.TrustBundle()), got, want)
	}
	if _, err := identity.VerifyPeerCertificates(oldLeaf.Chain, a.Bundle(), time.Time{}); !errors.Is(err, identity.ErrUntrusted) {
		t.Errorf("leaf of the old root after remove: %v, want ErrUntrusted", err)
	}
	if _, err := identity.VerifyPeerCertificates(newLeaf.Chain, a.Bundle(), time.Time{}); err != nil {
		t.Errorf("leaf of the new root refused after remove: %v", err)
	}
	rs, err := ReadRotation(caDir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&RotationState{}, rs); diff != "" {
		t.Errorf("rotation state after remove (-want +got):\n%s", diff)
	}
	// A second rotation of an unrelated new root can start again.
	if err := RotateRoot(PhaseRemove, nil, caDir, 0, window, false, now.Add(2*window)); !errors.Is(err, ErrRotation) {
		t.Errorf("remove without a rotation = %v, want ErrRotation", err)
	}
}

func TestReloadKeepsGoodStateOnBadDir(t *testing.T) {
	a, rootDir := newCluster(t, "east-1", AuthorityConfig{})
	caDir := filepath.Join(filepath.Dir(rootDir), "east-1")
	before := a.CACertificate()
	// A half-written rotation: a new key beside the old certificate.
	other, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	pemKey, _ := EncodeKeyPEM(other)
	if err := os.WriteFile(filepath.Join(caDir, CAKeyFile), pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := a.Reload(caDir); err == nil || changed {
		t.Fatalf("Reload of a mismatched key = %v, %v; want an error", changed, err)
	}
	if !a.CACertificate().Equal(before) {
		t.Error("a failed reload replaced the intermediate")
	}
	if _, err := a.IssueWorkload("demo", "echo", time.Hour); err != nil {
		t.Errorf("signing after a failed reload: %v", err)
	}
	// Another cluster's CA in the same directory is refused.
	if err := os.RemoveAll(caDir); err != nil {
		t.Fatal(err)
	}
	if err := IssueClusterCA(rootDir, "west-1", caDir, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reload(caDir); err == nil || !strings.Contains(err.Error(), "west-1") {
		t.Errorf("Reload of another cluster's CA = %v, want an error naming west-1", err)
	}
}

func FuzzParseRotation(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"root":{"phase":"switch","oldRoots":["aa"],"newRoot":"bb","addedAt":"2030-01-01T00:00:00Z","switchedAt":"2030-01-01T00:00:00Z","window":"25h"}}`))
	f.Add([]byte(`{"retired":[{"file":"ca-1.crt","sha256":"aa","retiredAt":"2030-01-01T00:00:00Z","until":"2030-01-02T00:00:00Z"}]}`))
	f.Add([]byte(`{"retired":[{"file":"../ca.key"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseRotation(data)
		if err != nil {
			return
		}
		for _, r := range rs.Retired {
			if r.File != filepath.Base(r.File) || strings.HasPrefix(r.File, ".") {
				t.Fatalf("accepted retired file %q outside the retired directory", r.File)
			}
		}
		if r := rs.Root; r != nil && r.Phase != PhaseAdd && r.Phase != PhaseSwitch {
			t.Fatalf("accepted phase %q", r.Phase)
		}
	})
}
