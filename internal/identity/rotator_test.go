package identity_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/testpki"
)

// fakeClock is a clock (Now and After of a RotatorConfig) whose time moves
// only by Advance.
type fakeClock struct {
	mu      sync.Mutex // guards the following
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves time forward and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// Waiting returns how many timers are pending and when the first is due.
func (c *fakeClock) Waiting() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiters) == 0 {
		return 0, time.Time{}
	}
	return len(c.waiters), c.waiters[0].at
}

// waitTimer waits until the rotator sleeps on the fake clock and returns
// when its timer is due.
func waitTimer(t *testing.T, clk *fakeClock) time.Time {
	t.Helper()
	var at time.Time
	poll.True(t, 30*time.Second, "the rotator to wait on the clock", func() bool {
		var n int
		n, at = clk.Waiting()
		return n > 0
	})
	return at
}

// echoServer accepts TLS connections and echoes bytes until closed.
func echoServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func roundTrip(c *tls.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch: " + string(buf))
	}
	return nil
}

func TestRotatorRenewsAtHalfLife(t *testing.T) {
	root := newRoot(t, "fedmesh.test")
	clk := &fakeClock{now: tNow}
	first := root.leaf(t, leafOpts{uris: []string{echoID}, notBefore: tNow, notAfter: tNow.Add(24 * time.Hour)})
	second := root.leaf(t, leafOpts{uris: []string{echoID}, notBefore: tNow.Add(12 * time.Hour), notAfter: tNow.Add(36 * time.Hour)})

	fails := 2 // the first two renewals fail, then second is issued
	var renewCalls int
	renew := func(context.Context) (*tls.Certificate, error) {
		renewCalls++
		if renewCalls <= fails {
			return nil, errors.New("control plane away")
		}
		return &tls.Certificate{Certificate: second.Certificate, PrivateKey: second.PrivateKey}, nil // Leaf left for the rotator to parse
	}
	reg := prometheus.NewRegistry()
	rot, err := identity.NewRotator(identity.RotatorConfig{
		Renew: renew, Now: clk.Now, After: clk.After, RetryInitial: time.Second, RetryMax: 10 * time.Second, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rot.SetCertificate(first); err != nil {
		t.Fatal(err)
	}
	rot.SetBundle(root.bundle())
	changes, unsubscribe := rot.Subscribe()
	defer unsubscribe()

	srv := identity.ServerConfig(rot, rot, nil)
	srv.Time = clk.Now
	addr := echoServer(t, srv)
	client := identity.ClientConfig(rot, rot, nil)
	client.Time = clk.Now

	serialOf := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }
	old, err := tls.Dial("tcp", addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := roundTrip(old, "before"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first.Leaf.SerialNumber.String(), serialOf(old)); diff != "" {
		t.Fatalf("serial before renewal (-want +got):\n%s", diff)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rot.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	if diff := cmp.Diff(tNow.Add(12*time.Hour), waitTimer(t, clk)); diff != "" {
		t.Fatalf("renewal time (-want +got):\n%s", diff)
	}
	clk.Advance(12 * time.Hour)
	// Two failures, each followed by a backoff wait on the clock.
	for i := 0; i < fails; i++ {
		at := waitTimer(t, clk)
		if got, _ := rot.Certificate(); got != first {
			t.Fatalf("certificate changed after a failed renewal")
		}
		clk.Advance(at.Sub(clk.Now()))
	}
	poll.True(t, 30*time.Second, "the renewed certificate", func() bool {
		c, _ := rot.Certificate()
		return c.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) == 0
	})
	select {
	case <-changes:
	default:
		t.Error("subscriber not notified of the renewal")
	}

	fresh, err := tls.Dial("tcp", addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := roundTrip(fresh, "after"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(second.Leaf.SerialNumber.String(), serialOf(fresh)); diff != "" {
		t.Errorf("serial of a new connection (-want +got):\n%s", diff)
	}
	if err := roundTrip(old, "still here"); err != nil {
		t.Errorf("established connection broken by the renewal: %v", err)
	}
	if diff := cmp.Diff(first.Leaf.SerialNumber.String(), serialOf(old)); diff != "" {
		t.Errorf("serial of the established connection (-want +got):\n%s", diff)
	}

	// Next renewal is planned at the new certificate's half life.
	if diff := cmp.Diff(tNow.Add(24*time.Hour), waitTimer(t, clk)); diff != "" {
		t.Errorf("next renewal time (-want +got):\n%s", diff)
	}
	if got := counterValue(t, reg, "fedmesh_identity_renewals_total", "error"); got != float64(fails) {
		t.Errorf("error renewals = %v, want %d", got, fails)
	}
	if got := counterValue(t, reg, "fedmesh_identity_renewals_total", "ok"); got != 1 {
		t.Errorf("ok renewals = %v, want 1", got)
	}
}

func TestRotatorFetchesFirstCertificate(t *testing.T) {
	root := newRoot(t, "fedmesh.test")
	clk := &fakeClock{now: tNow}
	c := root.leaf(t, leafOpts{uris: []string{echoID}, notBefore: tNow, notAfter: tNow.Add(time.Hour)})
	rot, err := identity.NewRotator(identity.RotatorConfig{
		Renew: func(context.Context) (*tls.Certificate, error) { return c, nil },
		Now:   clk.Now,
		After: clk.After,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rot.Certificate(); !errors.Is(err, identity.ErrNoLocalCertificate) {
		t.Fatalf("Certificate before Run: err = %v, want ErrNoLocalCertificate", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rot.Run(ctx) }()
	poll.True(t, 30*time.Second, "the first certificate", func() bool { _, err := rot.Certificate(); return err == nil })
	if diff := cmp.Diff(tNow.Add(30*time.Minute), waitTimer(t, clk)); diff != "" {
		t.Errorf("renewal time (-want +got):\n%s", diff)
	}
	if err := rot.Run(ctx); err == nil {
		t.Error("second Run did not fail")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestRotatorRefusesBadCertificate(t *testing.T) {
	root := newRoot(t, "fedmesh.test")
	good := root.leaf(t, leafOpts{uris: []string{echoID}})
	rot, err := identity.NewRotator(identity.RotatorConfig{Renew: func(context.Context) (*tls.Certificate, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rot.SetCertificate(good); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cert *tls.Certificate
	}{
		{name: "nil", cert: nil},
		{name: "empty chain", cert: &tls.Certificate{PrivateKey: good.PrivateKey}},
		{name: "no key", cert: &tls.Certificate{Certificate: good.Certificate}},
		{name: "key of another certificate", cert: &tls.Certificate{Certificate: good.Certificate, PrivateKey: testpki.Key(t)}},
		{name: "garbage", cert: &tls.Certificate{Certificate: [][]byte{[]byte("x")}, PrivateKey: good.PrivateKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := rot.SetCertificate(tt.cert); err == nil {
				t.Fatal("SetCertificate accepted a bad certificate")
			}
			if got, _ := rot.Certificate(); got != good {
				t.Error("a refused certificate replaced the good one")
			}
		})
	}
}

// counterValue reads one child of a counter vector labelled result=RESULT.
func counterValue(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
