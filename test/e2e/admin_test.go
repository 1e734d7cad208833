package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/federation/adminapi"
)

// operator calls control planes' admin APIs with an operator certificate
// written by 'fedmesh ca issue-operator'.
type operator struct {
	files adminapi.OperatorFiles
}

func operatorClient(t *testing.T, dir string) *operator {
	t.Helper()
	o := &operator{files: adminapi.OperatorFiles{
		CertFile:   filepath.Join(dir, ca.OperatorCertFile),
		KeyFile:    filepath.Join(dir, ca.OperatorKeyFile),
		BundleFile: filepath.Join(dir, ca.OperatorBundleFile),
	}}
	if _, err := o.files.ClientTLS(time.Time{}); err != nil {
		t.Fatal(err)
	}
	return o
}

// Get fetches path from the admin endpoint base into v.
func (o *operator) Get(base, path string, v any) error {
	cfg, err := o.files.ClientTLS(time.Time{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return (&adminapi.Client{BaseURL: base, TLS: cfg}).Get(ctx, path, v)
}

// runWithEnv runs fedmesh with extra environment variables and returns
// stdout, stderr and the exit code.
func runWithEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fedmeshBin, args...)
	// Only what the test names: a developer's own operator directory
	// must not leak in.
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("fedmesh %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), 0
}

// TestAdminAPIBehindOperatorCertificates runs a control plane with its
// CA and drives its admin port with the CLI: without an operator
// certificate every admin command fails with a clear error and exit code
// 1; with one from the cluster's CA (found through $FEDMESH_OPERATOR_DIR
// or --operator-dir) they work; one of another cluster's CA is refused;
// health and metrics stay open; a cross-site form post is refused.
func TestAdminAPIBehindOperatorCertificates(t *testing.T) {
	ip := fmt.Sprintf("127.%d.0.1", reserveBlock(t))
	admin := "https://" + ip + ":15014"
	e := newEnv(t)
	dir := t.TempDir()
	path := func(p ...string) string { return filepath.Join(append([]string{dir}, p...)...) }
	mustRun := func(args ...string) string {
		t.Helper()
		out, stderr, code := e.run(args...)
		if code != 0 {
			t.Fatalf("fedmesh %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	mustRun("ca", "init", "--trust-domain", trustDomain, "--dir", path("root"))
	for _, c := range []string{"east-1", "east-2"} {
		mustRun("ca", "issue-cluster", "--root-dir", path("root"), "--cluster", c, "--dir", path(c, "ca"))
	}
	src := path("source")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	cp := e.start("controlplane-east-1", "controlplane", "--cluster", "east-1", "--region", "us-east", "--zone", "a",
		"--bind-address", ip, "--data-dir", path("data"), "--source", "file:"+src,
		"--ca-dir", path("east-1", "ca"), "--gossip-profile", "local")
	waitReady(t, cp, admin)

	t.Run("no certificate", func(t *testing.T) {
		empty := t.TempDir()
		for _, args := range [][]string{
			{"token", "create", "--admin", admin},
			{"keys", "list", "--admin", admin},
			{"members", "list", "--admin", admin},
			{"status", "--admin", admin},
			{"debug", "exports", "--admin", admin},
		} {
			stdout, stderr, code := runWithEnv(t, []string{"FEDMESH_OPERATOR_DIR=" + empty}, args...)
			if code != 1 || stdout != "" {
				t.Errorf("fedmesh %s without a certificate: exit %d, stdout %q; want exit 1 and nothing", strings.Join(args, " "), code, stdout)
			}
			for _, want := range []string{"no operator certificate", empty, "fedmesh ca issue-operator"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("fedmesh %s: stderr %q does not say %q", strings.Join(args, " "), stderr, want)
				}
			}
		}
	})

	t.Run("plain http to the TLS port", func(t *testing.T) {
		_, stderr, code := runWithEnv(t, nil, "token", "create", "--admin", "http://"+ip+":15014")
		if code != 1 || !strings.Contains(stderr, "HTTPS server") {
			t.Errorf("token create over http: exit %d, stderr %q; want 1 and the TLS port's answer", code, stderr)
		}
	})

	mustRun("ca", "issue-operator", "--ca-dir", path("east-1", "ca"), "--name", "alice", "--out", path("alice"))
	mustRun("ca", "issue-operator", "--ca-dir", path("east-2", "ca"), "--name", "mallory", "--out", path("mallory"))

	t.Run("operator of this cluster", func(t *testing.T) {
		stdout, stderr, code := runWithEnv(t, []string{"FEDMESH_OPERATOR_DIR=" + path("alice")}, "token", "create", "--admin", admin, "--ttl", "5m")
		if code != 0 || !strings.HasPrefix(stdout, "fmjt") {
			t.Fatalf("token create with $FEDMESH_OPERATOR_DIR: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		// The flag wins over the environment.
		for _, args := range [][]string{
			{"keys", "list", "--admin", admin, "-o", "json"},
			{"members", "list", "--admin", admin},
			{"status", "--admin", admin},
			{"debug", "exports", "--admin", admin},
		} {
			args = append(args, "--operator-dir", path("alice"))
			if _, stderr, code := runWithEnv(t, []string{"FEDMESH_OPERATOR_DIR=" + path("mallory")}, args...); code != 0 {
				t.Errorf("fedmesh %s: exit %d: %s", strings.Join(args, " "), code, stderr)
			}
		}
	})

	t.Run("operator of another cluster", func(t *testing.T) {
		stdout, stderr, code := runWithEnv(t, nil, "token", "create", "--admin", admin, "--operator-dir", path("mallory"))
		if code != 1 || stdout != "" || !strings.Contains(stderr, "403") || !strings.Contains(stderr, "another cluster's CA") {
			t.Errorf("token create as east-2's operator: exit %d, stdout %q, stderr %q; want exit 1 with a 403", code, stdout, stderr)
		}
	})

	t.Run("open pages and browsers", func(t *testing.T) {
		// No certificate: the gossip key is not given away, health and
		// metrics are.
		code, body, err := httpGet(admin + adminapi.PathKeys)
		if err != nil || code != http.StatusUnauthorized {
			t.Errorf("GET keys without a certificate = %d %q, %v; want 401", code, body, err)
		}
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			if code, _, err := httpGet(admin + p); err != nil || code != http.StatusOK {
				t.Errorf("GET %s without a certificate = %d, %v; want 200", p, code, err)
			}
		}
		// A page posting a form with the operator's certificate.
		cfg, err := operatorClient(t, path("alice")).files.ClientTLS(time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		browser := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		req, _ := http.NewRequest(http.MethodPost, admin+adminapi.PathToken, strings.NewReader("ttl=1h"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site form post = %d, want 403", resp.StatusCode)
		}
		_, metrics, _ := httpGet(admin + "/metrics")
		for _, reason := range []string{"unauthenticated", "forbidden", "origin"} {
			if !strings.Contains(metrics, `fedmesh_controlplane_admin_refused_total{reason="`+reason+`"}`) {
				t.Errorf("/metrics does not count refusals for %s", reason)
			}
		}
	})
}
