package controlplane

import (
	"cmp"
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

// member is a cluster's control plane (east-1's by default) with
// identity, running on loopback until the test ends: a file source in
// srcDir, embedded etcd, xDS and the admin port over TLS.
type member struct {
	srv *Server
	// auth is the cluster's CA.
	auth   *ca.Authority
	src    *filesource.FileSource
	srcDir string
	// dataDir is the control plane's data directory.
	dataDir string
	// operator calls the admin API with an operator certificate of the
	// cluster's CA; its BaseURL is set by adminURL.
	operator *adminapi.Client
}

// memberOptions change what startMember runs.
type memberOptions struct {
	// cluster is the member's cluster; empty: east-1 (region us-east,
	// zone a).
	cluster  string
	locality topology.Locality
	// caDir holds the cluster's CA; empty: a CA issued from rootDir, or
	// from a new root of trust domain fedmesh.test when rootDir is empty.
	caDir   string
	rootDir string
	// sourceDebounce is the file source's debounce; 0: 10ms.
	sourceDebounce time.Duration
	// files are written to the source directory before the start.
	files map[string]string
	// config changes the control plane's Config before New.
	config func(*Config)
}

// startMember runs a control plane (east-1's unless o names another
// cluster) as o says.
func startMember(t testing.TB, o memberOptions) *member {
	t.Helper()
	dir := t.TempDir()
	if o.cluster == "" {
		o.cluster, o.locality = "east-1", topology.Locality{Region: "us-east", Zone: "a"}
	}
	if o.caDir == "" {
		o.caDir = filepath.Join(dir, "ca")
		if o.rootDir == "" {
			o.rootDir = filepath.Join(dir, "root")
			if err := ca.InitRoot("fedmesh.test", o.rootDir); err != nil {
				t.Fatal(err)
			}
		}
		if err := ca.IssueClusterCA(o.rootDir, o.cluster, o.caDir, 0); err != nil {
			t.Fatal(err)
		}
	}
	m := &member{srcDir: t.TempDir(), dataDir: filepath.Join(dir, "data")}
	for name, content := range o.files {
		m.write(t, name, content)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := filesource.New(filesource.Config{Dir: m.srcDir, Cluster: o.cluster, Region: o.locality.Region, Zone: o.locality.Zone, Logger: log, Debounce: cmp.Or(o.sourceDebounce, 10*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	m.src = src
	cfg := Config{
		Cluster:      o.cluster,
		Locality:     o.locality,
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
	m.auth = auth
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
func (m *member) write(t testing.TB, name, content string) {
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
