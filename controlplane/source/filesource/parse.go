package filesource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsjson "sigs.k8s.io/json"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
)

// Limits on one file, so that a runaway file cannot stall the source.
const (
	// MaxFileSize is the largest file read; larger files are rejected.
	MaxFileSize = 4 << 20
	// MaxDocuments is the most documents one file may hold.
	MaxDocuments = 10000
)

// Object is one object read from a file.
type Object struct {
	// Doc is the 1-based position of the object's document in the file.
	Doc int
	// Ref names the object.
	Ref source.ObjectRef
	// Value is a *corev1.Service, *discoveryv1.EndpointSlice,
	// *mcsv1alpha1.ServiceExport, *source.Workload,
	// *policy.AuthorizationPolicy, or a traffic object
	// (*gatewayv1.HTTPRoute, *gatewayv1.GRPCRoute,
	// *policy.ResiliencePolicy, *policy.FaultInjection), decoded and
	// valid.
	Value any
}

// File is what ParseFile read from one file: its good objects in document
// order, and its problems.
type File struct {
	Name     string
	Objects  []Object
	Problems []source.Problem
}

// Bad reports whether the file is rejected as a whole: it has a problem
// other than an unknown kind. The source then keeps using the objects of
// the file's last good version.
func (f *File) Bad() bool {
	for _, p := range f.Problems {
		if p.Reason != source.ReasonUnknownKind {
			return true
		}
	}
	return false
}

// kind is the apiVersion and kind of a document.
type kind struct{ apiVersion, kind string }

var (
	kindService       = kind{"v1", "Service"}
	kindEndpointSlice = kind{discoveryv1.SchemeGroupVersion.String(), "EndpointSlice"}
	kindServiceExport = kind{mcsv1alpha1.SchemeGroupVersion.String(), "ServiceExport"}
	kindWorkload      = kind{source.WorkloadAPIVersion, source.WorkloadKind}
	kindAuthzPolicy   = kind{policy.APIVersion, policy.Kind}
	kindHTTPRoute     = kind{policy.GatewayAPIVersion, policy.KindHTTPRoute}
	kindGRPCRoute     = kind{policy.GatewayAPIVersion, policy.KindGRPCRoute}
	kindResilience    = kind{policy.APIVersion, policy.KindResiliencePolicy}
	kindFault         = kind{policy.APIVersion, policy.KindFaultInjection}
	kindTelemetry     = kind{policy.APIVersion, policy.KindTelemetryPolicy}
	kindRateLimit     = kind{policy.APIVersion, policy.KindRateLimitPolicy}
)

// known maps each kind the source reads to a constructor of its object.
var known = map[kind]func() any{
	kindService:       func() any { return new(corev1.Service) },
	kindEndpointSlice: func() any { return new(discoveryv1.EndpointSlice) },
	kindServiceExport: func() any { return new(mcsv1alpha1.ServiceExport) },
	kindWorkload:      func() any { return new(source.Workload) },
	kindAuthzPolicy:   func() any { return new(policy.AuthorizationPolicy) },
	kindHTTPRoute:     func() any { return new(gatewayv1.HTTPRoute) },
	kindGRPCRoute:     func() any { return new(gatewayv1.GRPCRoute) },
	kindResilience:    func() any { return new(policy.ResiliencePolicy) },
	kindFault:         func() any { return new(policy.FaultInjection) },
	kindTelemetry:     func() any { return new(policy.TelemetryPolicy) },
	kindRateLimit:     func() any { return new(policy.RateLimitPolicy) },
}

// ignored kinds are accepted without a problem and without effect, so that
// a directory written for kubectl can be used as it is.
var ignored = map[kind]bool{
	{"v1", "Namespace"}:      true,
	{"v1", "ServiceAccount"}: true,
}

// Errors wrapped by problems, for errors.Is.
var (
	ErrTooLarge    = errors.New("file too large")
	ErrNotObject   = errors.New("document is not an object")
	ErrMissingKind = errors.New("apiVersion and kind must be set")
)

// ParseFile decodes the objects of one file named name (only its extension
// is used: .json files hold one document, others may hold several separated
// by "---" lines). It is pure: it touches no file and no state. Every
// problem it returns names the file.
func ParseFile(name string, data []byte) *File {
	f := &File{Name: name}
	if len(data) > MaxFileSize {
		f.Problems = append(f.Problems, source.Problem{File: name, Reason: source.ReasonRead,
			Err: fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxFileSize)})
		return f
	}
	var docs [][]byte
	if strings.EqualFold(filepath.Ext(name), ".json") {
		docs = [][]byte{data}
	} else {
		docs = splitDocuments(data)
	}
	if len(docs) > MaxDocuments {
		f.Problems = append(f.Problems, source.Problem{File: name, Reason: source.ReasonParse,
			Err: fmt.Errorf("%d documents, at most %d", len(docs), MaxDocuments)})
		return f
	}
	for i, doc := range docs {
		obj, p := parseDocument(doc)
		if p != nil {
			p.File, p.Doc = name, i+1
			f.Problems = append(f.Problems, *p)
			continue
		}
		if obj != nil {
			obj.Doc = i + 1
			f.Objects = append(f.Objects, *obj)
		}
	}
	return f
}

