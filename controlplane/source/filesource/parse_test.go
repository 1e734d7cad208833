package filesource

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fedmesh/fedmesh/controlplane/source"
)

// TestParseFileDocuments checks how documents are split and numbered.
func TestParseFileDocuments(t *testing.T) {
	svc := func(name string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + "}\nspec: {ports: [{port: 80}]}\n"
	}
	tests := []struct {
		name     string
		file     string
		data     string
		wantDocs map[string]int // object name -> document
		wantBad  []int          // documents with problems
	}{
		{"one document", "a.yaml", svc("a"), map[string]int{"a": 1}, nil},
		{"leading separator and comments", "a.yaml", "# header\n---\n" + svc("a") + "---\n" + svc("b"), map[string]int{"a": 1, "b": 2}, nil},
		{"empty documents keep their number", "a.yaml", svc("a") + "---\n---\n# nothing\n---\n" + svc("d"), map[string]int{"a": 1, "d": 4}, nil},
		{"separator with comment", "a.yml", svc("a") + "--- # next\n" + svc("b"), map[string]int{"a": 1, "b": 2}, nil},
		{"content on the separator line", "a.yaml", "--- {apiVersion: v1, kind: Service, metadata: {name: a}, spec: {ports: [{port: 80}]}}\n", map[string]int{"a": 1}, nil},
		{"not a separator", "a.yaml", svc("a") + "----\n", nil, []int{1}},
		{"bad document among good", "a.yaml", svc("a") + "---\n: bad\n---\n" + svc("c"), map[string]int{"a": 1, "c": 3}, []int{2}},
		{"json is one document", "a.json", `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}}`, map[string]int{"a": 1}, nil},
		{"json duplicate field", "a.json", `{"apiVersion": "v1", "kind": "Service", "kind": "Service", "metadata": {"name": "a"}}`, nil, []int{1}},
		{"not an object", "a.yaml", "- 1\n- 2\n", nil, []int{1}},
		{"no kind", "a.yaml", "metadata: {name: a}\n", nil, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ParseFile(tt.file, []byte(tt.data))
			docs := map[string]int{}
			for _, o := range f.Objects {
				docs[o.Ref.Name] = o.Doc
				if o.Ref.Namespace != source.DefaultNamespace {
					t.Errorf("object %s: namespace %q, want the default", o.Ref, o.Ref.Namespace)
				}
			}
			var bad []int
			for _, p := range f.Problems {
				bad = append(bad, p.Doc)
			}
			if diff := cmp.Diff(tt.wantDocs, docs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("documents (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantBad, bad); diff != "" {
				t.Errorf("bad documents (-want +got):\n%s (problems %v)", diff, f.Problems)
			}
			if got, want := f.Bad(), len(tt.wantBad) > 0; got != want {
				t.Errorf("Bad() = %v, want %v", got, want)
			}
		})
	}
}

func TestParseFileTooLarge(t *testing.T) {
	f := ParseFile("big.yaml", make([]byte, MaxFileSize+1))
	if len(f.Problems) != 1 || f.Problems[0].Reason != source.ReasonRead || !f.Bad() {
		t.Errorf("problems = %v, want one read problem", f.Problems)
	}
}
