package tracing

import (
	"context"
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/fedmesh/fedmesh/topology"
)

// Span attribute keys of fedmesh (the http.*, url.*, server.* and
// network.* keys are OpenTelemetry's semantic conventions).
const (
	// AttrCluster is the cluster of the sidecar that recorded the span.
	AttrCluster = "fedmesh.cluster"
	// AttrLocality is that sidecar's region/zone.
	AttrLocality = "fedmesh.locality"
	// AttrService is the service port, NAMESPACE/NAME:PORT.
	AttrService = "fedmesh.service"
	// AttrSourceCluster is the calling workload's cluster (on the server
	// span, from the issuer of its certificate; "" when unknown).
	AttrSourceCluster = "fedmesh.source_cluster"
	// AttrSourcePrincipal is the caller's SPIFFE ID (server span).
	AttrSourcePrincipal = "fedmesh.source_principal"
	// AttrDestinationCluster is the cluster that served the request.
	AttrDestinationCluster = "fedmesh.destination_cluster"
	// AttrDestinationLocality is the answering endpoint's region/zone
	// (client span).
	AttrDestinationLocality = "fedmesh.destination_locality"
	// AttrPriority is the answering endpoint's failover priority, 0 the
	// most preferred (client span).
	AttrPriority = "fedmesh.priority"
	// AttrAttempts is how many attempts the request took (client span).
	AttrAttempts = "fedmesh.attempts"
	// AttrError is the reason of a response the sidecar made itself
	// (X-Fedmesh-Error).
	AttrError = "fedmesh.error"
)

// Event names.
const (
	// EventRetry: an attempt failed and another one follows.
	EventRetry = "retry"
	// EventFailover: an attempt went to another cluster or priority than
	// the first.
	EventFailover = "failover"
)

// Endpoint is where one attempt of a request went.
type Endpoint struct {
	// Address is the dialled host:port (a remote cluster's gateway for a
	// cross-cluster endpoint).
	Address string
	// Cluster is the fedmesh cluster of the endpoint.
	Cluster string
	// Priority is its failover priority.
	Priority int
	// Locality is where it runs.
	Locality topology.Locality
}

// Span is one request's span. The zero Span (from a nil Tracer) does
// nothing; so do its methods when the span is not sampled.
type Span struct {
	span trace.Span
	// st is the attempts of a recording client span, nil otherwise.
	st *attempts
}

type attempts struct {
	first, last Endpoint
	n           int
}

// StartClient opens the CLIENT span of an outbound request to service
// (NAMESPACE/NAME:PORT), a child of the trace context in h when there is
// one, and replaces h's trace headers with the span's. A nil Tracer
// returns the zero Span and leaves h alone.
func (t *Tracer) StartClient(h http.Header, method, path, service string) Span {
	if t == nil {
		return Span{}
	}
	return t.start(trace.SpanKindClient, h, method, path, service)
}

// StartServer opens the SERVER span of an inbound request for service, a
// child of the trace context in h (the client sidecar's span), and
// replaces h's trace headers with the span's, for the app. Set the
// caller with SetSource.
func (t *Tracer) StartServer(h http.Header, method, path, service string) Span {
	if t == nil {
		return Span{}
	}
	return t.start(trace.SpanKindServer, h, method, path, service)
}

// kindOption are the span kind options, made once: each WithSpanKind
// call allocates.
var kindOption = map[trace.SpanKind]trace.SpanStartOption{
	trace.SpanKindClient: trace.WithSpanKind(trace.SpanKindClient),
	trace.SpanKindServer: trace.WithSpanKind(trace.SpanKindServer),
}