// splitDocuments splits a YAML stream at its "---" lines. Text after "---"
// on the same line belongs to the next document, as in YAML. Text before the
// first separator that holds only blanks and comments is not a document, so
// that "document 1" is the first one a reader sees.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	start := 0
	for start < len(data) {
		end := bytes.IndexByte(data[start:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += start + 1
		}
		line := data[start:end]
		start = end
		if rest, ok := bytes.CutPrefix(line, []byte("---")); ok && (len(bytes.TrimSpace(rest)) == 0 || rest[0] == ' ' || rest[0] == '\t') {
			docs = append(docs, cur)
			cur = append([]byte(nil), rest...)
			continue
		}
		cur = append(cur, line...)
	}
	docs = append(docs, cur)
	if len(docs) > 1 && blank(docs[0]) {
		docs = docs[1:]
	}
	return docs
}

// blank reports whether a YAML text holds only whitespace and comments.
func blank(y []byte) bool {
	for line := range bytes.Lines(y) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

// head is the part of every object read before its kind is known, leniently,
// to name the object in problems.
type head struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// parseDocument decodes one document. It returns nil, nil for an empty
// document or a kind that is ignored.
func parseDocument(doc []byte) (*Object, *source.Problem) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, &source.Problem{Reason: source.ReasonParse, Err: err}
	}
	j = bytes.TrimSpace(j)
	if len(j) == 0 || bytes.Equal(j, []byte("null")) {
		return nil, nil
	}
	if j[0] != '{' {
		return nil, &source.Problem{Reason: source.ReasonParse, Err: ErrNotObject}
	}
	var h head
	_ = json.Unmarshal(j, &h) // lenient: only to name the object
	ns := h.Metadata.Namespace
	if ns == "" {
		ns = source.DefaultNamespace
	}
	ref := source.ObjectRef{Kind: h.Kind, Namespace: ns, Name: h.Metadata.Name}
	if h.Kind == "" || h.APIVersion == "" {
		return nil, &source.Problem{Object: ref.String(), Reason: source.ReasonParse, Err: ErrMissingKind}
	}
	k := kind{h.APIVersion, h.Kind}
	if ignored[k] {
		return nil, nil
	}
	newObj, ok := known[k]
	if !ok {
		return nil, &source.Problem{Object: ref.String(), Reason: source.ReasonUnknownKind, Err: unknownKind(k)}
	}
	obj := newObj()
	strict, err := sigsjson.UnmarshalStrict(j, obj)
	if err == nil && len(strict) > 0 {
		err = errors.Join(strict...)
	}
	if err != nil {
		return nil, &source.Problem{Object: ref.String(), Reason: source.ReasonParse, Err: err}
	}
	var verr error
	switch v := obj.(type) {
	case *corev1.Service:
		v.Namespace = ns
		verr = source.ValidateService(v)
	case *discoveryv1.EndpointSlice:
		v.Namespace = ns
		verr = source.ValidateEndpointSlice(v)
	case *mcsv1alpha1.ServiceExport:
		v.Namespace = ns
		verr = source.ValidateServiceExport(v)
	case *source.Workload:
		v.Namespace = ns
		verr = source.ValidateWorkload(v)
	case *policy.AuthorizationPolicy:
		v.Namespace = ns
		verr = policy.Validate(v)
	case *gatewayv1.HTTPRoute:
		v.Namespace = ns
		verr = policy.ValidateObject(v)
	case *gatewayv1.GRPCRoute:
		v.Namespace = ns
		verr = policy.ValidateObject(v)
	case *policy.ResiliencePolicy:
		v.Namespace = ns
		verr = policy.ValidateObject(v)
	case *policy.FaultInjection:
		v.Namespace = ns
		verr = policy.ValidateObject(v)
	case *policy.TelemetryPolicy:
		v.Namespace = ns
		verr = policy.ValidateObject(v)
	case *policy.RateLimitPolicy:
		v.Namespace = ns
		verr = policy.ValidateObject(v)
	}
	if verr != nil {
		return nil, &source.Problem{Object: ref.String(), Reason: source.ReasonInvalid, Err: verr}
	}
	return &Object{Ref: ref, Value: obj}, nil
}

func unknownKind(k kind) error {
	for kk := range known {
		if kk.kind == k.kind {
			return fmt.Errorf("apiVersion %q of kind %s is not supported (want %s)", k.apiVersion, k.kind, kk.apiVersion)
		}
	}
	return fmt.Errorf("kind %s (apiVersion %q) is not one this source reads (Service, EndpointSlice, ServiceExport, Workload, AuthorizationPolicy, HTTPRoute, GRPCRoute, ResiliencePolicy, FaultInjection, TelemetryPolicy, RateLimitPolicy)", k.kind, k.apiVersion)
}
