package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/fedmesh/fedmesh/internal/linequeue"
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
	DropQueueFull  = linequeue.DropQueueFull
	DropClosed     = linequeue.DropClosed
	DropWriteError = linequeue.DropWriteError
	DropEncode     = linequeue.DropEncode
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
	q *linequeue.Queue[Record]
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
	written := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fedmesh_audit_records_total",
		Help: "Authorization audit records written to the audit sink.",
	})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fedmesh_audit_dropped_total",
		Help: "Authorization audit records dropped, by reason (queue_full, closed, write_error, encode_error).",
	}, []string{"reason"})
	if reg != nil {
		for _, c := range []prometheus.Collector{written, dropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("audit: register metrics: %w", err)
			}
		}
	}
	// The encoder runs on Run's goroutine only, so one buffer serves.
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	q, err := linequeue.New(linequeue.Config[Record]{
		Name:      "the audit trail",
		Sink:      cfg.Sink,
		QueueSize: cfg.QueueSize,
		Encode: func(b []byte, r *Record) ([]byte, error) {
			line.Reset()
			if err := enc.Encode(r); err != nil {
				return b, err
			}
			return append(b, line.Bytes()...), nil
		},
		Written: written,
		Dropped: dropped,
		Logger:  log.With("component", "audit"),
	})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &Log{q: q}, nil
}

// Record queues r for writing. It never blocks: when the queue is full,
// or Run has ended, r is dropped and counted.
func (l *Log) Record(r Record) { l.q.Add(r) }

// Run writes queued records until ctx ends; then it stops taking
// records, writes the ones still queued and returns nil.
func (l *Log) Run(ctx context.Context) error { return l.q.Run(ctx) }
