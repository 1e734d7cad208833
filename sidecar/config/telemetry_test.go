package config_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/config"
)

// telListener is the outbound HTTP listener of sp whose HCM carries tel,
// then mod changes the HCM.
func telListener(t *testing.T, sp naming.ServicePort, tel *xdsresource.Telemetry, mod func(*hcmv3.HttpConnectionManager)) *listenerv3.Listener {
	t.Helper()
	f := xdsresource.HTTPConnectionManagerWithTelemetry(sp.OutboundCluster(), "8080", tel)
	if mod != nil {
		var hcm hcmv3.HttpConnectionManager
		if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
			t.Fatal(err)
		}
		mod(&hcm)
		f = &listenerv3.Filter{Name: f.Name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: xdsresource.Any(&hcm)}}
	}
	return xdsresource.OutboundListener(sp.OutboundCluster(), uint32(sp.Port), f)
}

func TestTelemetryFromHCM(t *testing.T) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	web := naming.ServicePort{Namespace: "demo", Name: "web", Port: 8080}
	pc := 12.5
	full := &xdsresource.Telemetry{SamplingPercent: &pc, Tags: map[string]string{"team": "t", "env": "prod"}, AccessLog: true, ErrorsOnly: true}
	tests := []struct {
		name      string
		listeners []types.Resource
		want      config.Telemetry
		err       string // part of the error naming the listener; "" for none
	}{
		{name: "no telemetry: the zero value", listeners: []types.Resource{telListener(t, echo, nil, nil)}},
		{
			name:      "sampling, tags, errors-only access log on every HCM",
			listeners: []types.Resource{telListener(t, echo, full, nil), telListener(t, web, full, nil)},
			want:      config.Telemetry{SamplingPercent: &pc, Tags: map[string]string{"team": "t", "env": "prod"}, AccessLog: config.AccessLogConfig{Enabled: true, ErrorsOnly: true}},
		},
		{
			name:      "access log for every request",
			listeners: []types.Resource{telListener(t, echo, &xdsresource.Telemetry{AccessLog: true}, nil)},
			want:      config.Telemetry{AccessLog: config.AccessLogConfig{Enabled: true}},
		},
		{
			name:      "HCMs disagree",
			listeners: []types.Resource{telListener(t, echo, full, nil), telListener(t, web, &xdsresource.Telemetry{AccessLog: true}, nil)},
			err:       `listener "outbound|8080||web.demo.svc.clusterset.local": filter chain 0 filter 0: telemetry differs from listener "outbound|8080||echo.demo.svc.clusterset.local"`,
		},
		{
			name:      "one HCM without telemetry",
			listeners: []types.Resource{telListener(t, echo, full, nil), telListener(t, web, nil, nil)},
			err:       "telemetry differs",
		},
		{
			name: "sampling NaN",
			listeners: []types.Resource{telListener(t, echo, nil, func(h *hcmv3.HttpConnectionManager) {
				h.Tracing = &hcmv3.HttpConnectionManager_Tracing{RandomSampling: &typev3.Percent{Value: math.NaN()}}
			})},
			err: `listener "outbound|8080||echo.demo.svc.clusterset.local": filter chain 0 filter 0: telemetry: tracing.random_sampling NaN is out of range 0-100`,
		},
		{
			name: "sampling above 100",
			listeners: []types.Resource{telListener(t, echo, nil, func(h *hcmv3.HttpConnectionManager) {
				h.Tracing = &hcmv3.HttpConnectionManager_Tracing{RandomSampling: &typev3.Percent{Value: 100.5}}
			})},
			err: "random_sampling 100.5 is out of range",
		},
		{
			name: "a tag that is not literal",
			listeners: []types.Resource{telListener(t, echo, nil, func(h *hcmv3.HttpConnectionManager) {
				h.Tracing = &hcmv3.HttpConnectionManager_Tracing{CustomTags: []*tracingv3.CustomTag{{Tag: "user", Type: &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{Name: "x-user"}}}}}
			})},
			err: `tracing.custom_tags[0] "user": only literal tags are supported`,
		},
		{
			name: "a tag twice",
			listeners: []types.Resource{telListener(t, echo, &xdsresource.Telemetry{Tags: map[string]string{"a": "1"}}, func(h *hcmv3.HttpConnectionManager) {
				h.Tracing.CustomTags = append(h.Tracing.CustomTags, h.Tracing.CustomTags[0])
			})},
			err: `tracing.custom_tags[1] "a": the tag is set twice`,
		},
		{
			name: "an empty tag value",
			listeners: []types.Resource{telListener(t, echo, &xdsresource.Telemetry{Tags: map[string]string{"a": "1"}}, func(h *hcmv3.HttpConnectionManager) {
				h.Tracing.CustomTags[0].GetLiteral().Value = ""
			})},
			err: "the literal value is empty",
		},
		{
			name: "two access logs",
			listeners: []types.Resource{telListener(t, echo, &xdsresource.Telemetry{AccessLog: true}, func(h *hcmv3.HttpConnectionManager) {
				h.AccessLog = append(h.AccessLog, h.AccessLog[0])
			})},
			err: "2 access logs, at most 1",
		},
		{
			name: "another access logger",
			listeners: []types.Resource{telListener(t, echo, &xdsresource.Telemetry{AccessLog: true}, func(h *hcmv3.HttpConnectionManager) {
				h.AccessLog[0].Name = "envoy.access_loggers.stdout"
				h.AccessLog[0].ConfigType = &accesslogv3.AccessLog_TypedConfig{TypedConfig: xdsresource.Any(&typev3.Percent{})}
			})},
			err: `access_log "envoy.access_loggers.stdout": only envoy.access_loggers.file is supported`,
		},
		{
			name: "another status threshold",
			listeners: []types.Resource{telListener(t, echo, &xdsresource.Telemetry{AccessLog: true, ErrorsOnly: true}, func(h *hcmv3.HttpConnectionManager) {
				h.AccessLog[0].Filter.GetOrFilter().Filters[0].GetStatusCodeFilter().Comparison.Value.DefaultValue = 400
			})},
			err: "status_code_filter: only >= 500 is supported",
		},
		{
			name: "listed response flags",
			listeners: []types.Resource{telListener(t, echo, &xdsresource.Telemetry{AccessLog: true, ErrorsOnly: true}, func(h *hcmv3.HttpConnectionManager) {
				h.AccessLog[0].Filter.GetOrFilter().Filters[1].GetResponseFlagFilter().Flags = []string{"UH"}
			})},
			err: "response_flag_filter: only any flag",
		},
		{
			name: "another filter",
			listeners: []types.Resource{telListener(t, echo, &xdsresource.Telemetry{AccessLog: true, ErrorsOnly: true}, func(h *hcmv3.HttpConnectionManager) {
				h.AccessLog[0].Filter = h.AccessLog[0].Filter.GetOrFilter().Filters[0]
			})},
			err: "only none or or_filter",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := config.NewBuilder(td)
			snap, err := b.Apply(update(xdsclient.ListenerType, "1", tt.listeners...))
			if tt.err != "" {
				if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v; want ErrInvalid containing %q", err, tt.err)
				}
				if b.Current() != nil && !cmp.Equal(b.Current().Telemetry, config.Telemetry{}) {
					t.Errorf("a refused update changed the telemetry in force: %+v", b.Current().Telemetry)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, snap.Telemetry); diff != "" {
				t.Errorf("telemetry (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTelemetryInbound: the inbound HTTP chains carry the node's
// telemetry too, and must agree with the outbound HCMs.
func TestTelemetryInbound(t *testing.T) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	pc := 1.0
	tel := &xdsresource.Telemetry{SamplingPercent: &pc}
	inbound := func(tel *xdsresource.Telemetry) *listenerv3.Listener {
		return xdsresource.InboundListener("127.0.0.1", 15006, []xdsresource.InboundChain{{SNI: echo.SNI(), Cluster: echo.InboundCluster(), HTTP: true, Telemetry: tel}})
	}
	snap, err := config.NewBuilder(td).Apply(update(xdsclient.ListenerType, "1", telListener(t, echo, tel, nil), inbound(tel)))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Telemetry.SamplingPercent == nil || *snap.Telemetry.SamplingPercent != 1 {
		t.Errorf("sampling %v, want 1", snap.Telemetry.SamplingPercent)
	}
	_, err = config.NewBuilder(td).Apply(update(xdsclient.ListenerType, "1", telListener(t, echo, tel, nil), inbound(nil)))
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), `listener "outbound|8080||echo.demo.svc.clusterset.local"`) {
		t.Errorf("inbound and outbound disagree: %v", err)
	}
}

