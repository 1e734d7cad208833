package store_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
)

func newClient(t *testing.T, url string, tc *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := store.NewClient([]string{url}, tc, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestPeerReadOnlyAccess(t *testing.T) {
	ctx := testCtx(t)
	pki := newFederationPKI(t, "fedmesh.test", "east-1", "east-2")
	s := openTLSStore(t, pki, "east-1")
	east2 := store.PeerUser("east-2")
	if err := s.GrantPeerRead(ctx, east2); err != nil {
		t.Fatal(err)
	}
	if err := s.GrantPeerRead(ctx, east2); err != nil {
		t.Fatalf("second GrantPeerRead: %v", err)
	}
	// The owner still writes everything after auth is on.
	if _, err := s.SetExports(ctx, []catalog.Export{export("east-1", "demo", "echo", "127.0.1.1")}); err != nil {
		t.Fatalf("owner SetExports with auth on: %v", err)
	}
	if err := s.SetImports(ctx, "west-1", []catalog.Export{export("west-1", "demo", "echo", "127.0.3.1")}, store.ImportState{Revision: 7}); err != nil {
		t.Fatalf("owner SetImports with auth on: %v", err)
	}

	// The peer presents its control plane SVID, as its replicator does.
	east2CP, err := pki.auths["east-2"].IssueControlPlane(0)
	if err != nil {
		t.Fatal(err)
	}
	peer := newClient(t, s.ClientURL(), pki.clientTLS(east2CP))
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

	// After RevokePeer the peer's certificate grants nothing.
	if err := s.RevokePeer(ctx, east2); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Get(ctx, exports, clientv3.WithPrefix()); err == nil {
		t.Errorf("a revoked peer still reads the exports")
	}

	// A watch refused access retries with the backoff for refusals (not
	// the one for failures), and gets through once access is granted
	// again.
	m, err := store.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	var plainWaits, deniedWaits atomic.Int32
	wctx, cancel = context.WithCancel(ctx)
	defer cancel()
	go func() {
		done <- store.WatchPrefix(wctx, peer, exports, 0, func(u store.Update) error {
			updates <- u
			return nil
		}, store.WatchOptions{Logger: quietLogger(), Metrics: m,
			NewBackOff:       func() backoff.BackOff { return countingBackOff{&plainWaits} },
			NewDeniedBackOff: func() backoff.BackOff { return countingBackOff{&deniedWaits} },
		})
	}()
	poll.True(t, 30*time.Second, "the refused watch restarts", func() bool {
		return counterValue(t, m.WatchRestarts.WithLabelValues("denied")) >= 2
	})
	if n, p := deniedWaits.Load(), plainWaits.Load(); n < 2 || p != 0 {
		t.Errorf("refused lists waited %d times with the refusals' backoff and %d with the failures', want >= 2 and 0", n, p)
	}
	if err := s.GrantPeerRead(ctx, east2); err != nil {
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

// countingBackOff waits 50ms each time and counts how often it was asked.
type countingBackOff struct{ n *atomic.Int32 }

func (c countingBackOff) NextBackOff() time.Duration {
	c.n.Add(1)
	return 50 * time.Millisecond
}

func (countingBackOff) Reset() {}
