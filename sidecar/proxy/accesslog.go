package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fedmesh/fedmesh/internal/linequeue"
	"github.com/prometheus/client_golang/prometheus"
)

// AccessLogMode says which requests get an access log line.
type AccessLogMode int

// Access log modes.
const (
	// AccessLogOff logs no request.
	AccessLogOff AccessLogMode = iota
	// AccessLogAll logs every request.
	AccessLogAll
	// AccessLogErrors logs failed requests only: a 5xx, a gRPC status
	// other than OK, or a mesh-made outcome (a response flag) other than
	// a fault delay.
	AccessLogErrors
)

// Access log drop reasons, the reason label of
// fedmesh_sidecar_access_log_dropped_total.
const (
	AccessLogDropQueueFull  = linequeue.DropQueueFull
	AccessLogDropClosed     = linequeue.DropClosed
	AccessLogDropWriteError = linequeue.DropWriteError
)

// DefaultAccessLogQueue is the queue length when AccessLogConfig.QueueSize
// is zero.
const DefaultAccessLogQueue = 1024

// AccessLogConfig configures an AccessLog.
type AccessLogConfig struct {
	// Sink receives the lines, whole lines per Write. Required. The
	// AccessLog does not close it.
	Sink io.Writer
	// QueueSize is how many lines may wait for the sink before new ones
	// are dropped (counted); zero means DefaultAccessLogQueue.
	QueueSize int
	// Logger receives write errors; nil discards.
	Logger *slog.Logger
}

// AccessLog writes one JSON line per request (docs/telemetry.md lists the
// fields) without ever blocking a request: requests hand their record to
// a bounded queue, and Run, on its own goroutine, encodes and writes
// them; a record that finds the queue full is dropped and counted.
// record may be called from any goroutine; Run is called once, by the
// AccessLog's owner.
type AccessLog struct {
	q *linequeue.Queue[accessEntry]
}

// accessEntry is what a queued line is made of.
type accessEntry struct {
	ri   requestInfo
	tags map[string]string // the node's custom tags (immutable)
}

// NewAccessLog validates cfg and returns an AccessLog whose metrics are
// registered with reg (nil registers nothing).
func NewAccessLog(cfg AccessLogConfig, reg prometheus.Registerer) (*AccessLog, error) {
	if cfg.Sink == nil {
		return nil, errors.New("access log: sink is required")
	}
	if cfg.QueueSize < 0 {
		return nil, fmt.Errorf("access log: queue size %d is negative", cfg.QueueSize)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultAccessLogQueue
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	written := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fedmesh_sidecar_access_log_lines_total",
		Help: "Access log lines written.",
	})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fedmesh_sidecar_access_log_dropped_total",
		Help: "Access log lines dropped, by reason (queue_full: the writer was behind; closed: after shutdown; write_error).",
	}, []string{"reason"})
	if reg != nil {
		for _, c := range []prometheus.Collector{written, dropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("access log: register metrics: %w", err)
			}
		}
	}
	q, err := linequeue.New(linequeue.Config[accessEntry]{
		Name:      "the access log",
		Sink:      cfg.Sink,
		QueueSize: cfg.QueueSize,
		Encode:    func(b []byte, e *accessEntry) ([]byte, error) { return appendAccessLine(b, e), nil },
		Written:   written,
		Dropped:   dropped,
		Logger:    log.With("component", "access-log"),
	})
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return &AccessLog{q: q}, nil
}

// record queues a line for ri. It never blocks: when the queue is full,
// or Run has ended, the line is dropped and counted.
func (l *AccessLog) record(ri *requestInfo, tags map[string]string) {
	l.q.Add(accessEntry{ri: *ri, tags: tags})
}

// Run writes queued lines until ctx ends; then it stops taking lines,
// writes the ones still queued and returns nil.
func (l *AccessLog) Run(ctx context.Context) error { return l.q.Run(ctx) }

// appendAccessLine appends e as one JSON object and a newline. The field
// names are docs/telemetry.md's; every field is always present.
func appendAccessLine(b []byte, e *accessEntry) []byte {
	ri := &e.ri
	b = append(b, `{"start_time":"`...)
	b = ri.start.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "reporter", ri.reporter)
	b = appendField(b, "method", ri.method)
	b = appendField(b, "authority", ri.authority)
	b = appendField(b, "path", ri.path)
	b = appendField(b, "protocol", ri.protocol)
	b = append(b, `,"response_code":`...)
	b = strconv.AppendInt(b, int64(ri.code), 10)
	b = appendField(b, "grpc_status", ri.grpcStatus)
	b = appendField(b, "response_flags", ri.flags)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendInt(b, ri.bytesIn, 10)
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendInt(b, ri.bytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(ri.duration)/float64(time.Millisecond), 'f', 3, 64)
	b = appendField(b, "upstream_cluster", ri.upstreamCluster)
	b = appendField(b, "upstream_host", ri.upstreamHost)
	b = append(b, `,"retries":`...)
	b = strconv.AppendInt(b, int64(ri.retries), 10)
	b = appendField(b, "trace_id", ri.traceID)
	b = appendField(b, "source_principal", ri.sourcePrincipal)
	b = appendField(b, "source_cluster", ri.sourceCluster)
	b = appendField(b, "destination_service", ri.destService)
	b = appendField(b, "destination_principal", ri.destPrincipal)
	b = appendField(b, "destination_cluster", ri.destCluster)
	if len(e.tags) > 0 {
		keys := make([]string, 0, len(e.tags))
		for k := range e.tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, `,"tags":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, e.tags[k])
		}
		b = append(b, '}')
	}
	return append(b, "}\n"...)
}

// appendField appends ,"name":"value"; name needs no escaping.
func appendField(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (RFC 8259): quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced by
// U+FFFD, as encoding/json does; <, > and & are left as they are.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript readers;
		// encoding/json escapes them, so do we.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
