package linequeue

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type sink struct {
	mu    sync.Mutex
	b     strings.Builder
	fail  bool
	calls int
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail {
		return 0, errors.New("disk full")
	}
	return s.b.Write(p)
}

func newQueue(t *testing.T, s *sink, size int) (*Queue[int], prometheus.Counter, *prometheus.CounterVec) {
	t.Helper()
	written := prometheus.NewCounter(prometheus.CounterOpts{Name: "w"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"reason"})
	q, err := New(Config[int]{
		Name: "the test log", Sink: s, QueueSize: size,
		Encode: func(b []byte, r *int) ([]byte, error) {
			if *r < 0 {
				return b, errors.New("negative")
			}
			return append(strconv.AppendInt(b, int64(*r), 10), '\n'), nil
		},
		Written: written, Dropped: dropped,
	})
	if err != nil {
		t.Fatal(err)
	}
	return q, written, dropped
}

// TestQueue: records queued before Run are written in order when it
// ends, in one batch; a record that cannot be encoded is dropped alone;
// a full queue and a record after the end are dropped and counted.
func TestQueue(t *testing.T) {
	s := &sink{}
	q, written, dropped := newQueue(t, s, 4)
	for _, r := range []int{1, -1, 2, 3, 4} { // the fifth finds the queue full
		q.Add(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.Run(ctx); err != nil {
		t.Fatal(err)
	}
	q.Add(5)
	if got := s.b.String(); got != "1\n2\n3\n" || s.calls != 1 {
		t.Errorf("sink got %q in %d writes, want \"1\\n2\\n3\\n\" in 1", got, s.calls)
	}
	if n := value(t, written); n != 3 {
		t.Errorf("written %v, want 3", n)
	}
	for reason, want := range map[string]float64{DropEncode: 1, DropQueueFull: 1, DropClosed: 1, DropWriteError: 0} {
		if n := value(t, dropped.WithLabelValues(reason)); n != want {
			t.Errorf("dropped{%s} %v, want %v", reason, n, want)
		}
	}
}

// TestQueueWriteError: a failing sink drops the batch, counted per
// record, and nothing is counted written.
func TestQueueWriteError(t *testing.T) {
	s := &sink{fail: true}
	q, written, dropped := newQueue(t, s, 4)
	q.Add(1)
	q.Add(2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := value(t, dropped.WithLabelValues(DropWriteError)); n != 2 {
		t.Errorf("dropped{write_error} %v, want 2", n)
	}
	if n := value(t, written); n != 0 {
		t.Errorf("written %v, want 0", n)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	enc := func(b []byte, _ *int) ([]byte, error) { return b, nil }
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "w"})
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"reason"})
	for name, cfg := range map[string]Config[int]{
		"no name":    {Sink: &sink{}, QueueSize: 1, Encode: enc, Written: c, Dropped: v},
		"no sink":    {Name: "x", QueueSize: 1, Encode: enc, Written: c, Dropped: v},
		"zero queue": {Name: "x", Sink: &sink{}, Encode: enc, Written: c, Dropped: v},
		"no encoder": {Name: "x", Sink: &sink{}, QueueSize: 1, Written: c, Dropped: v},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
