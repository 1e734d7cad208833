package proxycmd

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fedmesh/fedmesh/controlplane/ca"
)

// runCmd runs a fedmesh-proxy command line as Run does, with ctx as the
// command's context, and returns stdout, stderr (with the error's text)
// and the exit code.
func runCmd(ctx context.Context, t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := NewProxyRoot("v0.0.0-test", "abc123")
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return out.String(), errOut.String(), 0
	}
	errOut.WriteString(err.Error())
	var ee *ExitError
	if errors.As(err, &ee) {
		return out.String(), errOut.String(), ee.Code
	}
	return out.String(), errOut.String(), 1
}

// The workload directory's file names are controlplane/ca's, which this
// package may not import outside tests.
func TestWorkloadFileNames(t *testing.T) {
	if workloadTokenFile != ca.TokenFile || workloadBundleFile != ca.BundleFile {
		t.Fatalf("workload files %q, %q; controlplane/ca writes %q, %q", workloadTokenFile, workloadBundleFile, ca.TokenFile, ca.BundleFile)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := runCmd(context.Background(), t, "version")
	if code != 0 || !strings.HasPrefix(out, "fedmesh-proxy v0.0.0-test (commit abc123,") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
	out, _, code = runCmd(context.Background(), t, "version", "-o", "json")
	if code != 0 || !strings.Contains(out, `"commit": "abc123"`) {
		t.Fatalf("version -o json: exit %d, %q", code, out)
	}
	if _, stderr, code := runCmd(context.Background(), t, "version", "-o", "yaml"); code != 2 || !strings.Contains(stderr, "yaml") {
		t.Fatalf("version -o yaml: exit %d, %q; want 2", code, stderr)
	}
}

// The proxy has only the data-plane commands; a control-plane command is
// unknown, a usage error.
func TestProxyCommands(t *testing.T) {
	_, stderr, code := runCmd(context.Background(), t, "controlplane")
	if code != 1 && code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("controlplane: exit %d, %q; want unknown command", code, stderr)
	}
	_, stderr, code = runCmd(context.Background(), t, "sidecar", "--no-such-flag")
	if code != 2 || !strings.Contains(stderr, "--no-such-flag") {
		t.Fatalf("sidecar --no-such-flag: exit %d, %q; want 2", code, stderr)
	}
	_, stderr, code = runCmd(context.Background(), t, "--log-level", "loud", "gateway", "--cluster", "east-1", "--insecure-xds")
	if code != 2 || !strings.Contains(stderr, "--log-level") {
		t.Fatalf("--log-level loud: exit %d, %q; want 2", code, stderr)
	}
}
