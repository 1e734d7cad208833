// Package linequeue writes records as lines to a sink without ever
// blocking the goroutines that hand them over: records wait in a bounded
// queue, one goroutine encodes and writes them in batches, and a record
// that finds the queue full (or comes after the end) is dropped and
// counted. The sidecar's audit trail and access log are two of them.
package linequeue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a record is dropped, the values of the Dropped counter's
// reason label.
const (
	DropQueueFull  = "queue_full"
	DropClosed     = "closed"
	DropWriteError = "write_error"
	DropEncode     = "encode_error"
)

// batchBytes is how many bytes of lines one Write carries at most (a
// single longer line is written whole).
const batchBytes = 64 << 10

// Config configures a Queue of records of type T.
type Config[T any] struct {
	// Name names the queue's output in log messages ("the access log").
	// Required.
	Name string
	// Sink receives the lines, whole lines per Write. Required. The
	// Queue does not close it.
	Sink io.Writer
	// QueueSize is how many records may wait for the sink before new
	// ones are dropped. Required, positive.
	QueueSize int
	// Encode appends r's line, newline included, to b. An error drops r
	// (counted as DropEncode). Required. It is called on Run's goroutine
	// only.
	Encode func(b []byte, r *T) ([]byte, error)
	// Written counts the records written. Required.
	Written prometheus.Counter
	// Dropped counts the records dropped, by a "reason" label (the Drop
	// constants). Required.
	Dropped *prometheus.CounterVec
	// Logger receives write errors; nil discards.
	Logger *slog.Logger
}

// Queue is a non-blocking line writer. Add may be called from any
// goroutine; Run is called once, by the Queue's owner.
type Queue[T any] struct {
	cfg   Config[T]
	log   *slog.Logger
	queue chan T

	mu     sync.RWMutex // guards the following
	closed bool         // Run has stopped taking records
}

// New validates cfg and returns a Queue.
func New[T any](cfg Config[T]) (*Queue[T], error) {
	switch {
	case cfg.Name == "":
		return nil, errors.New("line queue: a name is required")
	case cfg.Sink == nil:
		return nil, fmt.Errorf("%s: sink is required", cfg.Name)
	case cfg.QueueSize <= 0:
		return nil, fmt.Errorf("%s: queue size %d is not positive", cfg.Name, cfg.QueueSize)
	case cfg.Encode == nil || cfg.Written == nil || cfg.Dropped == nil:
		return nil, fmt.Errorf("%s: an encoder and the written and dropped counters are required", cfg.Name)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Queue[T]{cfg: cfg, log: log, queue: make(chan T, cfg.QueueSize)}, nil
}

// Add queues r for writing. It never blocks: when the queue is full, or
// Run has ended, r is dropped and counted.
func (q *Queue[T]) Add(r T) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.cfg.Dropped.WithLabelValues(DropClosed).Inc()
		return
	}
	select {
	case q.queue <- r:
	default:
		q.cfg.Dropped.WithLabelValues(DropQueueFull).Inc()
	}
}

// Run writes queued records until ctx ends; then it stops taking
// records, writes the ones still queued and returns nil.
func (q *Queue[T]) Run(ctx context.Context) error {
	buf := make([]byte, 0, batchBytes)
	failing := false
	write := func(first *T) {
		buf = buf[:0]
		n := 0
		add := func(r *T) {
			b, err := q.cfg.Encode(buf, r)
			if err != nil {
				q.cfg.Dropped.WithLabelValues(DropEncode).Inc()
				return
			}
			buf = b
			n++
		}
		add(first)
	more:
		for len(buf) < batchBytes {
			select {
			case r := <-q.queue:
				add(&r)
			default:
				break more
			}
		}
		if n == 0 {
			return
		}
		if _, err := q.cfg.Sink.Write(buf); err != nil {
			q.cfg.Dropped.WithLabelValues(DropWriteError).Add(float64(n))
			if !failing {
				q.log.Warn("cannot write "+q.cfg.Name+"; dropping lines", "err", err)
			}
			failing = true
			return
		}
		if failing {
			q.log.Info("writing " + q.cfg.Name + " again")
			failing = false
		}
		q.cfg.Written.Add(float64(n))
	}
	for {
		select {
		case r := <-q.queue:
			write(&r)
		case <-ctx.Done():
			q.mu.Lock()
			q.closed = true
			q.mu.Unlock()
			for {
				select {
				case r := <-q.queue:
					write(&r)
				default:
					return nil
				}
			}
		}
	}
}
