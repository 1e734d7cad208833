package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/testpki"
	"github.com/fedmesh/fedmesh/topology"
)

// fedTestControlPlane runs a membership named name with the federation
// admin API on loopback, signing join tokens as the control plane of
// cluster name (a leaf under its own intermediate of root), and returns it
// with its admin URL.
func fedTestControlPlane(t *testing.T, name string, root *testpki.CA, keys ...[]byte) (*membership.Membership, string) {
	t.Helper()
	cluster := root.NewIntermediate(t, name)
	leafKey := testpki.Key(t)
	leaf := cluster.Leaf(t, leafKey, "spiffe://fedmesh.local/fedmesh/cluster/"+name)
	iss := adminapi.Issuer{Signer: leafKey, Chain: []*x509.Certificate{leaf, cluster.Cert}, TrustDomain: "fedmesh.local",
		RootBundle: root.PEM()}
	m, err := membership.New(membership.Config{
		NodeName: name, Locality: topology.Locality{Region: "r"},
		GatewayAddr: "127.0.0.1:15443", CatalogAddr: "https://127.0.0.1:2379",
		BindAddr: "127.0.0.1", Keys: keys, Profile: membership.ProfileLocal,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	h, err := adminapi.NewHandler(adminapi.Config{
		Federation:   m,
		Issuer:       func() (adminapi.Issuer, error) { return iss, nil },
		TrustedRoots: func() ([]*x509.Certificate, error) { return []*x509.Certificate{root.Cert}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return m, srv.URL
}

// runFed runs the command line as run does and returns stdout, stderr
// and the exit code.
func runFed(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCmd(context.Background(), t, args...)
}

func TestTokenJoinKeysCommands(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	key := []byte("0123456789abcdef0123456789abcdef")
	root := testpki.NewRoot(t, "fed")
	a, aURL := fedTestControlPlane(t, "a", root, key)
	n, nURL := fedTestControlPlane(t, "n", root)

	tok, stderr, code := runFed(t, "token", "create", "--ttl", "10m", "--admin", aURL)
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, stderr)
	}
	file := filepath.Join(t.TempDir(), "join.token")
	if err := os.WriteFile(file, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runFed(t, "join", "--token-file", file, "--admin", nURL)
	if code != 0 || !strings.Contains(out, "joined the federation (trust domain fedmesh.local) through a") {
		t.Fatalf("join: exit %d, out %q, err %q", code, out, stderr)
	}
	poll.Until(t, 30*time.Second, "full mesh", func() error {
		if len(a.Members()) != 2 || len(n.Members()) != 2 {
			return fmt.Errorf("a sees %d, n sees %d", len(a.Members()), len(n.Members()))
		}
		return nil
	})

	out, stderr, code = runFed(t, "keys", "list", "-o", "json", "--admin", nURL)
	if code != 0 {
		t.Fatalf("keys list: exit %d: %s", code, stderr)
	}
	var list adminapi.KeyResponse
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("keys list -o json: %v\n%s", err, out)
	}
	if diff := cmp.Diff(map[string]int{membership.EncodeKey(key): 2}, list.Keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}

	newKey, _, code := runFed(t, "keys", "generate")
	newKey = strings.TrimSpace(newKey)
	if code != 0 {
		t.Fatal("keys generate failed")
	}
	for _, op := range []string{"install", "use"} {
		if out, stderr, code := runFed(t, "keys", op, newKey, "--admin", aURL); code != 0 || !strings.Contains(out, "done on 2/2 members") {
			t.Fatalf("keys %s: exit %d, out %q, err %q", op, code, out, stderr)
		}
	}
	if out, stderr, code := runFed(t, "keys", "remove", membership.EncodeKey(key), "--admin", aURL); code != 0 {
		t.Fatalf("keys remove: exit %d, out %q, err %q", code, out, stderr)
	}
	out, _, _ = runFed(t, "keys", "list", "--admin", aURL)
	if !strings.Contains(out, newKey+"  2/2") || strings.Contains(out, membership.EncodeKey(key)) {
		t.Errorf("keys list after rotation:\n%s", out)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{name: "join without token", args: []string{"join", "--admin", nURL}, code: 2, want: "no token"},
		{name: "join with both", args: []string{"join", "x", "--token-file", file}, code: 2, want: "not both"},
		{name: "garbage token", args: []string{"join", "garbage", "--admin", nURL}, code: 1, want: "join token is malformed"},
		{name: "bad admin URL", args: []string{"token", "create", "--admin", "localhost:15014"}, code: 2, want: "not an http(s) URL"},
		{name: "zero ttl", args: []string{"token", "create", "--ttl", "0s", "--admin", aURL}, code: 2, want: "must be positive"},
		{name: "bad key", args: []string{"keys", "install", "abc", "--admin", aURL}, code: 2, want: "not base64"},
		{name: "remove primary", args: []string{"keys", "remove", newKey, "--admin", aURL}, code: 1, want: "control plane answered 502"},
		{name: "unknown output", args: []string{"keys", "list", "-o", "xml", "--admin", aURL}, code: 2, want: "unknown output format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runFed(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.want)
			}
		})
	}
	if slices.ContainsFunc(n.LocalKeys(), func(k []byte) bool { return string(k) == string(key) }) {
		t.Error("n still holds the removed key")
	}
}

// TestJoinKubeUsage: the Kubernetes form takes no token, and a kubeconfig
// that cannot be read is named in the error.
func TestJoinKubeUsage(t *testing.T) {
	_, stderr, code := runFed(t, "join", "--from-context", "east", "fmjt1.x")
	if code != 2 || !strings.Contains(stderr, "give no token") {
		t.Errorf("token with --from-context: exit %d, stderr %q; want 2 and the reason", code, stderr)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	_, stderr, code = runFed(t, "join", "--from-kubeconfig", missing, "--from-context", "east", "--context", "west")
	if code == 0 || !strings.Contains(stderr, "--from-context") {
		t.Errorf("unreadable kubeconfig: exit %d, stderr %q; want a failure naming --from-context", code, stderr)
	}
}
