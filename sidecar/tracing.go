package sidecar

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

// tracerShutdownTimeout bounds the export of the spans still queued when
// the sidecar stops.
const tracerShutdownTimeout = 5 * time.Second

// newTracer builds the sidecar's tracer, filling what tc leaves empty from
// the workload's configuration.
func newTracer(tc tracing.Config, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*tracing.Tracer, error) {
	if tc.ServiceName == "" {
		w := cfg.Workload
		if w == "" {
			w = "sidecar"
		}
		tc.ServiceName = w + "." + cfg.Namespace
	}
	if tc.Namespace == "" {
		tc.Namespace = cfg.Namespace
	}
	if tc.Cluster == "" {
		tc.Cluster = cfg.Cluster
	}
	if tc.Locality == (tracing.Config{}).Locality {
		tc.Locality = cfg.Locality
	}
	if tc.Logger == nil {
		tc.Logger = log
	}
	return tracing.New(tc, reg)
}

// stopTracer exports the spans still queued, within
// tracerShutdownTimeout, once no request can end any more.
func (s *Sidecar) stopTracer() {
	if s.tracer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracerShutdownTimeout)
	defer cancel()
	if err := s.tracer.Shutdown(ctx); err != nil {
		s.log.Warn("spans not exported at shutdown", "err", err)
	}
}
