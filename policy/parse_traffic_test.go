package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/catalog"
)

func TestParseObject(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr error  // nil: parses
		msg     string // part of the error
	}{
		{"YAML", goodHTTPRoute, nil, ""},
		{"JSON", `{"apiVersion":"fedmesh.io/v1alpha1","kind":"FaultInjection","metadata":{"name":"f"},"spec":{"abort":{"grpcStatus":14,"percentage":50}}}`, nil, ""},
		{"unknown field", strings.Replace(goodFault, "delay:", "dela:", 1), ErrParseTraffic, `unknown field "spec.dela"`},
		{"repeated field", goodFault + "  delay: {fixed: 1s, percentage: 1}\n", ErrParseTraffic, "already set"},
		{"wrong type", strings.Replace(goodFault, "httpStatus: 503", "httpStatus: five", 1), ErrParseTraffic, "httpStatus"},
		{"unknown kind", "apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\n", ErrUnknownKind, "TCPRoute"},
		{"wrong version", strings.Replace(goodHTTPRoute, "gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1", 1), ErrUnknownKind, "v1beta1"},
		{"not an object", "- a\n- b\n", ErrParseTraffic, "not an object"},
		{"too large", strings.Repeat("#", MaxDocumentSize+1), ErrParseTraffic, "at most"},
		{"invalid", strings.Replace(goodFault, "httpStatus: 503", "httpStatus: 600", 1), catalog.ErrInvalid, `FaultInjection demo/f: spec.abort.httpStatus "600": out of range 200-599`},
		{"the old retry field on", strings.Replace(goodResilience, "retryOn:", `"on":`, 1), ErrParseTraffic, `unknown field "spec.retry.on"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := ParseObject([]byte(tt.doc))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if err := ValidateObject(obj); err != nil {
					t.Errorf("parsed object does not validate: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v; want one wrapping %v and containing %q", err, tt.wantErr, tt.msg)
			}
		})
	}
}

func TestParseObjectDefaultsNamespace(t *testing.T) {
	obj, err := ParseObject([]byte(strings.Replace(goodGRPCRoute, "namespace: demo", "labels: {a: b}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if ns := obj.(*gatewayv1.GRPCRoute).Namespace; ns != DefaultNamespace {
		t.Errorf("namespace %q, want %q", ns, DefaultNamespace)
	}
}

// exampleDocs returns the documents of examples/traffic.
func exampleDocs(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "examples", "traffic", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	docs := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range strings.Split(string(data), "\n---\n") {
			docs[filepath.Base(f)+"#"+string(rune('1'+i))] = []byte(d)
		}
	}
	return docs
}

// TestExamples parses every document of examples/traffic: each is valid,
// together they resolve, and they hold all four kinds.
func TestExamples(t *testing.T) {
	var tr Traffic
	for name, doc := range exampleDocs(t) {
		obj, err := ParseObject(doc)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := tr.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	if len(tr.HTTPRoutes) != 3 || len(tr.GRPCRoutes) != 1 || len(tr.Resilience) != 1 || len(tr.Faults) != 1 {
		t.Errorf("examples hold %d HTTPRoutes, %d GRPCRoutes, %d ResiliencePolicies, %d FaultInjections; want 3, 1, 1, 1",
			len(tr.HTTPRoutes), len(tr.GRPCRoutes), len(tr.Resilience), len(tr.Faults))
	}
	if p := tr.Resolve(); len(p) != 0 {
		t.Errorf("examples do not resolve: %v", p)
	}
	SortTraffic(&tr)
	canary := tr.HTTPRoutes[1] // echo-ab, echo-canary, echo-chaos
	if canary.Name != "echo-canary" || len(canary.Spec.Rules) != 1 || len(canary.Spec.Rules[0].BackendRefs) != 2 {
		t.Fatalf("first route %s, want the canary with two backends", canary.Name)
	}
	for i, want := range []struct {
		name   string
		weight int32
	}{{"echo", 90}, {"echo-v2", 10}} {
		b := canary.Spec.Rules[0].BackendRefs[i]
		if string(b.Name) != want.name || *b.Weight != want.weight || *b.Kind != KindServiceImport {
			t.Errorf("canary backend %d: %s weight %d kind %s; want ServiceImport %s weight %d", i, b.Name, *b.Weight, *b.Kind, want.name, want.weight)
		}
	}
	// The producer part of echo: the three HTTPRoutes, the policy and
	// the fault the chaos route uses; not the greeter's GRPCRoute.
	p := ProducerOf(&tr, "demo", "echo")
	if len(p.HTTPRoutes) != 3 || len(p.GRPCRoutes) != 0 || len(p.Resilience) != 1 || len(p.Faults) != 1 {
		t.Errorf("ProducerOf(demo/echo) = %d, %d, %d, %d objects; want 3, 0, 1, 1", len(p.HTTPRoutes), len(p.GRPCRoutes), len(p.Resilience), len(p.Faults))
	}
}

// toJSON converts a YAML seed to JSON, for the fuzzers' JSON seeds.
func toJSON(t testing.TB, doc []byte) []byte {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
