package store_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/testpki"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := testpki.Key(t)
	cert := testpki.Sign(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil, key.Public(), key)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}
}

// issue returns a PEM certificate and key for cn, valid for server and
// client use on 127.0.0.1.
func (ca *testCA) issue(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key := testpki.Key(t)
	cert := testpki.Sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, ca.cert, key.Public(), ca.key)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// clientTLS is a client config trusting ca and presenting a certificate
// for cn issued by issuer.
func clientTLS(t *testing.T, ca, issuer *testCA, cn string) *tls.Config {
	t.Helper()
	certPEM, keyPEM := issuer.issue(t, cn)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newClient(t *testing.T, url string, tc *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := store.NewClient([]string{url}, tc, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// openTLSStore starts a store whose etcd requires client certificates from
// ca, with auth enabled and the store's client authenticated as root.
func openTLSStore(t *testing.T, ca *testCA, cluster string) *store.Store {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := ca.issue(t, "etcd-server")
	cfg := storetest.Config(t, cluster)
	cfg.ListenClientURLs = []string{"https://127.0.0.1:0"}
	cfg.ServerCertFile = writeFile(t, dir, "server.pem", certPEM)
	cfg.ServerKeyFile = writeFile(t, dir, "server-key.pem", keyPEM)
	cfg.ClientCAFile = writeFile(t, dir, "ca.pem", ca.pem)
	cfg.ClientTLS = clientTLS(t, ca, ca, store.RootUser)
	s := storetest.OpenConfig(t, cfg)
	if err := s.EnableAuth(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableAuth(testCtx(t)); err != nil {
		t.Fatalf("second EnableAuth: %v", err)
	}
	return s
}

func TestPeerReadOnlyAccess(t *testing.T) {
	ctx := testCtx(t)
	ca := newCA(t, "fedmesh test root")
	s := openTLSStore(t, ca, "east-1")
	if err := s.GrantPeerRead(ctx, "east-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.GrantPeerRead(ctx, "east-2"); err != nil {
		t.Fatalf("second GrantPeerRead: %v", err)
	}
	// The owner still writes everything after auth is on.
	if _, err := s.SetExports(ctx, []catalog.Export{export("east-1", "demo", "echo", "127.0.1.1")}); err != nil {
		t.Fatalf("owner SetExports with auth on: %v", err)
	}
	if err := s.SetImports(ctx, "west-1", []catalog.Export{export("west-1", "demo", "echo", "127.0.3.1")}, store.ImportState{Revision: 7}); err != nil {
		t.Fatalf("owner SetImports with auth on: %v", err)
	}

	peer := newClient(t, s.ClientURL(), clientTLS(t, ca, ca, "east-2"))
	exports := store.ExportsPrefix("east-1")
	resp, err := peer.Get(ctx, exports, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("peer read of exports: %v", err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("peer read %d exports, want 1", len(resp.Kvs))
	}

	// The peer can watch the exports with the same helper the replicator uses.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates := make(chan store.Update, 10)
	done := make(chan error, 1)
	go func() {
		done <- store.WatchPrefix(wctx, peer, exports, 0, func(u store.Update) error {
			updates <- u
			return nil
		}, store.WatchOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	if u := <-updates; !u.Resync || len(u.Puts) != 1 {
		t.Fatalf("first peer watch update %+v, want a resync of 1 key", u)
	}
	if _, err := s.SetExports(ctx, []catalog.Export{export("east-1", "demo", "echo", "127.0.1.1", "127.0.1.2")}); err != nil {
		t.Fatal(err)
	}
	if u := <-updates; u.Resync || len(u.Puts) != 1 {
		t.Fatalf("second peer watch update %+v, want one put", u)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("watch ended with %v, want context.Canceled", err)
	}

	denied := []struct {
		name string
		op   func() error
	}{
		{"put export", func() error {
			_, err := peer.Put(ctx, store.ExportKey("east-1", catalog.ServiceKey{Namespace: "demo", Name: "evil"}), "{}")
			return err
		}},
		{"delete export", func() error {
			_, err := peer.Delete(ctx, exports, clientv3.WithPrefix())
			return err
		}},
		{"read imports", func() error {
			_, err := peer.Get(ctx, store.ImportsPrefix("east-1"), clientv3.WithPrefix())
			return err
		}},
		{"read importstate", func() error {
			_, err := peer.Get(ctx, store.ImportStateKey("east-1", "west-1"))
			return err
		}},
		{"read everything", func() error {
			_, err := peer.Get(ctx, store.Root, clientv3.WithPrefix())
			return err
		}},
		{"add user", func() error {
			_, err := peer.UserAddWithOptions(ctx, "mallory", "", &clientv3.UserAddOptions{NoPassword: true})
			return err
		}},
	}
	for _, tc := range denied {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, rpctypes.ErrPermissionDenied) {
				t.Errorf("got %v, want permission denied", err)
			}
		})
	}

	// A certificate from another CA does not even connect.
	foreign := newCA(t, "someone else's root")
	stranger := newClient(t, s.ClientURL(), clientTLS(t, ca, foreign, "east-2"))
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	if _, err := stranger.Get(sctx, exports, clientv3.WithPrefix()); err == nil {
		t.Errorf("a client with a foreign CA's certificate read the exports")
	}

	// After RevokePeer the peer's certificate grants nothing.
	if err := s.RevokePeer(ctx, "east-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Get(ctx, exports, clientv3.WithPrefix()); err == nil {
		t.Errorf("a revoked peer still reads the exports")
	}

	// A watch refused access retries with backoff, and gets through once
	// access is granted again.
	m, err := store.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel = context.WithCancel(ctx)
	defer cancel()
	go func() {
		done <- store.WatchPrefix(wctx, peer, exports, 0, func(u store.Update) error {
			updates <- u
			return nil
		}, store.WatchOptions{Logger: quietLogger(), Metrics: m})
	}()
	poll.True(t, 30*time.Second, "the refused watch restarts", func() bool {
		return counterValue(t, m.WatchRestarts) >= 2
	})
	if err := s.GrantPeerRead(ctx, "east-2"); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-updates:
		if !u.Resync || len(u.Puts) != 1 {
			t.Errorf("update after access came back: %+v, want a resync of 1 key", u)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no update 30s after access came back")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("watch ended with %v, want context.Canceled", err)
	}
}

func TestGrantPeerReadRefusesBadUsers(t *testing.T) {
	s := storetest.Open(t, "east-1")
	for _, tc := range []struct{ name, user string }{
		{"empty", ""},
		{"root", "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.GrantPeerRead(testCtx(t), tc.user); !errors.Is(err, store.ErrBadUser) {
				t.Errorf("GrantPeerRead(%q) = %v, want ErrBadUser", tc.user, err)
			}
		})
	}
}
