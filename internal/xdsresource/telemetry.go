package xdsresource

import (
	"sort"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filelogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/structpb"
)

// This file builds the telemetry fields of an HTTP connection manager
// (docs/xds.md, "Telemetry"): tracing (random_sampling, literal
// custom_tags) and one file access log with a JSON format, for errors
// only through an OR of a status code filter and a response flag filter.

// AccessLogPath is where the rendered file access log writes. The
// fedmesh sidecar writes its own lines where its --access-log flag says
// and reads only whether the log is on and its filter.
const AccessLogPath = "/dev/stdout"

// AccessLogErrorStatus is the lowest response code the errors-only
// filter logs, and AccessLogErrorStatusKey the runtime key Envoy may
// override it with.
const (
	AccessLogErrorStatus    = 500
	AccessLogErrorStatusKey = "fedmesh.access_log.error_status"
)

// Telemetry is what every HTTP connection manager of a node records.
// A nil *Telemetry adds nothing.
type Telemetry struct {
	// SamplingPercent, when set, is tracing.random_sampling.
	SamplingPercent *float64
	// Tags are tracing.custom_tags, literal.
	Tags map[string]string
	// AccessLog adds the file access log; ErrorsOnly its filter.
	AccessLog  bool
	ErrorsOnly bool
}

// Reporter says which side of a request an HCM serves, the access log's
// reporter field.
const (
	ReporterSource      = "source"
	ReporterDestination = "destination"
)

// applyTelemetry sets hcm's tracing and access_log from t; reporter is
// ReporterSource (outbound) or ReporterDestination (inbound).
func applyTelemetry(hcm *hcmv3.HttpConnectionManager, t *Telemetry, reporter string) {
	if t == nil {
		return
	}
	if t.SamplingPercent != nil || len(t.Tags) > 0 {
		tr := &hcmv3.HttpConnectionManager_Tracing{}
		if t.SamplingPercent != nil {
			tr.RandomSampling = &typev3.Percent{Value: *t.SamplingPercent}
		}
		names := make([]string, 0, len(t.Tags))
		for k := range t.Tags {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			tr.CustomTags = append(tr.CustomTags, &tracingv3.CustomTag{
				Tag:  k,
				Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: t.Tags[k]}},
			})
		}
		hcm.Tracing = tr
	}
	if t.AccessLog {
		hcm.AccessLog = []*accesslogv3.AccessLog{AccessLog(t.ErrorsOnly, reporter)}
	}
}

// AccessLog is a file access log of one JSON line per request to
// AccessLogPath; errorsOnly keeps responses of AccessLogErrorStatus or
// more and requests with any response flag (a mesh-made failure).
func AccessLog(errorsOnly bool, reporter string) *accesslogv3.AccessLog {
	l := &accesslogv3.AccessLog{
		Name: wellknown.FileAccessLog,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: Any(&filelogv3.FileAccessLog{
			Path: AccessLogPath,
			AccessLogFormat: &filelogv3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: accessLogFormat(reporter)},
			}},
		})},
	}
	if errorsOnly {
		l.Filter = ErrorsOnlyFilter()
	}
	return l
}

// ErrorsOnlyFilter is OR(status_code >= 500, any response flag).
func ErrorsOnlyFilter() *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{
		Filters: []*accesslogv3.AccessLogFilter{
			{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
				Comparison: &accesslogv3.ComparisonFilter{
					Op:    accesslogv3.ComparisonFilter_GE,
					Value: &corev3.RuntimeUInt32{DefaultValue: AccessLogErrorStatus, RuntimeKey: AccessLogErrorStatusKey},
				},
			}}},
			{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{}}},
		},
	}}}
}

// accessLogFormat is the JSON line, in Envoy's command operators, with
// the fields of the fedmesh sidecar's own access log (docs/telemetry.md).
func accessLogFormat(reporter string) *structpb.Struct {
	fields := map[string]string{
		"start_time":       "%START_TIME%",
		"method":           "%REQ(:METHOD)%",
		"authority":        "%REQ(:AUTHORITY)%",
		"path":             "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
		"protocol":         "%PROTOCOL%",
		"response_code":    "%RESPONSE_CODE%",
		"response_flags":   "%RESPONSE_FLAGS%",
		"bytes_received":   "%BYTES_RECEIVED%",
		"bytes_sent":       "%BYTES_SENT%",
		"duration_ms":      "%DURATION%",
		"upstream_cluster": "%UPSTREAM_CLUSTER%",
		"upstream_host":    "%UPSTREAM_HOST%",
		"trace_id":         "%TRACE_ID%",
		"source_principal": "%DOWNSTREAM_PEER_URI_SAN%",
		"source_cluster":   "%FILTER_STATE(io.fedmesh.peer_cluster:PLAIN)%",
		"reporter":         reporter,
	}
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(fields))}
	for k, v := range fields {
		s.Fields[k] = structpb.NewStringValue(v)
	}
	return s
}
