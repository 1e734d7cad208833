package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/fedmesh/fedmesh/topology"
)

// Protocol is the OTLP transport.
type Protocol string

// The OTLP transports.
const (
	GRPC Protocol = "grpc"
	HTTP Protocol = "http"
)

// ParseProtocol reads grpc or http.
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(strings.ToLower(s)); p {
	case GRPC, HTTP:
		return p, nil
	}
	return "", fmt.Errorf("otlp protocol %q: want grpc or http", s)
}

// Defaults of Config.
const (
	DefaultQueueSize     = 2048
	DefaultBatchSize     = 512
	DefaultBatchInterval = time.Second
	DefaultExportTimeout = 10 * time.Second
)

// Config configures a Tracer.
type Config struct {
	// Endpoint is the OTLP collector: host:port (plaintext), or a URL,
	// http://host:port or https://host:port (TLS with the system roots),
	// whose path, if any, replaces /v1/traces for HTTP. Required unless
	// Exporter is set.
	Endpoint string
	// Protocol is the OTLP transport; empty means GRPC.
	Protocol Protocol
	// Exporter, when set, receives the spans instead of an OTLP exporter
	// built from Endpoint and Protocol (tests, other transports).
	Exporter sdktrace.SpanExporter
	// SamplingPercent is the share of new traces that are sampled, 0 to
	// 100, until Configure sets another.
	SamplingPercent float64
	// ServiceName is the service.name of the spans (Jaeger's service);
	// required. The sidecar uses WORKLOAD.NAMESPACE.
	ServiceName string
	// Namespace is the workload's namespace (service.namespace).
	Namespace string
	// Cluster is the fedmesh cluster the sidecar runs in. Required.
	Cluster string
	// Locality is the sidecar's region and zone.
	Locality topology.Locality
	// QueueSize bounds the finished spans waiting for export; more are
	// dropped. Zero means DefaultQueueSize.
	QueueSize int
	// BatchSize is the most spans sent in one export; zero means
	// DefaultBatchSize.
	BatchSize int
	// BatchInterval is how often a batch that is not full is sent; zero
	// means DefaultBatchInterval.
	BatchInterval time.Duration
	// ExportTimeout bounds one export, retries included; zero means
	// DefaultExportTimeout.
	ExportTimeout time.Duration
	// Logger receives export failures at debug level; nil discards.
	Logger *slog.Logger
}

// Tracer opens the sidecar's spans and exports them. Create it with New,
// stop it with Shutdown. Its methods are safe for concurrent use.
type Tracer struct {
	cfg      Config
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	batch    *batcher
	m        *metrics
	prop     Propagator
	setRatio func(float64) error

	// locality is "region/zone", the fedmesh.locality of this sidecar.
	locality string
	// tags are the extra attributes of every span (TelemetryPolicy
	// customTags), replaced by Configure.
	tags atomic.Pointer[[]attribute.KeyValue]
	// policy is the sampling percentage Configure set, or nil.
	policy atomic.Pointer[float64]
}

// New validates cfg, registers the tracer's metrics with reg (nil: none)
// and returns a Tracer whose exporter connects lazily: a collector that is
// down or slow costs spans, never requests.
func New(cfg Config, reg prometheus.Registerer) (*Tracer, error) {
	switch {
	case cfg.Endpoint == "" && cfg.Exporter == nil:
		return nil, errors.New("tracing: otlp endpoint is required")
	case cfg.ServiceName == "":
		return nil, errors.New("tracing: service name is required")
	case cfg.Cluster == "":
		return nil, errors.New("tracing: cluster is required")
	case cfg.QueueSize < 0 || cfg.BatchSize < 0 || cfg.BatchInterval < 0 || cfg.ExportTimeout < 0:
		return nil, errors.New("tracing: queue size, batch size, batch interval and export timeout may not be negative")
	}
	if cfg.Protocol == "" {
		cfg.Protocol = GRPC
	}
	if _, err := ParseProtocol(string(cfg.Protocol)); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	sampler, setRatio, err := NewSampler(cfg.SamplingPercent)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	cfg.QueueSize = cmpOr(cfg.QueueSize, DefaultQueueSize)
	cfg.BatchSize = cmpOr(cfg.BatchSize, DefaultBatchSize)
	cfg.BatchInterval = cmpOr(cfg.BatchInterval, DefaultBatchInterval)
	cfg.ExportTimeout = cmpOr(cfg.ExportTimeout, DefaultExportTimeout)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	exp := cfg.Exporter
	if exp == nil {
		if exp, err = newExporter(cfg); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(reg)
	if err != nil {
		_ = exp.Shutdown(context.Background())
		return nil, err
	}
	t := &Tracer{cfg: cfg, m: m, setRatio: setRatio, locality: cfg.Locality.Region + "/" + cfg.Locality.Zone}
	t.prop = Propagator{Invalid: func(f Format) { m.invalid.WithLabelValues(f.String()).Inc() }}
	t.batch = newBatcher(exp, m, log.With("component", "tracing"), cfg.QueueSize, cfg.BatchSize, cfg.BatchInterval, cfg.ExportTimeout)
	res := resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.namespace", cfg.Namespace),
		attribute.String(AttrCluster, cfg.Cluster),
		attribute.String(AttrLocality, t.locality),
	)
	t.provider = sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sampler),
		sdktrace.WithSpanProcessor(t.batch),
		sdktrace.WithResource(res),
	)
	t.tracer = t.provider.Tracer("github.com/fedmesh/fedmesh/sidecar")
	t.tags.Store(new([]attribute.KeyValue))
	return t, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// newExporter builds the OTLP exporter of cfg. Neither transport connects
