package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestCRDMatchesTypes checks that the CRD's openAPIV3Schema of spec has
// exactly the fields of AuthorizationPolicySpec, at every depth, so that
// the API server and Parse accept the same objects.
func TestCRDMatchesTypes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "deploy", "base", "crds", "fedmesh.io_authorizationpolicies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Group    string `json:"group"`
			Names    struct{ Kind string }
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	if crd.Spec.Group != Group || crd.Spec.Names.Kind != Kind || len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != Version {
		t.Fatalf("CRD is for %s %s %+v", crd.Spec.Group, crd.Spec.Names.Kind, crd.Spec.Versions)
	}
	props := crd.Spec.Versions[0].Schema.OpenAPIV3Schema["properties"].(map[string]any)
	compareSchema(t, "spec", props["spec"].(map[string]any), reflect.TypeFor[AuthorizationPolicySpec]())
}

func compareSchema(t *testing.T, path string, schema map[string]any, typ reflect.Type) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ.Kind() == reflect.Slice {
		if schema["type"] != "array" {
			t.Errorf("%s: schema type %v, want array", path, schema["type"])
			return
		}
		compareSchema(t, path+"[]", schema["items"].(map[string]any), typ.Elem())
		return
	}
	if typ.Kind() != reflect.Struct {
		return // a leaf: string, Action, Port
	}
	props, _ := schema["properties"].(map[string]any)
	var fields []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields = append(fields, name)
		sub, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s.%s: in the Go type, not in the CRD", path, name)
			continue
		}
		compareSchema(t, path+"."+name, sub, f.Type)
	}
	for name := range props {
		if !slices.Contains(fields, name) {
			t.Errorf("%s.%s: in the CRD, not in the Go type", path, name)
		}
	}
}
