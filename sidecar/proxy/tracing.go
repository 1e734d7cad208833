package proxy

import (
	"net/http"

	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
	"github.com/fedmesh/fedmesh/topology"
)

// The proxy's hooks into sidecar/tracing. With no Config.Tracer they cost
// a nil check.

// traceOutbound opens the CLIENT span of an outbound request to u and
// writes its trace context into r's headers.
func (p *Proxy) traceOutbound(r *http.Request, u *upstream) tracing.Span {
	return p.cfg.Tracer.StartClient(r.Header, r.Method, r.URL.Path, u.name)
}

// traceAttempt records where an attempt of c goes.
func traceAttempt(c *call, h *balancer.Host, svc *config.Service) {
	if !c.span.Recording() {
		return
	}
	ep := h.Endpoint()
	c.span.Attempt(tracing.Endpoint{Address: ep.Address, Cluster: ep.Cluster, Priority: ep.Priority, Locality: localityOf(svc, ep.Address)})
}

// localityOf finds the locality of the endpoint at addr.
func localityOf(svc *config.Service, addr string) topology.Locality {
	for i := range svc.Endpoints {
		if svc.Endpoints[i].Address == addr {
			return svc.Endpoints[i].Locality
		}
	}
	return topology.Locality{}
}

// traceInbound opens the SERVER span of an inbound request to port and
// writes its trace context into r's headers, for the app.
func (p *Proxy) traceInbound(r *http.Request, port config.InboundPort) tracing.Span {
	if p.cfg.Tracer == nil {
		return tracing.Span{}
	}
	sp := p.cfg.Tracer.StartServer(r.Header, r.Method, r.URL.Path, port.Port.String())
	if sp.Recording() {
		id, _ := peerOf(r)
		sp.SetSource(peerInfoOf(r, p).peerCluster(), id.String(), r.RemoteAddr)
	}
	return sp
}

// endSpan ends a request's span with the status the caller got (deferred
// by the handlers).
func endSpan(sp *tracing.Span, rec *statusRecorder) {
	sp.End(rec.status(), rec.Header().Get("X-Fedmesh-Error"))
}

// configureTracing applies the control plane's telemetry configuration
// (TelemetryPolicy) to the tracer.
func (p *Proxy) configureTracing(snap *config.Snapshot) error {
	if p.cfg.Tracer == nil {
		return nil
	}
	return p.cfg.Tracer.Configure(snap.Telemetry.SamplingPercent, snap.Telemetry.Tags)
}
