package store_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
)

// stallRelay is a TCP relay in front of an etcd whose answers can be held
// back while requests still pass: etcd keeps receiving keepalives and
// renewing the lease, but the client hears nothing.
type stallRelay struct {
	ln     net.Listener
	target string
	mu     sync.RWMutex // held for writing while answers are stalled
	wg     sync.WaitGroup
	// answered counts the bytes of answers passed on.
	answered atomic.Int64
}

func startStallRelay(t *testing.T, target string) *stallRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &stallRelay{ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *stallRelay) accept() {
	defer r.wg.Done()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		conns = append(conns, c, up)
		r.wg.Add(2)
		go func() { defer r.wg.Done(); _, _ = io.Copy(up, c); up.Close() }()
		go func() {
			defer r.wg.Done()
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := up.Read(buf)
				if n > 0 {
					r.mu.RLock() // waits while stalled
					_, werr := c.Write(buf[:n])
					r.answered.Add(int64(n))
					r.mu.RUnlock()
					if werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// stall holds etcd's answers back for d.
func (r *stallRelay) stall(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	time.Sleep(d) // the fault's length, not a wait for state
}

// TestLeaseKeptWhenKeepaliveStarves: etcd's answers stop reaching the
// control plane for longer than the lease's TTL while its keepalives still
// reach etcd (a starved process or a slow link), so the client gives the
// keepalive up although etcd never expired the lease. The store asks etcd,
// finds the lease alive and keeps it: same lease, no rewrite of the
// exports (which would send every peer an event per export).
func TestLeaseKeptWhenKeepaliveStarves(t *testing.T) {
	ctx := testCtx(t)
	host := storetest.Open(t, "east-1")
	relay := startStallRelay(t, strings.TrimPrefix(host.ClientURL(), "http://"))
	s := storetest.OpenConfig(t, store.Config{
		Cluster:   "east-2",
		Endpoints: []string{"http://" + relay.ln.Addr().String()},
		LeaseTTL:  3 * time.Second,
		Logger:    quietLogger(),
	})
	if _, err := s.SetExports(ctx, manyExports("east-2", 3)); err != nil {
		t.Fatal(err)
	}
	lease := s.LeaseID()
	// Until the keepalive's first answer, the client waits 5 s for one;
	// after it, the lease's TTL. Anything etcd sends once SetExports has
	// its answer is the keepalive's.
	sent := relay.answered.Load()
	poll.True(t, 10*time.Second, "a keepalive answered", func() bool { return relay.answered.Load() > sent })
	// Longer than the TTL, so that the client gives the keepalive up, and
	// shorter than the TTL after that, so that etcd still holds the lease
	// (the client stops sending keepalives once it gives up).
	relay.stall(4 * time.Second)
	poll.True(t, 30*time.Second, "the keepalive resumed on the same lease", func() bool {
		return counterValue(t, s.Metrics().LeaseKeepaliveResumes) >= 1
	})
	if got := s.LeaseID(); got != lease {
		t.Errorf("lease %x replaced by %x: the exports were rewritten", lease, got)
	}
	if v := counterValue(t, s.Metrics().Writes.WithLabelValues("lease_rewrite")); v != 0 {
		t.Errorf("%v lease rewrites, want 0", v)
	}
	if v := counterValue(t, s.Metrics().LeaseKeepaliveFailures); v != 0 {
		t.Errorf("%v lease losses counted, want 0", v)
	}
	if n, err := countExports(t, host, "east-2"); err != nil || n != 3 {
		t.Errorf("after the stall: %d exports (%v), want 3", n, err)
	}
}
