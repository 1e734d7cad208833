package store_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
)

func TestOpenRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		cfg     store.Config
		wantErr string
	}{
		{"no cluster", store.Config{DataDir: dir}, "cluster"},
		{"bad cluster", store.Config{Cluster: "East_1", DataDir: dir}, "cluster"},
		{"no data dir", store.Config{Cluster: "east-1"}, "data dir"},
		{"short lease", store.Config{Cluster: "east-1", DataDir: dir, LeaseTTL: time.Second}, "lease TTL"},
		{"data dir with endpoints", store.Config{Cluster: "east-1", DataDir: dir, Endpoints: []string{"http://127.0.0.1:2379"}}, "only for the embedded"},
		{"listen URL with endpoints", store.Config{Cluster: "east-1", ListenClientURLs: []string{"http://127.0.0.1:0"}, Endpoints: []string{"http://127.0.0.1:2379"}}, "only for the embedded"},
		{"https without client TLS", store.Config{Cluster: "east-1", Endpoints: []string{"https://127.0.0.1:2379"}}, "no client TLS"},
		{"https without server cert", store.Config{Cluster: "east-1", DataDir: dir, ListenClientURLs: []string{"https://127.0.0.1:0"}, ClientTLS: &tls.Config{}}, "no server cert"},
		{"cert without key", store.Config{Cluster: "east-1", DataDir: dir, ServerCertFile: "c.pem"}, "together"},
		{"client CA without server cert", store.Config{Cluster: "east-1", DataDir: dir, ClientCAFile: "ca.pem"}, "client CA"},
		{"bad scheme", store.Config{Cluster: "east-1", Endpoints: []string{"unix:///tmp/etcd"}}, "scheme"},
		{"no port", store.Config{Cluster: "east-1", Endpoints: []string{"http://127.0.0.1"}}, "port"},
		{"https peer URL without peer TLS", store.Config{Cluster: "east-1", DataDir: dir, ListenPeerURL: "https://127.0.0.1:0"}, "peer cert, key and CA"},
		{"https peer URL without peer CA", store.Config{Cluster: "east-1", DataDir: dir, ListenPeerURL: "https://0.0.0.0:0", PeerCertFile: "p.pem", PeerKeyFile: "k.pem"}, "peer cert, key and CA"},
		{"peer TLS on an http peer URL", store.Config{Cluster: "east-1", DataDir: dir, PeerCertFile: "p.pem", PeerKeyFile: "k.pem", PeerCAFile: "ca.pem"}, "use https"},
		{"plain peer URL on all addresses", store.Config{Cluster: "east-1", DataDir: dir, ListenPeerURL: "http://0.0.0.0:0"}, "non-loopback"},
		{"plain peer URL on a pod address", store.Config{Cluster: "east-1", DataDir: dir, ListenPeerURL: "http://10.1.2.3:2380"}, "non-loopback"},
		{"plain peer URL on a host name", store.Config{Cluster: "east-1", DataDir: dir, ListenPeerURL: "http://etcd.example:2380"}, "non-loopback"},
		{"unix peer URL", store.Config{Cluster: "east-1", DataDir: dir, ListenPeerURL: "unix:///tmp/raft"}, "scheme"},
		{"peer TLS with endpoints", store.Config{Cluster: "east-1", Endpoints: []string{"http://127.0.0.1:2379"}, PeerCAFile: "ca.pem"}, "peer TLS files"},
		{"negative max txn ops", store.Config{Cluster: "east-1", DataDir: dir, MaxTxnOps: -1}, "max txn ops"},
		{"too few max txn ops", store.Config{Cluster: "east-1", DataDir: dir, MaxTxnOps: 2}, "below 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(context.Background(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, store.ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Open = %v, want ErrConfig containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestOpenRegistersMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	storetest.Open(t, "east-1", func(c *store.Config) { c.Registerer = reg })
	// A second store on the same registry collides, and says so.
	_, err := store.Open(context.Background(), func() store.Config {
		c := storetest.Config(t, "east-2")
		c.Registerer = reg
		return c
	}())
	if err == nil || !strings.Contains(err.Error(), "register store metrics") {
		t.Errorf("second Open on one registry = %v, want a registration error", err)
	}
}

func TestOpenGivesUpWhenExternalEtcdIsAway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// A port nothing listens on: take a free one and close it.
	host := storetest.Open(t, "east-1")
	url := host.ClientURL()
	if err := host.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, store.Config{Cluster: "east-2", Endpoints: []string{url}, DialTimeout: time.Second, Logger: quietLogger()})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded without an etcd")
	}
}
