package controlplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/controlplane/source/filesource"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/topology"
)

const denyAdminYAML = `apiVersion: fedmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: demo}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
`

// TestPoliciesReachXDS runs a federation member whose file source holds
// an AuthorizationPolicy beside echo: /debug/authz on the admin port
// decides from it; a bad edit keeps it in force; a good edit replaces it.
func TestPoliciesReachXDS(t *testing.T) {
	dir := t.TempDir()
	if err := ca.InitRoot("fedmesh.test", filepath.Join(dir, "root")); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueClusterCA(filepath.Join(dir, "root"), "east-1", filepath.Join(dir, "ca"), 0); err != nil {
		t.Fatal(err)
	}
	srcDir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(srcDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("echo.yaml", echoYAML)
	write("authz.yaml", denyAdminYAML)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := filesource.New(filesource.Config{Dir: srcDir, Cluster: "east-1", Region: "us-east", Zone: "a", Logger: log, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{
		Cluster:      "east-1",
		Locality:     topology.Locality{Region: "us-east", Zone: "a"},
		BindAddress:  "127.0.0.1",
		AdminAddress: "127.0.0.1:0",
		DataDir:      filepath.Join(dir, "data"),
		Source:       src,
		Store:        store.Config{ListenClientURLs: []string{"http://127.0.0.1:0"}},
		Mesh: &MeshConfig{
			CADir: filepath.Join(dir, "ca"), SerfPort: -1, XDSAddress: "127.0.0.1:0", Profile: membership.ProfileLocal,
		},
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	auth, err := ca.LoadAuthority(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	op, err := auth.IssueOperator("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	client := &adminapi.Client{TLS: identity.ClientConfig(identity.StaticCert(op.TLS), identity.StaticBundle(auth.Bundle()), identity.AuthorizeControlPlanes())}
	check := func(path string) (*xds.AuthzCheck, error) {
		if srv.AdminURL() == "" {
			return nil, fmt.Errorf("admin not listening")
		}
		client.BaseURL = srv.AdminURL()
		q := url.Values{"from": {"spiffe://fedmesh.test/ns/demo/sa/client"}, "to": {"demo/echo"}, "path": {path}}
		var res xds.AuthzCheck
		if err := client.Get(context.Background(), xds.DebugAuthzPath+"?"+q.Encode(), &res); err != nil {
			return nil, err
		}
		return &res, nil
	}
	poll.Until(t, 60*time.Second, "/admin denied by demo/deny-admin", func() error {
		res, err := check("/admin/x")
		if err != nil {
			return err
		}
		if res.Decision.Allowed || res.Decision.Policy != "demo/deny-admin" {
			return fmt.Errorf("decision %+v", res.Decision)
		}
		return nil
	})

	// A bad edit is refused; what was in force stays. The source reports
	// it once it has read the file.
	write("authz.yaml", denyAdminYAML+"  selector: {}\n")
	poll.Until(t, 30*time.Second, "the bad file reported", func() error {
		if len(src.Problems()) == 0 {
			return fmt.Errorf("no problem reported yet")
		}
		return nil
	})
	if res, err := check("/admin/x"); err != nil || res.Decision.Allowed {
		t.Fatalf("after a bad edit: %+v, %v; want still denied", res, err)
	}

	// A good edit replaces the policy: now only /secret is denied.
	write("authz.yaml", denyAdminYAML[:len(denyAdminYAML)-len(`  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]`+"\n")]+`  rules: [{to: [{operation: {paths: ["/secret"]}}]}]`+"\n")
	poll.Until(t, 30*time.Second, "/admin allowed after the edit", func() error {
		res, err := check("/admin/x")
		if err != nil {
			return err
		}
		if !res.Decision.Allowed {
			return fmt.Errorf("decision %+v", res.Decision)
		}
		return nil
	})
	if res, err := check("/secret"); err != nil || res.Decision.Allowed || res.Decision.Policy != "demo/deny-admin" {
		t.Errorf("/secret: %+v, %v; want denied by demo/deny-admin", res, err)
	}
}
