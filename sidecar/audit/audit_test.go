package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/audit"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a sink tests can read while Run writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	err error
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSuffix(b.buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func run(t *testing.T, l *audit.Log) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func TestRecordFields(t *testing.T) {
	sink := &syncBuffer{}
	l, err := audit.New(audit.Config{Sink: sink}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, l)
	rule := 2
	at := time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)
	l.Record(audit.Record{Time: at, Decision: audit.DecisionDeny, Policy: "demo/deny-admin", Rule: &rule, Reason: "denied by DENY policy",
		SourcePrincipal: "spiffe://fed.test/ns/web/sa/frontend", SourceCluster: "east-2", DestinationService: "demo/echo", DestinationPort: 8080,
		Method: "GET", Path: "/admin/<x>", Protocol: "http"})
	l.Record(audit.Record{Time: at, Decision: audit.DecisionDeny, Reason: "no ALLOW policy matched", DestinationService: "demo/db", DestinationPort: 5432, Protocol: "tcp"})
	poll.True(t, 10*time.Second, "two lines", func() bool { return len(sink.lines()) == 2 })
	want := []map[string]any{
		{"time": "2026-03-01T12:00:00.123Z", "decision": "deny", "policy": "demo/deny-admin", "rule": 2.0, "reason": "denied by DENY policy",
			"source_principal": "spiffe://fed.test/ns/web/sa/frontend", "source_cluster": "east-2", "destination_service": "demo/echo",
			"destination_port": 8080.0, "method": "GET", "path": "/admin/<x>", "protocol": "http"},
		{"time": "2026-03-01T12:00:00.123Z", "decision": "deny", "policy": "", "rule": nil, "reason": "no ALLOW policy matched",
			"source_principal": "", "source_cluster": "", "destination_service": "demo/db",
			"destination_port": 5432.0, "method": "", "path": "", "protocol": "tcp"},
	}
	for i, line := range sink.lines() {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		if diff := cmp.Diff(want[i], got); diff != "" {
			t.Errorf("line %d (-want +got):\n%s", i, diff)
		}
	}
	if !strings.Contains(sink.lines()[0], `"/admin/<x>"`) {
		t.Errorf("HTML characters were escaped: %s", sink.lines()[0])
	}
}

// blockingSink holds every write until released, so the queue fills.
type blockingSink struct {
	release chan struct{}
	started chan struct{}
	once    sync.Once
	syncBuffer
}

func (b *blockingSink) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.started) })
	<-b.release
	return b.syncBuffer.Write(p)
}

func TestQueueFullDropsAndShutdownFlushes(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{}), started: make(chan struct{})}
	reg := prometheus.NewPedanticRegistry()
	l, err := audit.New(audit.Config{Sink: sink, QueueSize: 3}, reg)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, l)
	l.Record(audit.Record{Decision: "deny", Path: "/0"})
	<-sink.started // Run holds record 0 in a blocked write
	for i := 1; i <= 5; i++ {
		l.Record(audit.Record{Decision: "deny", Path: "/" + string(rune('0'+i))})
	}
	// 1, 2, 3 fit the queue; 4 and 5 do not, and Record did not block.
	if got := dropped(t, reg, audit.DropQueueFull); got != 2 {
		t.Errorf("queue_full drops = %v, want 2", got)
	}
	close(sink.release)
	stop() // flushes what is queued
	var paths []string
	for _, line := range sink.lines() {
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, r.Path)
	}
	if diff := cmp.Diff([]string{"/0", "/1", "/2", "/3"}, paths); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	l.Record(audit.Record{Decision: "deny"})
	if got := dropped(t, reg, audit.DropClosed); got != 1 {
		t.Errorf("closed drops = %v, want 1", got)
	}
	if n := meshtest.Counter(t, reg, "fedmesh_audit_records_total", nil); n != 4 {
		t.Errorf("records written = %v, want 4", n)
	}
}

func TestWriteErrorsCounted(t *testing.T) {
	sink := &syncBuffer{err: errors.New("disk full")}
	reg := prometheus.NewPedanticRegistry()
	l, err := audit.New(audit.Config{Sink: sink}, reg)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, l)
	l.Record(audit.Record{Decision: "audit"})
	poll.True(t, 10*time.Second, "write error counted", func() bool { return dropped(t, reg, audit.DropWriteError) == 1 })
	stop()
}

func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	line := func(i int) string { return strings.Repeat(string(rune('a'+i)), 9) + "\n" } // 10 bytes
	f, err := audit.OpenFile(path, 25, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 9; i++ {
		if _, err := f.Write([]byte(line(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Two lines fit in 25 bytes; 9 lines make files [ab][cd][ef][gh][i],
	// of which the newest and two old ones are kept.
	want := map[string]string{
		"audit.log":   line(8),
		"audit.log.1": line(6) + line(7),
		"audit.log.2": line(4) + line(5),
	}
	got := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = string(b)
		if info, _ := e.Info(); info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	// Reopening appends to the current file and counts its size.
	f, err = audit.OpenFile(path, 25, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte(line(9)))
	f.Write([]byte(line(10)))
	b, _ := os.ReadFile(path)
	if string(b) != line(10) {
		t.Errorf("after reopen, current file = %q, want %q", b, line(10))
	}
	if _, err := audit.OpenFile(path, 0, 1); err == nil {
		t.Error("max size 0 accepted")
	}
}

func TestFileWholeLinesThroughLog(t *testing.T) {
	dir := t.TempDir()
	f, err := audit.OpenFile(filepath.Join(dir, "a.log"), 600, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := audit.New(audit.Config{Sink: f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, l)
	for i := 0; i < 20; i++ {
		l.Record(audit.Record{Decision: "audit", Reason: "audited", Path: "/p"})
	}
	stop()
	n := 0
	for _, name := range []string{"a.log", "a.log.1", "a.log.2", "a.log.3"} {
		fh, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var r audit.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("%s: line %q is not a record: %v", name, sc.Text(), err)
			}
			n++
		}
		fh.Close()
	}
	if n == 0 || n > 20 {
		t.Errorf("%d records across the files, want 1..20 (old files beyond 3 are dropped)", n)
	}
}

func dropped(t *testing.T, g prometheus.Gatherer, reason string) float64 {
	t.Helper()
	return meshtest.Counter(t, g, "fedmesh_audit_dropped_total", map[string]string{"reason": reason})
}
