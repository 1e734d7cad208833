package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Decisions a record is about.
const (
	DecisionDeny  = "deny"
	DecisionAudit = "audit"
)

// Record is one line of the audit trail.
type Record struct {
	// Time is when the decision was made.
	Time time.Time `json:"time"`
	// Decision is DecisionDeny or DecisionAudit.
	Decision string `json:"decision"`
	// Policy is NAMESPACE/NAME of the AuthorizationPolicy, or "" when a
	// request was denied because no ALLOW policy matched.
	Policy string `json:"policy"`
	// Rule is the index of the policy's rule, nil when not known.
	Rule *int `json:"rule"`
	// Reason is "denied by DENY policy", "no ALLOW policy matched" or
	// "audited".
	Reason string `json:"reason"`
	// SourcePrincipal is the client's SPIFFE ID.
	SourcePrincipal string `json:"source_principal"`
	// SourceCluster is the client's cluster from its certificate chain.
	SourceCluster string `json:"source_cluster"`
	// DestinationService is NAMESPACE/NAME of the service called.
	DestinationService string `json:"destination_service"`
	// DestinationPort is the service port.
	DestinationPort int32 `json:"destination_port"`
	// Method and Path are the request's ("" for TCP).
	Method string `json:"method"`
	Path   string `json:"path"`
	// Protocol is "http", "grpc" or "tcp".
	Protocol string `json:"protocol"`
}

// Recorder takes records without blocking. *Log implements it.
type Recorder interface {
	Record(r Record)
}

var _ Recorder = (*Log)(nil)

// Drop reasons.
const (
	DropQueueFull  = "queue_full"
	DropClosed     = "closed"
	DropWriteError = "write_error"
	DropEncode     = "encode_error"
)

// DefaultQueueSize is the queue length when Config.QueueSize is zero.
const DefaultQueueSize = 4096

// Config configures a Log.
type Config struct {
	// Sink receives the records as JSON lines, whole lines per Write.
	// Required. The Log does not close it.
	Sink io.Writer
	// QueueSize is how many records may wait to be written; zero means
	// DefaultQueueSize.
	QueueSize int
	// Logger receives write errors; nil discards.
	Logger *slog.Logger
}

// Log is a non-blocking audit trail. Record may be called from any
// goroutine; Run is called once, by the Log's owner.
type Log struct {
	cfg     Config
	log     *slog.Logger
	queue   chan Record
	written prometheus.Counter
	dropped *prometheus.CounterVec

	mu     sync.RWMutex // guards the following
	closed bool         // Run has stopped taking records
}

// New validates cfg and returns a Log whose metrics are registered with
// reg (nil registers nothing).
func New(cfg Config, reg prometheus.Registerer) (*Log, error) {
	if cfg.Sink == nil {
		return nil, errors.New("audit: sink is required")
	}
	if cfg.QueueSize < 0 {
		return nil, fmt.Errorf("audit: queue size %d is negative", cfg.QueueSize)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		cfg:   cfg,
		log:   log.With("component", "audit"),
		queue: make(chan Record, cfg.QueueSize),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_audit_records_total",
			Help: "Authorization audit records written to the audit sink.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_audit_dropped_total",
			Help: "Authorization audit records dropped, by reason (queue_full, closed, write_error, encode_error).",
		}, []string{"reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{l.written, l.dropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("audit: register metrics: %w", err)
			}
		}
	}
	return l, nil
}

// Record queues r for writing. It never blocks: when the queue is full,
// or Run has ended, r is dropped and counted.
func (l *Log) Record(r Record) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.dropped.WithLabelValues(DropClosed).Inc()
		return
	}
	select {
	case l.queue <- r:
	default:
		l.dropped.WithLabelValues(DropQueueFull).Inc()
	}
}

// Run writes queued records until ctx ends; then it stops taking
// records, writes the ones still queued and returns nil.
func (l *Log) Run(ctx context.Context) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	failing := false
	write := func(first Record) {
		buf.Reset()
		n := 0
		add := func(r Record) {
			if err := enc.Encode(&r); err != nil {
				l.dropped.WithLabelValues(DropEncode).Inc()
				return
			}
			n++
		}
		add(first)
	more:
		for buf.Len() < 64<<10 {
			select {
			case r := <-l.queue:
				add(r)
			default:
				break more
			}
		}
		if n == 0 {
			return
		}
		if _, err := l.cfg.Sink.Write(buf.Bytes()); err != nil {
			l.dropped.WithLabelValues(DropWriteError).Add(float64(n))
			if !failing {
				l.log.Warn("cannot write the audit trail; dropping records", "err", err)
			}
			failing = true
			return
		}
		if failing {
			l.log.Info("writing the audit trail again")
			failing = false
		}
		l.written.Add(float64(n))
	}
	for {
		select {
		case r := <-l.queue:
			write(r)
		case <-ctx.Done():
			l.mu.Lock()
			l.closed = true
			l.mu.Unlock()
			for {
				select {
				case r := <-l.queue:
					write(r)
				default:
					return nil
				}
			}
		}
	}
}
