package sidecar

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// logRecords keeps the level and message of every record logged.
type logRecords struct {
	mu   sync.Mutex // guards recs
	recs []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// count returns how many records of level have message msg.
func (h *logRecords) count(level slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level == level && r.Message == msg {
			n++
		}
	}
	return n
}

// newBare returns a Sidecar that is not running: apply and the lookups
// work, nothing talks to a control plane.
func newBare(t *testing.T, reg *prometheus.Registry, h slog.Handler) *Sidecar {
	t.Helper()
	s, err := New(Config{
		ControlPlane:         "127.0.0.1:1",
		InsecureControlPlane: true,
		TrustDomain:          spiffeid.RequireTrustDomainFromString("fed.test"),
		Cluster:              "east-1",
		Namespace:            "demo",
		OutboundAddr:         "127.0.0.1:0",
		Logger:               slog.New(h),
		Registerer:           reg,
		Gatherer:             reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.stopAll()
		s.proxy.Close()
		s.closeFixed()
	})
	return s
}

// serveUntilDone serves nothing: it closes l when ctx ends.
func serveUntilDone(ctx context.Context, l net.Listener) error {
	<-ctx.Done()
	return l.Close()
}

// returnsWithin runs fn and fails the test when it has not returned
// within 30 seconds (fn is left running then).
func returnsWithin(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return within 30s: is a lock held?", what)
	}
}

// TestApplyStopsListenersWithoutTheLock removes a listener whose serve
// function does not end until the test lets it: while apply waits for
// it, ServiceAddr and /config_dump must answer, without the listener.
func TestApplyStopsListenersWithoutTheLock(t *testing.T) {
	s := newBare(t, prometheus.NewPedanticRegistry(), slog.DiscardHandler)
	const port = 7000
	key := portKey(port, false)
	release := make(chan struct{})
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { close(release) }) }
	defer let()
	slowStop := func(ctx context.Context, l net.Listener) error {
		<-ctx.Done()
		l.Close()
		<-release
		return nil
	}
	if !s.apply(context.Background(), map[string]string{key: "127.0.0.1:0"}, map[string]serveFunc{key: slowStop}) {
		t.Fatal("apply did not bind 127.0.0.1:0")
	}
	if s.ServiceAddr(port) == "" {
		t.Fatal("no service address after apply")
	}

	var allBound bool
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		allBound = s.apply(context.Background(), nil, nil)
	}()
	defer func() {
		let()
		<-applied
	}()
	poll.True(t, 30*time.Second, "the stopping listener no longer reported", func() bool {
		var addr string
		returnsWithin(t, "ServiceAddr", func() { addr = s.ServiceAddr(port) })
		return addr == ""
	})
	var dump ConfigDumpView
	returnsWithin(t, "ConfigDump", func() { dump = s.ConfigDump().(ConfigDumpView) })
	if diff := cmp.Diff(map[string]string{}, dump.Bound); diff != "" {
		t.Errorf("listeners in /config_dump while one stops (-want +got):\n%s", diff)
	}
	select {
	case <-applied:
		t.Fatal("apply returned before the stopping listener ended")
	default:
	}
	let()
	<-applied
	if !allBound {
		t.Error("apply of an empty set reported a listener not bound")
	}
}

// TestBindFailureLoggedOncePerStreak applies a listener whose port another
// socket holds, step by step: the first failure in a row is a warning,
// the retries after it are debug, every failure is counted, a later bind
// is logged at info, and a new streak warns again.
func TestBindFailureLoggedOncePerStreak(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	logs := &logRecords{}
	s := newBare(t, reg, logs)
	port := meshtest.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	key := portKey(port, false)
	var holder net.Listener
	hold := func() {
		var err error
		if holder, err = net.Listen("tcp", addr); err != nil {
			t.Fatal(err)
		}
	}
	free := func() { holder.Close() }
	defer func() {
		if holder != nil {
			holder.Close()
		}
	}()
	const failMsg = "cannot bind listener; retrying every second"
	const boundMsg = "bound listener after failed attempts"
	type counts struct {
		Bound              bool
		Warn, Debug, Info  int
		AddressInUseErrors float64
	}
	steps := []struct {
		name string
		// before runs before apply; want says whether the listener is in
		// the set applied.
		before func()
		want   bool
		// totals since the start of the test.
		wantCounts counts
	}{
		{name: "port held: warn", before: hold, want: true, wantCounts: counts{Warn: 1, AddressInUseErrors: 1}},
		{name: "retry: debug", want: true, wantCounts: counts{Warn: 1, Debug: 1, AddressInUseErrors: 2}},
		{name: "retry again: debug", want: true, wantCounts: counts{Warn: 1, Debug: 2, AddressInUseErrors: 3}},
		{name: "port freed: bound, info", before: free, want: true, wantCounts: counts{Bound: true, Warn: 1, Debug: 2, Info: 1, AddressInUseErrors: 3}},
		{name: "listener removed", want: false, wantCounts: counts{Bound: true, Warn: 1, Debug: 2, Info: 1, AddressInUseErrors: 3}},
		{name: "held again: a new streak warns", before: hold, want: true, wantCounts: counts{Warn: 2, Debug: 2, Info: 1, AddressInUseErrors: 4}},
		{name: "retry of the new streak: debug", want: true, wantCounts: counts{Warn: 2, Debug: 3, Info: 1, AddressInUseErrors: 5}},
		{name: "removed while failing", want: false, wantCounts: counts{Bound: true, Warn: 2, Debug: 3, Info: 1, AddressInUseErrors: 5}},
		{name: "wanted again: the streak starts over", want: true, wantCounts: counts{Warn: 3, Debug: 3, Info: 1, AddressInUseErrors: 6}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.before != nil {
				st.before()
			}
			var want map[string]string
			if st.want {
				want = map[string]string{key: addr}
			}
			got := counts{
				Bound: s.apply(context.Background(), want, map[string]serveFunc{key: serveUntilDone}),
				Warn:  logs.count(slog.LevelWarn, failMsg),
				Debug: logs.count(slog.LevelDebug, failMsg),
				Info:  logs.count(slog.LevelInfo, boundMsg),
				AddressInUseErrors: meshtest.Counter(t, reg, "fedmesh_sidecar_listener_bind_errors_total",
					map[string]string{"reason": "address_in_use"}),
			}
			if diff := cmp.Diff(st.wantCounts, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