// TestTelemetryRefusedKeepsLastGood: a refused update leaves the last
// good telemetry in force.
func TestTelemetryRefusedKeepsLastGood(t *testing.T) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	b := config.NewBuilder(td)
	if _, err := b.Apply(update(xdsclient.ListenerType, "1", telListener(t, echo, &xdsresource.Telemetry{AccessLog: true}, nil))); err != nil {
		t.Fatal(err)
	}
	bad := telListener(t, echo, nil, func(h *hcmv3.HttpConnectionManager) {
		h.Tracing = &hcmv3.HttpConnectionManager_Tracing{RandomSampling: &typev3.Percent{Value: -1}}
	})
	if _, err := b.Apply(update(xdsclient.ListenerType, "2", bad)); !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("bad sampling accepted: %v", err)
	}
	if got := b.Current().Telemetry; !got.AccessLog.Enabled {
		t.Errorf("telemetry in force after a refused update: %+v, want the last good one", got)
	}
}

// FuzzTelemetryHCM applies an outbound listener whose HCM is arbitrary
// protobuf: never a panic; an error is ErrInvalid; accepted telemetry
// has a sampling share in 0-100 and tags with names and values.
func FuzzTelemetryHCM(f *testing.F) {
	pc := 50.0
	for _, tel := range []*xdsresource.Telemetry{nil, {SamplingPercent: &pc, Tags: map[string]string{"a": "b"}}, {AccessLog: true}, {AccessLog: true, ErrorsOnly: true}} {
		var hcm hcmv3.HttpConnectionManager
		if err := xdsresource.HTTPConnectionManagerWithTelemetry("outbound|8080||echo.demo.svc.clusterset.local", "8080", tel).GetTypedConfig().UnmarshalTo(&hcm); err != nil {
			f.Fatal(err)
		}
		b, err := proto.Marshal(&hcm)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var hcm hcmv3.HttpConnectionManager
		if proto.Unmarshal(raw, &hcm) != nil {
			return
		}
		fl := &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: xdsresource.Any(&hcm)}}
		l := xdsresource.OutboundListener(echo.OutboundCluster(), 8080, fl)
		snap, err := config.NewBuilder(td).Apply(update(xdsclient.ListenerType, "1", l))
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		tel := snap.Telemetry
		if s := tel.SamplingPercent; s != nil && (math.IsNaN(*s) || *s < 0 || *s > 100) {
			t.Fatalf("sampling %v accepted", *s)
		}
		for k, v := range tel.Tags {
			if k == "" || v == "" {
				t.Fatalf("tag %q=%q accepted", k, v)
			}
		}
		if tel.AccessLog.ErrorsOnly && !tel.AccessLog.Enabled {
			t.Fatal("errors only on a disabled log")
		}
	})
}
