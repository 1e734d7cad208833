package filesource

import (
	"strings"
	"testing"

	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
)

const (
	meshTelemetry = `apiVersion: fedmesh.io/v1alpha1
kind: TelemetryPolicy
metadata: {name: mesh, namespace: fedmesh-system}
spec:
  tracing: {samplingPercent: 1, customTags: {mesh: fedmesh}}
`
	demoTelemetry = `apiVersion: fedmesh.io/v1alpha1
kind: TelemetryPolicy
metadata: {name: demo, namespace: demo}
spec:
  accessLog: {enabled: true, filter: errors}
`
)

// TestTelemetryPolicies reads TelemetryPolicies as traffic objects,
// counts them by kind, refuses a bad one with its field and keeps the
// last good set.
func TestTelemetryPolicies(t *testing.T) {
	dir := t.TempDir()
	s := newSource(t, dir, nil)
	writeFiles(t, dir, map[string]string{
		"echo.yaml":      docs(echoService, echoExport),
		"telemetry.yaml": docs(meshTelemetry, demoTelemetry),
	})
	exports, problems := s.Load()
	checkProblems(t, nil, problems)
	if len(exports) != 1 {
		t.Fatalf("exports: %d, want 1", len(exports))
	}
	const both = "TelemetryPolicy demo/demo, TelemetryPolicy fedmesh-system/mesh"
	tr, ready, ch := s.Traffic()
	if !ready || trafficKeys(tr) != both {
		t.Fatalf("ready %v, %q; want %q", ready, trafficKeys(tr), both)
	}
	if got := tr.Telemetry[0].Spec.AccessLog; got == nil || !got.Enabled || got.Filter != policy.AccessLogErrors {
		t.Errorf("demo's access log %+v, want errors only", got)
	}
	if got := gaugeValue(t, s.trafficN.WithLabelValues(policy.KindTelemetryPolicy)); got != 2 {
		t.Errorf("fedmesh_source_traffic_objects{kind=TelemetryPolicy} = %v, want 2", got)
	}

	// A sampling share above 100: the file is refused, counted, and
	// the last good set stays.
	writeFiles(t, dir, map[string]string{"telemetry.yaml": docs(strings.Replace(meshTelemetry, "samplingPercent: 1,", "samplingPercent: 150,", 1), demoTelemetry)})
	_, problems = s.Load()
	checkProblems(t, []probe{{File: "telemetry.yaml", Doc: 1, Object: "TelemetryPolicy fedmesh-system/mesh", Reason: source.ReasonInvalid,
		Msg: `spec.tracing.samplingPercent "150": out of range 0-100`}}, problems)
	if got := counterValue(t, s.rejected.WithLabelValues(string(source.ReasonInvalid))); got != 1 {
		t.Errorf("rejected{reason=invalid} = %v, want 1", got)
	}
	if tr, _, _ := s.Traffic(); trafficKeys(tr) != both {
		t.Errorf("after a bad file: %q, want the last good set", trafficKeys(tr))
	}
	if closed(ch) {
		t.Error("the change channel closed though nothing in force changed")
	}

	// Removing one replaces the set and signals.
	writeFiles(t, dir, map[string]string{"telemetry.yaml": docs(demoTelemetry)})
	_, problems = s.Load()
	checkProblems(t, nil, problems)
	if tr, _, _ := s.Traffic(); trafficKeys(tr) != "TelemetryPolicy demo/demo" {
		t.Errorf("after the change: %q", trafficKeys(tr))
	}
	if !closed(ch) {
		t.Error("the change channel is not closed after the set changed")
	}
}
