package source

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/policy"
)

// Source produces the exports of the local cluster. It is the contract the
// control plane consumes; the file source and the Kubernetes source both
// implement it.
//
// Run reads the cluster and calls update with the complete, current set of
// exports: once after the initial read (even if some objects were rejected,
// and even if the set is empty), then again whenever the set changes. Each
// call passes a new slice, sorted by namespace/name, in which every Export
// is Sort()ed and passes Validate(); the callee owns it. update is called
// from Run's goroutine, one call at a time, and must not block for long.
// Run returns when ctx is done (with nil) or when the source cannot go on
// (with an error).
type Source interface {
	Run(ctx context.Context, update func([]catalog.Export)) error
}

// Reason classifies a rejected file or object. It is the reason label of
// the fedmesh_source_rejected_total counter.
type Reason string

// Reasons a file or object is rejected.
const (
	// ReasonRead: the file could not be read (I/O error, too large).
	ReasonRead Reason = "read"
	// ReasonParse: the YAML or JSON is malformed, a field is unknown,
	// repeated or of the wrong type, or kind/apiVersion are missing.
	ReasonParse Reason = "parse"
	// ReasonUnknownKind: the kind (or its apiVersion) is not one the
	// source reads. The object is skipped; the rest of the file is used.
	ReasonUnknownKind Reason = "unknown_kind"
	// ReasonInvalid: the object decoded but a field value is wrong.
	ReasonInvalid Reason = "invalid"
	// ReasonDuplicate: the same kind, namespace and name appeared before;
	// the first one is kept.
	ReasonDuplicate Reason = "duplicate"
	// ReasonUnmatched: the object refers to something that is not there,
	// such as a ServiceExport without a Service, or an EndpointSlice port
	// that names no port of its Service.
	ReasonUnmatched Reason = "unmatched"
)

// Reasons lists every Reason, for pre-initialising counters.
var Reasons = []Reason{ReasonRead, ReasonParse, ReasonUnknownKind, ReasonInvalid, ReasonDuplicate, ReasonUnmatched}

// ObjectRef names one object of the cluster.
type ObjectRef struct {
	Kind      string
	Namespace string
	Name      string
}

// String renders the reference as "Kind namespace/name".
func (r ObjectRef) String() string {
	switch {
	case r.Name == "":
		return r.Kind
	case r.Namespace == "":
		return strings.TrimSpace(r.Kind + " " + r.Name)
	}
	return strings.TrimSpace(r.Kind + " " + r.Namespace + "/" + r.Name)
}

// Problem is one rejected file or object: where it is, what it is, and why
// it was rejected. Problems are values; a source recomputes its list when
// its input changes.
type Problem struct {
	// File is the file's name within the source directory; empty for
	// objects that do not come from a file.
	File string
	// Doc is the 1-based position of the document within the file; 0
	// when the problem concerns the whole file.
	Doc int
	// Object names the object ("Service demo/echo"); empty when it could
	// not be read.
	Object string
	// Reason classifies the problem.
	Reason Reason
	// Err says what is wrong. A *catalog.ValidationError when Reason is
	// ReasonInvalid and a field is wrong.
	Err error
}

// Error renders the problem as "FILE: document N: OBJECT: REASON: ERR",
// leaving out the parts that are empty.
func (p Problem) Error() string {
	var b strings.Builder
	add := func(s string) {
		if s == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(s)
	}
	add(p.File)
	if p.Doc > 0 {
		add("document " + strconv.Itoa(p.Doc))
	}
	add(p.Object)
	add(string(p.Reason))
	if p.Err != nil {
		// Validation errors name their object too; say it once.
		msg := p.Err.Error()
		if pre := p.Object + ": "; p.Object != "" && len(msg) > len(pre) && strings.EqualFold(msg[:len(pre)], pre) {
			msg = msg[len(pre):]
		}
		add(msg)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (p Problem) Unwrap() error { return p.Err }

// MarshalJSON renders the problem for status pages, with Err as a message.
func (p Problem) MarshalJSON() ([]byte, error) {
	msg := ""
	if p.Err != nil {
		msg = p.Err.Error()
	}
	return json.Marshal(struct {
		File    string `json:"file,omitempty"`
		Doc     int    `json:"doc,omitempty"`
		Object  string `json:"object,omitempty"`
		Reason  Reason `json:"reason"`
		Message string `json:"message"`
	}{p.File, p.Doc, p.Object, p.Reason, msg})
}

// PolicySource is implemented by sources that also read the cluster's
// AuthorizationPolicy objects: the file source from its directory, the
// Kubernetes source from the CRD (writing status conditions back).
// Policies are local to the cluster:
// the control plane hands them to its xDS server, never to the catalog.
//
// AuthorizationPolicies returns the policies in force, each valid and
// sorted by namespace/name (the callee must not change them), whether
// the source has read its input once (before that the set means
// nothing, and a control plane must not serve inbound listeners without
// it), and a channel that is closed when the set or ready changes next.
// Safe to call from any goroutine.
type PolicySource interface {
	AuthorizationPolicies() (policies []policy.AuthorizationPolicy, ready bool, changed <-chan struct{})
}

// TrafficSource is implemented by sources that also read the cluster's
// traffic objects (HTTPRoute, GRPCRoute, ResiliencePolicy,
// FaultInjection): the file source from its directory, the Kubernetes
// source from the CRDs (writing Gateway API status conditions back).
//
// Traffic returns the valid objects in force (each list sorted by
// namespace/name; the callee must not change them), whether the source
// has read its input once, and a channel that is closed when the set or
// ready changes next. A bad object is left out with a Problem; the
// others stay. Safe to call from any goroutine. The control plane
// publishes the producer part of the set with its exports and hands the
// whole set to its xDS server.
type TrafficSource interface {
	Traffic() (t policy.Traffic, ready bool, changed <-chan struct{})
}
