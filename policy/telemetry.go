package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KindTelemetryPolicy is the kind of TelemetryPolicy.
const KindTelemetryPolicy = "TelemetryPolicy"

// TelemetryPolicy (fedmesh.io/v1alpha1) says what the sidecars of a
// namespace record beyond their always-on metrics: the share of traces
// they start, extra span and log tags, and the access log. A policy in
// RootNamespace applies to the whole mesh; one in a workload's own
// namespace overrides it field by field; one whose targetRefs name a
// Service the workload serves overrides both. Policies are local to
// their cluster: they never travel with an export.
type TelemetryPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TelemetrySpec `json:"spec"`
}

// Key returns "NAMESPACE/NAME".
func (p *TelemetryPolicy) Key() string { return p.Namespace + "/" + p.Name }

// TelemetrySpec is the body of a TelemetryPolicy. What is unset is
// inherited from the less specific policy, or is the sidecar's default.
type TelemetrySpec struct {
	// TargetRefs name Services ("" group, kind Service) of the policy's
	// namespace: the policy applies to the sidecars of the workloads
	// whose endpoints serve them. Empty: every workload of the
	// namespace, or of the mesh for a policy in RootNamespace.
	TargetRefs []TargetRef `json:"targetRefs,omitempty"`
	// Tracing sets the sampling of new traces and extra span tags.
	Tracing *TelemetryTracing `json:"tracing,omitempty"`
	// AccessLog turns the access log on or off, for every request or
	// for errors only.
	AccessLog *TelemetryAccessLog `json:"accessLog,omitempty"`
}

// TelemetryTracing configures tracing.
type TelemetryTracing struct {
	// SamplingPercent is the share of new traces started (0-100, up to
	// 4 decimals); a request whose caller sampled it is always traced.
	SamplingPercent *Percent `json:"samplingPercent,omitempty"`
	// CustomTags are literal attributes added to every span and access
	// log line, by name; a more specific policy overrides a tag of the
	// same name.
	CustomTags map[string]string `json:"customTags,omitempty"`
}

// AccessLogFilter selects the requests an access log records.
type AccessLogFilter string

// Access log filters.
const (
	// AccessLogAll records every request (the default).
	AccessLogAll AccessLogFilter = "all"
	// AccessLogErrors records requests answered with a status of 500 or
	// more, or failed by the mesh (a response flag such as UH, UO, URX,
	// RL, FI, UT, UR, UC, NR).
	AccessLogErrors AccessLogFilter = "errors"
)

// TelemetryAccessLog configures the access log.
type TelemetryAccessLog struct {
	// Enabled turns the log on; false turns it off, also over a less
	// specific policy that turned it on.
	Enabled bool `json:"enabled"`
	// Filter is "all" (the default when empty) or "errors".
	Filter AccessLogFilter `json:"filter,omitempty"`
}
