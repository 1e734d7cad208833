// Package tracing is the sidecar's distributed tracing: it reads and writes
// the trace context of HTTP requests (W3C traceparent/tracestate and B3 in
// its single and multi header forms), opens a CLIENT span per outbound
// request and a SERVER span per inbound request, and exports sampled spans
// with the OpenTelemetry Go SDK over OTLP (gRPC or HTTP).
//
// Propagation (Propagator): on the way in, W3C wins over B3 single, which
// wins over B3 multi; a header that is present but malformed is ignored
// (the request starts a new trace) and counted by format. On the way out
// every trace header the request carried is removed and replaced by the
// span's: traceparent (and tracestate) always, and B3 in each form the
// request arrived with, so an app that speaks B3 gets B3 back.
//
// Sampling is parent-based: a request whose caller sampled its trace is
// traced, one whose caller decided not to is not, and a new trace is
// sampled with the configured ratio (Config.SamplingPercent, replaced
// while running by Tracer.Configure from the control plane's
// TelemetryPolicy). Unsampled requests still carry their trace id on.
//
// Export never blocks a request: a finished span is handed to a bounded
// queue without waiting; a full queue drops it (counted in
// fedmesh_sidecar_trace_spans_dropped_total{reason="queue_full"}). One
// goroutine sends batches to the collector, each bounded by the export
// timeout; batches it could not deliver are counted with reason
// export_failed.
//
// Span attributes (docs/tracing.md lists them): fedmesh.cluster and
// fedmesh.locality (region/zone) describe the sidecar that recorded the
// span; fedmesh.source_cluster and fedmesh.destination_cluster the two
// ends of the request; on the client span fedmesh.priority,
// fedmesh.destination_locality, server.address and server.port the
// endpoint that answered (a remote cluster's gateway for a cross-cluster
// request). Events "retry" (an attempt failed and another follows) and
// "failover" (an attempt went to another cluster or priority than the
// first) mark what the balancer did.
package tracing
