package tracing

import (
	"context"
	"log/slog"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batcher is a span processor that never blocks the span's owner: a
// finished sampled span goes to a bounded queue, or is dropped when the
// queue is full; one goroutine exports batches of at most batchSize
// spans, when a batch is full or every interval, each export bounded by
// timeout. (The SDK's BatchSpanProcessor works the same way but does not
// say how many spans it dropped.)
type batcher struct {
	exp       sdktrace.SpanExporter
	m         *metrics
	log       *slog.Logger
	queue     chan sdktrace.ReadOnlySpan
	batchSize int
	interval  time.Duration
	timeout   time.Duration

	// base is the parent of every export's context; abort ends it
	// when Shutdown runs out of time.
	base  context.Context
	abort context.CancelFunc

	flush    chan chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

var _ sdktrace.SpanProcessor = (*batcher)(nil)

func newBatcher(exp sdktrace.SpanExporter, m *metrics, log *slog.Logger, queueSize, batchSize int, interval, timeout time.Duration) *batcher {
	b := &batcher{
		exp: exp, m: m, log: log,
		queue:     make(chan sdktrace.ReadOnlySpan, queueSize),
		batchSize: batchSize, interval: interval, timeout: timeout,
		flush: make(chan chan struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	b.base, b.abort = context.WithCancel(context.Background())
	go b.run()
	return b
}

func (b *batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span without waiting.
func (b *batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case <-b.stop:
		b.m.dropped.WithLabelValues("shutdown").Inc()
		return
	default:
	}
	select {
	case b.queue <- s:
	default:
		b.m.dropped.WithLabelValues("queue_full").Inc()
	}
}

// run is the export goroutine; it ends after stop, having exported what
// was queued (bounded by the timeout of each export).
func (b *batcher) run() {
	defer close(b.done)
	t := time.NewTicker(b.interval)
	defer t.Stop()
	batch := make([]sdktrace.ReadOnlySpan, 0, b.batchSize)
	export := func() {
		if len(batch) == 0 {
			return
		}
		b.export(batch)
		clear(batch)
		batch = batch[:0]
	}
	for {
		select {
		case s := <-b.queue:
			batch = append(batch, s)
			if len(batch) >= b.batchSize {
				export()
			}
		case <-t.C:
			export()
		case ack := <-b.flush:
			b.drain(&batch, export)
			export()
			close(ack)
		case <-b.stop:
			b.drain(&batch, export)
			export()
			return
		}
	}
}

// drain moves what is queued now into batches and exports the full ones.
func (b *batcher) drain(batch *[]sdktrace.ReadOnlySpan, export func()) {
	for {
		select {
		case s := <-b.queue:
			*batch = append(*batch, s)
			if len(*batch) >= b.batchSize {
				export()
			}
		default:
			return
		}
	}
}

func (b *batcher) export(batch []sdktrace.ReadOnlySpan) {
	ctx, cancel := context.WithTimeout(b.base, b.timeout)
	defer cancel()
	if err := b.exp.ExportSpans(ctx, batch); err != nil {
		b.m.dropped.WithLabelValues("export_failed").Add(float64(len(batch)))
		b.log.Debug("exporting spans failed", "spans", len(batch), "err", err)
		return
	}
	b.m.exported.Add(float64(len(batch)))
}

// ForceFlush exports what is queued and returns when that is done or ctx
// ends.
func (b *batcher) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case b.flush <- ack:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued, stops the goroutine and shuts the
// exporter down. When ctx ends first, the export under way is abandoned
// and what is left queued dropped (counted), and Shutdown returns ctx's
// error once the goroutine has ended.
func (b *batcher) Shutdown(ctx context.Context) error {
	b.stopOnce.Do(func() { close(b.stop) })
	select {
	case <-b.done:
	case <-ctx.Done():
		b.abort()
		<-b.done
		b.abort()
		_ = b.exp.Shutdown(ctx)
		return ctx.Err()
	}
	b.abort()
	return b.exp.Shutdown(ctx)
}
