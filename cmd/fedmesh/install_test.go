package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallUsage checks the errors the install, uninstall and check
// commands give before they talk to a cluster; test/kube runs them against
// a real API server.
func TestInstallUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-kubeconfig")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"install", "--region", "r", "--trust-domain", "td"}, 2, `cluster name ""`},
		{[]string{"install", "--cluster", "east-1", "--trust-domain", "td"}, 2, "region is empty"},
		{[]string{"install", "--cluster", "east-1", "--region", "r"}, 2, "trust domain is empty"},
		{[]string{"install", "--cluster", "east-1", "--region", "r", "--trust-domain", "td", "-n", "Bad_NS"}, 2, `namespace "Bad_NS"`},
		{[]string{"install", "extra"}, 2, "unknown command"},
		{[]string{"install", "--cluster", "east-1", "--region", "r", "--trust-domain", "td", "--kubeconfig", missing}, 1, "load kubeconfig"},
		{[]string{"check", "-o", "xml"}, 2, `unknown output format "xml"`},
		{[]string{"check", "--kubeconfig", missing}, 1, "load kubeconfig"},
		{[]string{"uninstall", "--kubeconfig", missing}, 1, "load kubeconfig"},
		{[]string{"check", "--admin", "ftp://x", "--kubeconfig", missing}, 2, "--admin"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, stderr, code := runCmd(context.Background(), t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit code %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}
