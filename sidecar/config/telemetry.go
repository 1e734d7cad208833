package config

// Telemetry is what the sidecar records beyond its always-on metrics, as
// the control plane configures it from TelemetryPolicies: the tracing and
// access_log fields of the node's HTTP connection managers (every HCM of
// a node carries the same). The zero value means no policy: the
// sidecar's own flags decide.
type Telemetry struct {
	// SamplingPercent, when set, is the share of new traces the sidecar
	// starts (0-100); a request whose parent was sampled is always
	// traced (parent-based sampling).
	SamplingPercent *float64 `json:"samplingPercent,omitempty"`
	// Tags are extra attributes of every span and access log line, from
	// the HCM tracing custom_tags (literal values).
	Tags map[string]string `json:"tags,omitempty"`
	// AccessLog says whether and which requests are logged.
	AccessLog AccessLogConfig `json:"accessLog"`
}

// AccessLogConfig turns the access log on, for every request or for
// errors only (response code >= 500 or a mesh-made failure).
type AccessLogConfig struct {
	Enabled    bool `json:"enabled"`
	ErrorsOnly bool `json:"errorsOnly,omitempty"`
}
