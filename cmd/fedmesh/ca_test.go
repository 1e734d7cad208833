package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/controlplane/ca"
)

// runCA runs a command line as run does and returns stdout, stderr and
// the exit code.
func runCA(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCmd(context.Background(), t, args...)
}

func TestCACommands(t *testing.T) {
	base := t.TempDir()
	root, east, wl := filepath.Join(base, "root"), filepath.Join(base, "east-1"), filepath.Join(base, "workloads", "echo-1")
	steps := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string // substring of stderr
	}{
		{name: "init", args: []string{"ca", "init", "--trust-domain", "fedmesh.test", "--dir", root}},
		{name: "init again refuses", args: []string{"ca", "init", "--trust-domain", "fedmesh.test", "--dir", root}, wantCode: 1, wantErr: "already exists"},
		{name: "init without trust domain", args: []string{"ca", "init", "--dir", filepath.Join(base, "x")}, wantCode: 2, wantErr: "--trust-domain"},
		{name: "init with a bad trust domain", args: []string{"ca", "init", "--trust-domain", "Not Valid", "--dir", filepath.Join(base, "x")}, wantCode: 2, wantErr: "--trust-domain"},
		{name: "init with an argument", args: []string{"ca", "init", "extra", "--trust-domain", "fedmesh.test", "--dir", filepath.Join(base, "x")}, wantCode: 2, wantErr: "unexpected argument"},
		{name: "issue-cluster", args: []string{"ca", "issue-cluster", "--root-dir", root, "--cluster", "east-1", "--dir", east, "--ttl", "720h"}},
		{name: "issue-cluster with a bad name", args: []string{"ca", "issue-cluster", "--root-dir", root, "--cluster", "East_1", "--dir", filepath.Join(base, "y")}, wantCode: 2, wantErr: "--cluster"},
		{name: "issue-cluster with a bad flag", args: []string{"ca", "issue-cluster", "--nope"}, wantCode: 2, wantErr: "unknown flag"},
		{name: "bootstrap-token", args: []string{"ca", "bootstrap-token", "--ca-dir", east, "--namespace", "demo", "--service-account", "echo", "--workload", "echo-1", "--out", wl}},
		{name: "bootstrap-token with a bad namespace", args: []string{"ca", "bootstrap-token", "--ca-dir", east, "--namespace", "De_mo", "--service-account", "echo", "--workload", "echo-1", "--out", wl}, wantCode: 2, wantErr: "namespace"},
		{name: "bootstrap-token without out", args: []string{"ca", "bootstrap-token", "--ca-dir", east, "--namespace", "demo", "--service-account", "echo", "--workload", "echo-1"}, wantCode: 2, wantErr: "--out"},
		{name: "show", args: []string{"ca", "show", "--dir", east}},
		{name: "show with an unknown format", args: []string{"ca", "show", "--dir", east, "-o", "xml"}, wantCode: 2, wantErr: "xml"},
		{name: "show of an empty dir", args: []string{"ca", "show", "--dir", base}, wantCode: 1, wantErr: "neither"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			_, stderr, code := runCA(t, s.args...)
			if code != s.wantCode {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, s.wantCode, stderr)
			}
			if s.wantErr != "" && !strings.Contains(stderr, s.wantErr) {
				t.Errorf("stderr %q does not mention %q", stderr, s.wantErr)
			}
		})
	}

	// The written token verifies with the cluster CA and names the workload.
	tok, err := ca.ReadBootstrapToken(wl)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(wl, ca.TokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v", err, st.Mode().Perm())
	}
	auth, err := ca.LoadAuthority(east)
	if err != nil {
		t.Fatal(err)
	}
	ns, sa, w, err := auth.VerifyBootstrapToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"demo", "echo", "echo-1"}, []string{ns, sa, w}); diff != "" {
		t.Errorf("token claims (-want +got):\n%s", diff)
	}

	out, stderr, code := runCA(t, "ca", "show", "--dir", east, "-o", "json")
	if code != 0 {
		t.Fatalf("show -o json: %d %s", code, stderr)
	}
	var info ca.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("show -o json output: %v\n%s", err, out)
	}
	got := []string{info.Kind, info.TrustDomain, info.Cluster}
	if diff := cmp.Diff([]string{"cluster", "fedmesh.test", "east-1"}, got); diff != "" {
		t.Errorf("show -o json (-want +got):\n%s", diff)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("show printed a private key")
	}
}
