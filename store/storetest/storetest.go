// Package storetest starts real embedded etcd stores for the tests of other
// packages: each on 127.0.0.1 with a free port, its data in t.TempDir(),
// closed when the test ends.
//
//	s := storetest.Open(t, "east-1")
//	rev, err := s.SetExports(ctx, exports)
package storetest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/store"
)

// OpenTimeout bounds the start of a test store.
const OpenTimeout = 30 * time.Second

// Open starts a store for cluster with an embedded etcd on
// http://127.0.0.1:0 in a fresh t.TempDir(), and closes it in t.Cleanup.
// Each option may change the config before the store opens (for example
// LeaseTTL, Registerer or Logger); logs are discarded unless an option
// sets a Logger.
func Open(t testing.TB, cluster string, opts ...func(*store.Config)) *store.Store {
	t.Helper()
	cfg := Config(t, cluster)
	for _, o := range opts {
		o(&cfg)
	}
	return OpenConfig(t, cfg)
}

// Config is the config Open uses: an embedded etcd on 127.0.0.1 port 0,
// data in a fresh t.TempDir(), logs discarded.
func Config(t testing.TB, cluster string) store.Config {
	t.Helper()
	return store.Config{
		Cluster:          cluster,
		DataDir:          t.TempDir(),
		ListenClientURLs: []string{"http://127.0.0.1:0"},
		ListenPeerURL:    "http://127.0.0.1:0",
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// OpenConfig opens a store with cfg and closes it in t.Cleanup.
func OpenConfig(t testing.TB, cfg store.Config) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), OpenTimeout)
	defer cancel()
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open test store for cluster %s: %v", cfg.Cluster, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close test store for cluster %s: %v", cfg.Cluster, err)
		}
	})
	return s
}
