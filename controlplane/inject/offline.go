package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// MaxDocumentBytes bounds one YAML document read by InjectYAML.
const MaxDocumentBytes = 4 << 20

// ErrBadManifest is wrapped by every error about the input of InjectYAML.
var ErrBadManifest = errors.New("bad manifest")

// templatePaths says where each workload kind keeps its pod: the path of
// the pod's metadata and spec (their parent map).
var templatePaths = map[string][]string{
	"Pod":                   nil,
	"Deployment":            {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"ReplicationController": {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
}

// InjectYAML reads Kubernetes manifests (YAML or JSON documents separated
// by ---) from r and writes them to w with the mesh injected into every
// pod and pod template, for `fedmesh inject -f FILE`. Documents of other
// kinds, and pods that opt out, are copied unchanged byte for byte. It
// returns how many pods it injected. A malformed document stops it with an
// error naming the document; what was written before stays written.
func (in *Injector) InjectYAML(r io.Reader, w io.Writer) (int, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReaderSize(r, 64<<10))
	injected := 0
	first := true
	for doc := 1; ; doc++ {
		raw, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return injected, nil
		}
		if err != nil {
			return injected, fmt.Errorf("%w: document %d: %w", ErrBadManifest, doc, err)
		}
		if len(raw) > MaxDocumentBytes {
			return injected, fmt.Errorf("%w: document %d is larger than %d bytes", ErrBadManifest, doc, MaxDocumentBytes)
		}
		out, changed, err := in.injectDocument(raw)
		if err != nil {
			return injected, fmt.Errorf("%w: document %d: %w", ErrBadManifest, doc, err)
		}
		if out == nil {
			continue // empty or comments only
		}
		if changed {
			injected++
		}
		if !first {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return injected, err
			}
		}
		first = false
		if _, err := w.Write(out); err != nil {
			return injected, err
		}
	}
}

// injectDocument returns the document to write (nil for an empty one) and
// whether it injected a pod.
func (in *Injector) injectDocument(raw []byte) ([]byte, bool, error) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, false, err
	}
	if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
		return nil, false, nil
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, false, fmt.Errorf("not an object: %w", err)
	}
	keep := ensureNewline(raw)
	kind, _ := obj["kind"].(string)
	if kind == "" {
		return nil, false, errors.New("no kind")
	}
	path, ok := templatePaths[kind]
	if !ok {
		return keep, false, nil
	}
	holder := obj
	for i, p := range path {
		next, ok := holder[p].(map[string]any)
		if !ok {
			return nil, false, fmt.Errorf("%s has no %s", kind, strings.Join(path[:i+1], "."))
		}
		holder = next
	}
	if _, ok := holder["spec"].(map[string]any); !ok {
		where := strings.Join(append(append([]string(nil), path...), "spec"), ".")
		return nil, false, fmt.Errorf("%s has no pod spec at %s", kind, where)
	}
	var meta metav1.ObjectMeta
	var spec corev1.PodSpec
	if err := fromMap(holder["metadata"], &meta); err != nil {
		return nil, false, fmt.Errorf("%s pod metadata: %w", kind, err)
	}
	if err := fromMap(holder["spec"], &spec); err != nil {
		return nil, false, fmt.Errorf("%s pod spec: %w", kind, err)
	}
	changed, err := in.Inject(&meta, &spec)
	if err != nil {
		return nil, false, fmt.Errorf("%s %s: %w", kind, nameOf(obj), err)
	}
	if !changed {
		return keep, false, nil
	}
	md, _ := holder["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		holder["metadata"] = md
	}
	sp := holder["spec"].(map[string]any)
	for _, f := range []struct {
		m   map[string]any
		key string
		v   any
	}{
		{md, "annotations", meta.Annotations}, {sp, "initContainers", spec.InitContainers},
		{sp, "volumes", spec.Volumes}, {sp, "serviceAccountName", spec.ServiceAccountName},
	} {
		v, err := toPlain(f.v)
		if err != nil {
			return nil, false, err
		}
		f.m[f.key] = v
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

func nameOf(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	return name
}

func ensureNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(b, '\n')
	}
	return b
}

// fromMap decodes a generic map into a typed value, refusing unknown
// fields so that a typo is reported rather than lost.
func fromMap(v any, into any) error {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("is a %T, not an object", v)
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(normalize(m).(map[string]any), into, true)
}

// normalize turns json.Numbers into int64 or float64, as the unstructured
// converter wants.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
		return t
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	return v
}

// toPlain turns a typed value into maps and slices through JSON, which
// honours omitempty.
func toPlain(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(b, &out)
}
