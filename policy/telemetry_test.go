package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
)

const goodTelemetry = `apiVersion: fedmesh.io/v1alpha1
kind: TelemetryPolicy
metadata: {name: t, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  tracing:
    samplingPercent: 12.5
    customTags: {team: payments, env.tier: gold}
  accessLog: {enabled: true, filter: errors}
`

func TestParseTelemetryPolicy(t *testing.T) {
	p := mustParse[TelemetryPolicy](t, goodTelemetry)
	want := TelemetrySpec{
		TargetRefs: []TargetRef{{Group: "", Kind: KindService, Name: "echo"}},
		Tracing:    &TelemetryTracing{SamplingPercent: ptr(Percent(12.5)), CustomTags: map[string]string{"team": "payments", "env.tier": "gold"}},
		AccessLog:  &TelemetryAccessLog{Enabled: true, Filter: AccessLogErrors},
	}
	if diff := cmp.Diff(want, p.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if p.Key() != "demo/t" {
		t.Errorf("key %q", p.Key())
	}
	for _, tt := range []struct{ name, doc, msg string }{
		{"unknown field", strings.Replace(goodTelemetry, "samplingPercent", "sampling", 1), `unknown field "spec.tracing.sampling"`},
		{"wrong type", strings.Replace(goodTelemetry, "enabled: true", "enabled: yes please", 1), "enabled"},
		{"tag not a string", strings.Replace(goodTelemetry, "team: payments", "team: {a: b}", 1), "customTags"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseObject([]byte(tt.doc))
			if !errors.Is(err, ErrParseTraffic) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v; want ErrParseTraffic containing %q", err, tt.msg)
			}
		})
	}
}