// here: gRPC dials in the background, HTTP at the first export.
func newExporter(cfg Config) (sdktrace.SpanExporter, error) {
	u, isURL, err := endpointURL(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	// The exporter's own retries stay within one export's timeout.
	ctx := context.Background()
	switch cfg.Protocol {
	case HTTP:
		opts := []otlptracehttp.Option{otlptracehttp.WithTimeout(cfg.ExportTimeout)}
		if isURL {
			opts = append(opts, otlptracehttp.WithEndpointURL(u))
		} else {
			opts = append(opts, otlptracehttp.WithEndpoint(cfg.Endpoint), otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	default:
		opts := []otlptracegrpc.Option{otlptracegrpc.WithTimeout(cfg.ExportTimeout)}
		if isURL {
			opts = append(opts, otlptracegrpc.WithEndpointURL(u))
		} else {
			opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint), otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
}

// endpointURL tells a URL endpoint (http:// or https://) from host:port.
func endpointURL(ep string) (string, bool, error) {
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return "", false, fmt.Errorf("otlp endpoint %q: %w", ep, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", false, fmt.Errorf("otlp endpoint %q: want http://HOST:PORT, https://HOST:PORT or HOST:PORT", ep)
		}
		if u.Path == "" || u.Path == "/" {
			// The exporter would post to the root path.
			u.Path = "/v1/traces"
		}
		return u.String(), true, nil
	}
	if host, port, err := net.SplitHostPort(ep); err != nil || host == "" || port == "" {
		return "", false, fmt.Errorf("otlp endpoint %q: want HOST:PORT or a URL", ep)
	}
	return ep, false, nil
}

// Configure applies the control plane's telemetry configuration:
// samplingPercent, when not nil, replaces the configured sampling of new
// traces (nil goes back to Config.SamplingPercent); tags become extra
// attributes of every span. An invalid percentage is refused and changes
// nothing.
func (t *Tracer) Configure(samplingPercent *float64, tags map[string]string) error {
	p := t.cfg.SamplingPercent
	if samplingPercent != nil {
		p = *samplingPercent
	}
	if err := t.setRatio(p); err != nil {
		t.m.invalid.WithLabelValues("policy").Inc()
		return fmt.Errorf("tracing: telemetry policy: %w", err)
	}
	if samplingPercent != nil {
		v := *samplingPercent
		t.policy.Store(&v)
	} else {
		t.policy.Store(nil)
	}
	kv := make([]attribute.KeyValue, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		kv = append(kv, attribute.String(k, tags[k]))
	}
	t.tags.Store(&kv)
	return nil
}

// SamplingPercent is the sampling percentage of new traces in force.
func (t *Tracer) SamplingPercent() float64 {
	if p := t.policy.Load(); p != nil {
		return *p
	}
	return t.cfg.SamplingPercent
}

// Propagator returns the tracer's propagator (which counts invalid
// headers).
func (t *Tracer) Propagator() Propagator { return t.prop }

// ForceFlush exports the spans queued now.
func (t *Tracer) ForceFlush(ctx context.Context) error { return t.batch.ForceFlush(ctx) }

// Shutdown ends the tracer: spans queued are exported within ctx, then the
// exporter is closed. Spans that end later are dropped (counted).
func (t *Tracer) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }
