package controlplane

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/controlplane/source/filesource"
	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/topology"
)

// TestMeshAdvertisesPeerAddresses runs a federation member whose peers
// reach it through other addresses than it binds (NodePorts in kind): its
// gossip tags carry the advertised etcd URL, and its certificate names the
// advertised hosts so peers' TLS checks pass.
func TestMeshAdvertisesPeerAddresses(t *testing.T) {
	dir := t.TempDir()
	if err := ca.InitRoot("fedmesh.test", filepath.Join(dir, "root")); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueClusterCA(filepath.Join(dir, "root"), "east-1", filepath.Join(dir, "ca"), 0); err != nil {
		t.Fatal(err)
	}
	srcDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(srcDir, "echo.yaml"), []byte(echoYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := filesource.New(filesource.Config{Dir: srcDir, Cluster: "east-1", Region: "us-east", Zone: "a", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	const advertisedEtcd = "https://127.0.0.99:32379"
	srv, err := New(Config{
		Cluster:      "east-1",
		Locality:     topology.Locality{Region: "us-east", Zone: "a"},
		BindAddress:  "127.0.0.1",
		AdminAddress: "127.0.0.1:0",
		DataDir:      filepath.Join(dir, "data"),
		Source:       src,
		Store:        store.Config{ListenClientURLs: []string{"http://127.0.0.1:0"}},
		Mesh: &MeshConfig{
			CADir:             filepath.Join(dir, "ca"),
			SerfPort:          -1,
			XDSAddress:        "127.0.0.1:0",
			Profile:           membership.ProfileLocal,
			AdvertiseAddress:  "127.0.0.98",
			AdvertiseSerfPort: 30946,
			AdvertiseEtcdURL:  advertisedEtcd,
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
	var members adminapi.MembersResponse
	poll.Until(t, 60*time.Second, "member listed", func() error {
		if srv.AdminURL() == "" {
			return errors.New("admin not listening")
		}
		members = adminapi.MembersResponse{}
		client.BaseURL = srv.AdminURL()
		if err := client.Get(context.Background(), adminapi.PathMembers, &members); err != nil {
			return err
		}
		if len(members.Members) == 0 {
			return errors.New("no members yet")
		}
		return nil
	})
	local := members.Members[0]
	if local.Catalog != advertisedEtcd || local.Addr != net.JoinHostPort("127.0.0.98", "30946") {
		t.Errorf("local member announces catalog %q at %q, want %q at 127.0.0.98:30946", local.Catalog, local.Addr, advertisedEtcd)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, "data", "tls", "cp.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "127.0.0.98", "127.0.0.99"} {
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("control plane certificate does not name %s: %v", host, err)
		}
	}
}
