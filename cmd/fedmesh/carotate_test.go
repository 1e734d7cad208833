package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCARotateCommands(t *testing.T) {
	base := t.TempDir()
	root, root2, east := filepath.Join(base, "root"), filepath.Join(base, "root2"), filepath.Join(base, "east-1")
	steps := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string // substring of stderr
	}{
		{name: "init", args: []string{"ca", "init", "--trust-domain", "fedmesh.test", "--dir", root}},
		{name: "init the new root", args: []string{"ca", "init", "--trust-domain", "fedmesh.test", "--dir", root2}},
		{name: "issue-cluster", args: []string{"ca", "issue-cluster", "--root-dir", root, "--cluster", "east-1", "--dir", east}},
		{name: "intermediate without root", args: []string{"ca", "rotate", "intermediate", "--ca-dir", east}, wantCode: 2, wantErr: "--root-dir"},
		{name: "intermediate under a foreign root", args: []string{"ca", "rotate", "intermediate", "--root-dir", root2, "--ca-dir", east}, wantCode: 3, wantErr: "not in the cluster's trust bundle"},
		{name: "intermediate", args: []string{"ca", "rotate", "intermediate", "--root-dir", root, "--ca-dir", east}},
		{name: "unknown phase", args: []string{"ca", "rotate", "root", "--phase", "swap", "--ca-dir", east}, wantCode: 2, wantErr: "--phase"},
		{name: "switch before add", args: []string{"ca", "rotate", "root", "--phase", "switch", "--new-root-dir", root2, "--ca-dir", east}, wantCode: 3, wantErr: "add"},
		{name: "add without the new root", args: []string{"ca", "rotate", "root", "--phase", "add", "--ca-dir", east}, wantCode: 2, wantErr: "--new-root-dir"},
		{name: "add", args: []string{"ca", "rotate", "root", "--phase", "add", "--new-root-dir", root2, "--ca-dir", east}},
		{name: "switch", args: []string{"ca", "rotate", "root", "--phase", "switch", "--new-root-dir", root2, "--ca-dir", east, "--window", "1h"}},
		{name: "remove inside the window", args: []string{"ca", "rotate", "root", "--phase", "remove", "--ca-dir", east}, wantCode: 3, wantErr: "window"},
		{name: "status", args: []string{"ca", "rotate", "status", "--ca-dir", east, "-o", "json"}},
		{name: "remove, forced", args: []string{"ca", "rotate", "root", "--phase", "remove", "--ca-dir", east, "--force"}},
		{name: "remove again", args: []string{"ca", "rotate", "root", "--phase", "remove", "--ca-dir", east}, wantCode: 3, wantErr: "no root rotation"},
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
	out, _, _ := runCA(t, "ca", "show", "--dir", east, "-o", "json")
	if n := strings.Count(out, `"role": "root"`) + strings.Count(out, `"role":"root"`); n != 1 {
		t.Errorf("after remove the bundle holds %d roots, want 1:\n%s", n, out)
	}
}
