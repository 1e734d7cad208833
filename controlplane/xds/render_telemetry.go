package xds

import (
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// renderTelemetry is the HCM telemetry of a planned Telemetry (nil for
// nil): tracing.random_sampling, literal tracing.custom_tags and the
// file access log, filtered to errors when the plan says so
// (docs/xds.md, "Telemetry").
func renderTelemetry(t *plan.Telemetry) *xdsresource.Telemetry {
	if t == nil {
		return nil
	}
	out := &xdsresource.Telemetry{SamplingPercent: t.SamplingPercent, Tags: t.Tags}
	if t.AccessLog != nil {
		out.AccessLog, out.ErrorsOnly = true, t.AccessLog.ErrorsOnly
	}
	return out
}
