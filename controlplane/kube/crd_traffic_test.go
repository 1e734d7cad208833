package kube

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/policy"
)

// TestTrafficCRDsMatchTypes checks that the openAPIV3Schema of spec in
// deploy/'s ResiliencePolicy and FaultInjection CRDs has exactly the
// fields of the Go types, at every depth, so that the API server keeps
// (and does not prune) every field policy.ParseObject reads, and accepts
// no field it would refuse as unknown.
func TestTrafficCRDsMatchTypes(t *testing.T) {
	for _, tc := range []struct {
		file, kind string
		spec       reflect.Type
	}{
		{"fedmesh.io_resiliencepolicies.yaml", policy.KindResiliencePolicy, reflect.TypeFor[policy.ResilienceSpec]()},
		{"fedmesh.io_faultinjections.yaml", policy.KindFaultInjection, reflect.TypeFor[policy.FaultInjectionSpec]()},
		{"fedmesh.io_telemetrypolicies.yaml", policy.KindTelemetryPolicy, reflect.TypeFor[policy.TelemetrySpec]()},
		{"fedmesh.io_ratelimitpolicies.yaml", policy.KindRateLimitPolicy, reflect.TypeFor[policy.RateLimitSpec]()},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "base", "crds", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var crd struct {
				Spec struct {
					Group    string `json:"group"`
					Names    struct{ Kind string }
					Versions []crdVersion `json:"versions"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(data, &crd); err != nil {
				t.Fatal(err)
			}
			if crd.Spec.Group != policy.Group || crd.Spec.Names.Kind != tc.kind || len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != policy.Version {
				t.Fatalf("CRD is for %s %s %+v", crd.Spec.Group, crd.Spec.Names.Kind, crd.Spec.Versions)
			}
			v := crd.Spec.Versions[0]
			if _, ok := v.Subresources["status"]; !ok {
				t.Error("the CRD has no status subresource")
			}
			props := v.Schema.OpenAPIV3Schema["properties"].(map[string]any)
			compareTrafficSchema(t, "spec", props["spec"].(map[string]any), tc.spec)
		})
	}
}

type crdVersion struct {
	Name         string         `json:"name"`
	Subresources map[string]any `json:"subresources"`
	Schema       struct {
		OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
	} `json:"schema"`
}

var jsonMarshaler = reflect.TypeFor[json.Marshaler]()

func compareTrafficSchema(t *testing.T, path string, schema map[string]any, typ reflect.Type) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ.Kind() == reflect.Slice {
		if schema["type"] != "array" {
			t.Errorf("%s: schema type %v, want array", path, schema["type"])
			return
		}
		compareTrafficSchema(t, path+"[]", schema["items"].(map[string]any), typ.Elem())
		return
	}
	if typ.Kind() == reflect.Map {
		if schema["type"] != "object" {
			t.Errorf("%s: schema type %v, want object (a map)", path, schema["type"])
			return
		}
		ap, ok := schema["additionalProperties"].(map[string]any)
		if !ok {
			t.Errorf("%s: a map without additionalProperties", path)
			return
		}
		compareTrafficSchema(t, path+"{}", ap, typ.Elem())
		return
	}
	if typ == reflect.TypeFor[policy.Port]() {
		// A port reads from a number or a string of one, as Istio
		// writes ports.
		if schema["x-kubernetes-int-or-string"] != true {
			t.Errorf("%s: a port without x-kubernetes-int-or-string", path)
		}
		return
	}
	want := ""
	switch {
	case typ.Implements(jsonMarshaler) || reflect.PointerTo(typ).Implements(jsonMarshaler):
		want = "string" // metav1.Duration
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() == reflect.Bool:
		want = "boolean"
	case typ.Kind() == reflect.Int32 || typ.Kind() == reflect.Int64:
		want = "integer"
	case typ.Kind() == reflect.Float64:
		want = "number"
	case typ.Kind() == reflect.Struct:
		want = "object"
	}
	if schema["type"] != want {
		t.Errorf("%s: schema type %v, want %s (Go %s)", path, schema["type"], want, typ)
	}
	if want != "object" {
		return
	}
	props, _ := schema["properties"].(map[string]any)
	var fields []string
	for f := range inlineFields(typ) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields = append(fields, name)
		sub, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s.%s: in the Go type, not in the CRD", path, name)
			continue
		}
		compareTrafficSchema(t, path+"."+name, sub, f.Type)
	}
	for name := range props {
		if !slices.Contains(fields, name) {
			t.Errorf("%s.%s: in the CRD, not in the Go type", path, name)
		}
	}
}

// inlineFields are typ's fields, those of embedded structs tagged
// `json:",inline"` in their place.
func inlineFields(typ reflect.Type) func(yield func(reflect.StructField) bool) {
	return func(yield func(reflect.StructField) bool) {
		for f := range typ.Fields() {
			if f.Anonymous && f.Tag.Get("json") == ",inline" {
				for g := range inlineFields(f.Type) {
					if !yield(g) {
						return
					}
				}
				continue
			}
			if !yield(f) {
				return
			}
		}
	}
}
