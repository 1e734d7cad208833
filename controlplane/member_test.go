package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/controlplane/source/filesource"
	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/topology"
)

// member is east-1's control plane with identity, running on loopback
// until the test ends: a file source in srcDir, embedded etcd, xDS and the
// admin port over TLS.
type member struct {
	srv    *Server
	src    *filesource.FileSource
	srcDir string
	// dataDir is the control plane's data directory.
	dataDir string
	// operator calls the admin API with an operator certificate of
	// east-1's CA; its BaseURL is set by adminURL.
	operator *adminapi.Client
}

// memberOptions change what startMember runs.
type memberOptions struct {
	// caDir holds east-1's CA; empty: a new root and CA of trust domain
	// fedmesh.test.
	caDir string
	// files are written to the source directory before the start.
	files map[string]string
	// config changes the control plane's Config before New.
	config func(*Config)
}

// startMember runs east-1's control plane as o says.
func startMember(t *testing.T, o memberOptions) *member {
	t.Helper()
	dir := t.TempDir()
	if o.caDir == "" {
		o.caDir = filepath.Join(dir, "ca")
		if err := ca.InitRoot("fedmesh.test", filepath.Join(dir, "root")); err != nil {
			t.Fatal(err)
		}
		if err := ca.IssueClusterCA(filepath.Join(dir, "root"), "east-1", o.caDir, 0); err != nil {
			t.Fatal(err)
		}
	}
	m := &member{srcDir: t.TempDir(), dataDir: filepath.Join(dir, "data")}
	for name, content := range o.files {
		m.write(t, name, content)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := filesource.New(filesource.Config{Dir: m.srcDir, Cluster: "east-1", Region: "us-east", Zone: "a", Logger: log, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m.src = src
	cfg := Config{
		Cluster:      "east-1",
		Locality:     topology.Locality{Region: "us-east", Zone: "a"},
		BindAddress:  "127.0.0.1",
		AdminAddress: "127.0.0.1:0",
		DataDir:      m.dataDir,
		Source:       src,
		Store:        store.Config{ListenClientURLs: []string{"http://127.0.0.1:0"}},
		Mesh: &MeshConfig{
			CADir:      o.caDir,
			SerfPort:   -1,
			XDSAddress: "127.0.0.1:0",
			Profile:    membership.ProfileLocal,
		},
		Logger: log,
	}
	if o.config != nil {
		o.config(&cfg)
	}
	if m.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	auth, err := ca.LoadAuthority(o.caDir)
	if err != nil {
		t.Fatal(err)
	}
	op, err := auth.IssueOperator("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	m.operator = &adminapi.Client{TLS: identity.ClientConfig(identity.StaticCert(op.TLS), identity.StaticBundle(auth.Bundle()), identity.AuthorizeControlPlanes())}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return m
}

// write puts a file into the member's source directory.
func (m *member) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(m.srcDir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var errAdminNotListening = errors.New("admin not listening")

// operatorGet reads an admin page as the operator; it fails while the
// admin port is not listening yet.
func (m *member) operatorGet(path string, out any) error {
	url := m.srv.AdminURL()
	if url == "" {
		return errAdminNotListening
	}
	c := *m.operator
	c.BaseURL = url
	return c.Get(context.Background(), path, out)
}