func TestParseTelemetryDefaultsNamespace(t *testing.T) {
	obj, err := ParseObject([]byte(strings.Replace(goodTelemetry, ", namespace: demo", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if ns := obj.(*TelemetryPolicy).Namespace; ns != DefaultNamespace {
		t.Errorf("namespace %q, want %q", ns, DefaultNamespace)
	}
}

func TestValidateTelemetryPolicy(t *testing.T) {
	tests := []struct {
		name string
		mod  func(p *TelemetryPolicy)
		want []fieldWant
	}{
		{"good", func(p *TelemetryPolicy) {}, nil},
		{"no targetRefs: the whole namespace", func(p *TelemetryPolicy) { p.Spec.TargetRefs = nil }, nil},
		{"only tracing", func(p *TelemetryPolicy) { p.Spec.AccessLog = nil }, nil},
		{"only an access log switched off", func(p *TelemetryPolicy) { p.Spec.Tracing, p.Spec.AccessLog = nil, &TelemetryAccessLog{} }, nil},
		{"empty tracing section", func(p *TelemetryPolicy) { p.Spec.Tracing = &TelemetryTracing{} }, nil},
		{"wrong kind", func(p *TelemetryPolicy) { p.Kind = KindFaultInjection }, []fieldWant{{"kind", "must be TelemetryPolicy"}}},
		{"wrong apiVersion", func(p *TelemetryPolicy) { p.APIVersion = "fedmesh.io/v1" }, []fieldWant{{"apiVersion", "must be fedmesh.io/v1alpha1"}}},
		{"bad name", func(p *TelemetryPolicy) { p.Name = "Bad_Name" }, []fieldWant{{"metadata.name", ""}}},
		{"nothing set", func(p *TelemetryPolicy) { p.Spec.Tracing, p.Spec.AccessLog = nil, nil },
			[]fieldWant{{"spec", "tracing or accessLog (or both) must be set"}}},
		{"sampling above 100", func(p *TelemetryPolicy) { p.Spec.Tracing.SamplingPercent = ptr(Percent(100.5)) },
			[]fieldWant{{"spec.tracing.samplingPercent", "out of range 0-100"}}},
		{"sampling negative", func(p *TelemetryPolicy) { p.Spec.Tracing.SamplingPercent = ptr(Percent(-1)) },
			[]fieldWant{{"spec.tracing.samplingPercent", "out of range 0-100"}}},
		{"sampling resolution", func(p *TelemetryPolicy) { p.Spec.Tracing.SamplingPercent = ptr(Percent(0.00001)) },
			[]fieldWant{{"spec.tracing.samplingPercent", "at most 4 decimals"}}},
		{"sampling zero", func(p *TelemetryPolicy) { p.Spec.Tracing.SamplingPercent = ptr(Percent(0)) }, nil},
		{"bad filter", func(p *TelemetryPolicy) { p.Spec.AccessLog.Filter = "Errors" },
			[]fieldWant{{"spec.accessLog.filter", "must be all or errors"}}},
		{"filter all", func(p *TelemetryPolicy) { p.Spec.AccessLog.Filter = AccessLogAll }, nil},
		{"targetRef kind", func(p *TelemetryPolicy) {
			p.Spec.TargetRefs = []TargetRef{{Group: MCSGroup, Kind: KindServiceImport, Name: "echo"}}
		}, []fieldWant{{"spec.targetRefs[0].kind", "must be Service"}}},
		{"targetRef group", func(p *TelemetryPolicy) { p.Spec.TargetRefs[0].Group = "apps" },
			[]fieldWant{{"spec.targetRefs[0].group", `must be ""`}}},
		{"targetRef name", func(p *TelemetryPolicy) { p.Spec.TargetRefs[0].Name = "Echo" },
			[]fieldWant{{"spec.targetRefs[0].name", ""}}},
		{"targetRef twice", func(p *TelemetryPolicy) { p.Spec.TargetRefs = append(p.Spec.TargetRefs, p.Spec.TargetRefs[0]) },
			[]fieldWant{{"spec.targetRefs[1]", "the same target as targetRefs[0]"}}},
		{"17 targetRefs", func(p *TelemetryPolicy) {
			p.Spec.TargetRefs = nil
			for i := range 17 {
				p.Spec.TargetRefs = append(p.Spec.TargetRefs, TargetRef{Kind: KindService, Name: fmt.Sprintf("s%d", i)})
			}
		}, []fieldWant{{"spec.targetRefs", "17 targetRefs, at most 16"}}},
		{"tag names", func(p *TelemetryPolicy) {
			p.Spec.Tracing.CustomTags = map[string]string{"": "x", "1st": "x", "a b": "x", "fedmesh.cluster": "x", strings.Repeat("a", 129): "x", "ok_1/x-y.z": "fine"}
		}, []fieldWant{
			{"spec.tracing.customTags", "must start with a letter or _"},
			{"spec.tracing.customTags", "must start with a letter or _"},
			{"spec.tracing.customTags", "must start with a letter or _"},
			{"spec.tracing.customTags", "longer than 128"},
			{"spec.tracing.customTags", "are the sidecar's own"},
		}},
		{"tag values", func(p *TelemetryPolicy) {
			p.Spec.Tracing.CustomTags = map[string]string{"a": strings.Repeat("v", 257), "b": "x\ny", "c": "\xff", "d": ""}
		}, []fieldWant{
			{"spec.tracing.customTags[a]", "longer than 256 bytes"},
			{"spec.tracing.customTags[b]", "control character"},
			{"spec.tracing.customTags[c]", "not valid UTF-8"},
			{"spec.tracing.customTags[d]", "must not be empty"},
		}},
		{"33 tags", func(p *TelemetryPolicy) {
			for i := range 31 {
				p.Spec.Tracing.CustomTags[fmt.Sprintf("t%d", i)] = "v"
			}
		}, []fieldWant{{"spec.tracing.customTags", "33 tags, at most 32"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse[TelemetryPolicy](t, goodTelemetry)
			tt.mod(p)
			object := "TelemetryPolicy demo/" + p.Name
			checkFields(t, object, ValidateObject(p), tt.want)
		})
	}
}

// TestTelemetryIsNeverProducerPolicy: ProducerOf leaves TelemetryPolicies
// out, EncodePolicies drops them, and DecodePolicies refuses one.
func TestTelemetryIsNeverProducerPolicy(t *testing.T) {
	var tr Traffic
	for _, doc := range []string{goodTelemetry, goodResilience} {
		obj, err := ParseObject([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	if len(tr.Telemetry) != 1 || tr.Empty() {
		t.Fatalf("Add: %d telemetry policies, empty %v", len(tr.Telemetry), tr.Empty())
	}
	if p := ProducerOf(&tr, "demo", "echo"); len(p.Telemetry) != 0 || len(p.Resilience) != 1 {
		t.Errorf("ProducerOf = %d telemetry, %d resilience policies; want 0, 1", len(p.Telemetry), len(p.Resilience))
	}
	enc, err := EncodePolicies(tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc.Objects) != 1 || strings.Contains(string(enc.Objects[0]), KindTelemetryPolicy) {
		t.Errorf("EncodePolicies kept a TelemetryPolicy: %s", enc.Objects)
	}
	if enc, err := EncodePolicies(Traffic{Telemetry: tr.Telemetry}); enc != nil || err != nil {
		t.Errorf("EncodePolicies of telemetry only = %v, %v; want nil, nil", enc, err)
	}
	_, err = DecodePolicies(&catalog.Policies{Objects: []json.RawMessage{toJSON(t, []byte(goodTelemetry))}})
	if !errors.Is(err, ErrParseTraffic) || !strings.Contains(err.Error(), "local to its cluster") {
		t.Errorf("DecodePolicies of a TelemetryPolicy: %v; want a refusal", err)
	}
	// Without keeps the telemetry policies.
	if w := tr.Without([]RefProblem{{Kind: KindHTTPRoute, Namespace: "demo", Name: "x"}}); len(w.Telemetry) != 1 {
		t.Errorf("Without dropped the telemetry policies")
	}
}