func (t *Tracer) start(kind trace.SpanKind, h http.Header, method, path, service string) Span {
	present := headersOf(h)
	ctx := context.Background()
	if present != 0 {
		ctx, _ = t.prop.Extract(ctx, h)
	}
	// The span is named only when it records: an unsampled span costs no
	// name.
	ctx, s := t.tracer.Start(ctx, "", kindOption[kind])
	t.prop.Inject(ctx, h, present)
	if s.IsRecording() {
		s.SetName(method + " " + service)
		tags := *t.tags.Load()
		kv := make([]attribute.KeyValue, 0, 6+len(tags))
		kv = append(kv,
			attribute.String(AttrCluster, t.cfg.Cluster),
			attribute.String(AttrLocality, t.locality),
			attribute.String(AttrService, service),
			attribute.String("http.request.method", method),
			attribute.String("url.path", path),
		)
		if kind == trace.SpanKindClient {
			kv = append(kv, attribute.String(AttrSourceCluster, t.cfg.Cluster))
		} else {
			kv = append(kv, attribute.String(AttrDestinationCluster, t.cfg.Cluster))
		}
		kv = append(kv, tags...)
		s.SetAttributes(kv...)
		if kind == trace.SpanKindClient {
			return Span{span: s, st: new(attempts)}
		}
	}
	return Span{span: s}
}

// Recording reports whether the span is sampled and records attributes
// (and, for a client span, attempts).
func (s *Span) Recording() bool { return s.span != nil && s.span.IsRecording() }

// TraceID is the span's trace id in hex, "" for the zero Span (the access
// log's trace_id).
func (s *Span) TraceID() string {
	if s.span == nil {
		return ""
	}
	if sc := s.span.SpanContext(); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

// SetSource records the caller of a server span: its cluster ("" when
// unknown) and SPIFFE ID, and the peer address the request came from.
func (s *Span) SetSource(cluster, principal, peerAddr string) {
	if !s.Recording() {
		return
	}
	s.span.SetAttributes(
		attribute.String(AttrSourceCluster, cluster),
		attribute.String(AttrSourcePrincipal, principal),
		attribute.String("network.peer.address", hostOf(peerAddr)),
	)
}

// Attempt records that an attempt of a client span goes to ep; an
// attempt on another cluster or priority than the first adds a failover
// event.
func (s *Span) Attempt(ep Endpoint) {
	a := s.st
	if a == nil {
		return
	}
	a.n++
	a.last = ep
	if a.n == 1 {
		a.first = ep
		return
	}
	if ep.Cluster != a.first.Cluster || ep.Priority != a.first.Priority {
		s.span.AddEvent(EventFailover, trace.WithAttributes(
			attribute.Int("fedmesh.attempt", a.n),
			attribute.String("fedmesh.from_cluster", a.first.Cluster),
			attribute.Int("fedmesh.from_priority", a.first.Priority),
			attribute.String("fedmesh.to_cluster", ep.Cluster),
			attribute.Int("fedmesh.to_priority", ep.Priority),
			attribute.String("server.address", ep.Address),
		))
	}
}

// Retry records that the last attempt failed for reason (connect_failure,
// reset, status_5xx, per_try_timeout, ...) and another one follows.
func (s *Span) Retry(reason string) {
	a := s.st
	if a == nil {
		return
	}
	s.span.AddEvent(EventRetry, trace.WithAttributes(
		attribute.Int("fedmesh.attempt", a.n),
		attribute.String("fedmesh.retry_reason", reason),
		attribute.String(AttrDestinationCluster, a.last.Cluster),
		attribute.String("server.address", a.last.Address),
	))
}

// End ends the span with the response status the caller got and, for a
// response the sidecar made itself, its reason (X-Fedmesh-Error); 5xx
// marks the span as an error.
func (s *Span) End(status int, reason string) {
	if s.span == nil {
		return
	}
	if s.span.IsRecording() {
		kv := []attribute.KeyValue{attribute.Int("http.response.status_code", status)}
		if a := s.st; a != nil && a.n > 0 {
			host, port, _ := net.SplitHostPort(a.last.Address)
			p, _ := strconv.Atoi(port)
			kv = append(kv,
				attribute.String(AttrDestinationCluster, a.last.Cluster),
				attribute.String(AttrDestinationLocality, a.last.Locality.Region+"/"+a.last.Locality.Zone),
				attribute.Int(AttrPriority, a.last.Priority),
				attribute.Int(AttrAttempts, a.n),
				attribute.String("server.address", host),
				attribute.Int("server.port", p),
			)
		}
		if reason != "" {
			kv = append(kv, attribute.String(AttrError, reason))
		}
		s.span.SetAttributes(kv...)
		if status >= 500 {
			s.span.SetStatus(codes.Error, "HTTP "+strconv.Itoa(status))
		}
	}
	s.span.End()
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
