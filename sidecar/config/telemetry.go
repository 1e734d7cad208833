package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filelogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

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

// This part reads Telemetry from the node's HTTP connection managers
// (docs/xds.md, "Telemetry"): tracing.random_sampling, literal
// tracing.custom_tags and an envoy.access_loggers.file access_log,
// without a filter (every request) or with the errors-only filter
// OR(status_code_filter >= 500, response_flag_filter). Every HCM of a
// node must carry the same; anything else is refused.

// errorStatus is the response code from which the errors-only filter
// logs.
const errorStatus = 500

// maxTags bounds the custom tags of one HCM.
const maxTags = 64

// hcmTel is the telemetry of one HTTP connection manager of a listener:
// filter filter of filter chain chain.
type hcmTel struct {
	chain, filter int
	t             Telemetry
}

// listenerTelemetry reads the telemetry of every HCM of listener l.
func listenerTelemetry(name string, l *listenerv3.Listener) ([]hcmTel, error) {
	var out []hcmTel
	for i, fc := range l.GetFilterChains() {
		for j, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc == nil || !tc.MessageIs(&hcmv3.HttpConnectionManager{}) {
				continue
			}
			var hcm hcmv3.HttpConnectionManager
			if err := tc.UnmarshalTo(&hcm); err != nil {
				return nil, invalid("listener %q: filter chain %d filter %d: %v", name, i, j, err)
			}
			t, err := hcmTelemetry(&hcm)
			if err != nil {
				return nil, invalid("listener %q: filter chain %d filter %d: telemetry: %v", name, i, j, err)
			}
			out = append(out, hcmTel{chain: i, filter: j, t: t})
		}
	}
	return out, nil
}

// nodeTelemetry checks that the HCMs of the outbound and inbound
// listeners (tels, by listener name, read by listenerTelemetry) agree,
// in name order, and returns their telemetry.
func nodeTelemetry(tels map[string][]hcmTel) (Telemetry, error) {
	var (
		out   Telemetry
		first string // the listener out was read from
	)
	for _, name := range sortedKeys(tels) {
		for _, h := range tels[name] {
			if first == "" {
				out, first = h.t, name
				continue
			}
			if !reflect.DeepEqual(h.t, out) {
				return Telemetry{}, invalid("listener %q: filter chain %d filter %d: telemetry differs from listener %q's (every HCM of a node carries the same)", name, h.chain, h.filter, first)
			}
		}
	}
	return out, nil
}

// hcmTelemetry reads one HCM's tracing and access_log.
func hcmTelemetry(hcm *hcmv3.HttpConnectionManager) (Telemetry, error) {
	var t Telemetry
	if tr := hcm.GetTracing(); tr != nil {
		if rs := tr.GetRandomSampling(); rs != nil {
			v := rs.GetValue()
			if math.IsNaN(v) || v < 0 || v > 100 {
				return Telemetry{}, fmt.Errorf("tracing.random_sampling %v is out of range 0-100", v)
			}
			t.SamplingPercent = &v
		}
		if n := len(tr.GetCustomTags()); n > maxTags {
			return Telemetry{}, fmt.Errorf("tracing.custom_tags: %d tags, at most %d", n, maxTags)
		}
		for i, ct := range tr.GetCustomTags() {
			lit := ct.GetLiteral()
			switch {
			case ct.GetTag() == "":
				return Telemetry{}, fmt.Errorf("tracing.custom_tags[%d]: the tag has no name", i)
			case lit == nil:
				return Telemetry{}, fmt.Errorf("tracing.custom_tags[%d] %q: only literal tags are supported", i, ct.GetTag())
			case lit.GetValue() == "":
				return Telemetry{}, fmt.Errorf("tracing.custom_tags[%d] %q: the literal value is empty", i, ct.GetTag())
			}
			if _, dup := t.Tags[ct.GetTag()]; dup {
				return Telemetry{}, fmt.Errorf("tracing.custom_tags[%d] %q: the tag is set twice", i, ct.GetTag())
			}
			if t.Tags == nil {
				t.Tags = map[string]string{}
			}
			t.Tags[ct.GetTag()] = lit.GetValue()
		}
	}
	switch logs := hcm.GetAccessLog(); len(logs) {
	case 0:
	case 1:
		al := logs[0]
		if tc := al.GetTypedConfig(); tc == nil || !tc.MessageIs(&filelogv3.FileAccessLog{}) {
			return Telemetry{}, fmt.Errorf("access_log %q: only envoy.access_loggers.file is supported", al.GetName())
		}
		errorsOnly, err := accessLogFilter(al.GetFilter())
		if err != nil {
			return Telemetry{}, fmt.Errorf("access_log %q: filter: %w", al.GetName(), err)
		}
		t.AccessLog = AccessLogConfig{Enabled: true, ErrorsOnly: errorsOnly}
	default:
		return Telemetry{}, fmt.Errorf("access_log: %d access logs, at most 1", len(logs))
	}
	return t, nil
}

// accessLogFilter reads an access log filter: none (every request) or
// the errors-only OR(status_code_filter >= 500, response_flag_filter
// with no flags listed, any flag).
func accessLogFilter(f *accesslogv3.AccessLogFilter) (errorsOnly bool, err error) {
	if f == nil {
		return false, nil
	}
	or := f.GetOrFilter().GetFilters()
	if len(or) != 2 {
		return false, errors.New("only none or or_filter{status_code_filter >= 500, response_flag_filter} is supported")
	}
	var status, flags bool
	for _, sub := range or {
		switch {
		case sub.GetStatusCodeFilter() != nil:
			c := sub.GetStatusCodeFilter().GetComparison()
			if c.GetOp() != accesslogv3.ComparisonFilter_GE || c.GetValue().GetDefaultValue() != errorStatus {
				return false, fmt.Errorf("status_code_filter: only >= %d is supported", errorStatus)
			}
			status = true
		case sub.GetResponseFlagFilter() != nil:
			if len(sub.GetResponseFlagFilter().GetFlags()) > 0 {
				return false, errors.New("response_flag_filter: only any flag (no flags listed) is supported")
			}
			flags = true
		}
	}
	if !status || !flags {
		return false, errors.New("only none or or_filter{status_code_filter >= 500, response_flag_filter} is supported")
	}
	return true, nil
}
