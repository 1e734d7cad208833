package policy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The API group, version and kind of AuthorizationPolicy, and the root
// namespace whose policies apply to the whole mesh.
const (
	Group         = "fedmesh.io"
	Version       = "v1alpha1"
	APIVersion    = Group + "/" + Version
	Kind          = "AuthorizationPolicy"
	RootNamespace = "fedmesh-system"
)

// Action is what a policy does with the requests its rules match.
type Action string

// Actions, evaluated in Istio's order: AUDIT records, DENY denies, ALLOW
// allows.
const (
	// ActionAllow allows matching requests. Once any ALLOW policy applies
	// to a service, requests that match none of them are denied.
	ActionAllow Action = "ALLOW"
	// ActionDeny denies matching requests, whatever ALLOW policies say.
	ActionDeny Action = "DENY"
	// ActionAudit records matching requests; it never changes a decision.
	ActionAudit Action = "AUDIT"
)

// AuthorizationPolicy (fedmesh.io/v1alpha1) says who may call which
// services of a namespace, shaped after Istio's AuthorizationPolicy
// (security.istio.io/v1) with Gateway API targetRefs. The server's
// sidecar enforces it; policies stay in their cluster.
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AuthorizationPolicySpec `json:"spec"`
}

// Key returns "NAMESPACE/NAME".
func (p *AuthorizationPolicy) Key() string { return p.Namespace + "/" + p.Name }

// AuthorizationPolicySpec is the body of an AuthorizationPolicy.
type AuthorizationPolicySpec struct {
	// TargetRefs name the Services of the policy's namespace it applies
	// to. Empty: every service of the namespace, or of the mesh for a
	// policy in RootNamespace.
	TargetRefs []TargetRef `json:"targetRefs,omitempty"`
	// Action is ALLOW (the default when empty), DENY or AUDIT.
	Action Action `json:"action,omitempty"`
	// Rules match requests; a request matches the policy when it matches
	// any rule. No rules: the policy matches nothing, so an ALLOW policy
	// without rules denies every request to its targets (default deny).
	Rules []Rule `json:"rules,omitempty"`
}

// EffectiveAction is the action with its default applied.
func (s *AuthorizationPolicySpec) EffectiveAction() Action {
	if s.Action == "" {
		return ActionAllow
	}
	return s.Action
}

// TargetRef names one Service the policy applies to (GEP-713 policy
// attachment, local references only).
type TargetRef struct {
	// Group is the API group of the target: "" (the core group).
	Group string `json:"group,omitempty"`
	// Kind is the target's kind: Service.
	Kind string `json:"kind"`
	// Name is the Service's name in the policy's namespace.
	Name string `json:"name"`
}

// Rule matches a request when every one of its parts does: some entry
// of From (none: any source), some entry of To (none: any operation) and
// every condition of When.
type Rule struct {
	From []RuleFrom  `json:"from,omitempty"`
	To   []RuleTo    `json:"to,omitempty"`
	When []Condition `json:"when,omitempty"`
}

// RuleFrom holds one source.
type RuleFrom struct {
	Source Source `json:"source"`
}

// Source matches the caller. Every field that is set must match; in a
// list, any value. Not* lists match when no value does. Values are globs:
// "*" (any non-empty value), "prefix*", "*suffix" or an exact value.
type Source struct {
	// Principals are the caller's SPIFFE IDs, spiffe://TRUST-DOMAIN/PATH,
	// taken from its verified certificate.
	Principals    []string `json:"principals,omitempty"`
	NotPrincipals []string `json:"notPrincipals,omitempty"`
	// Namespaces are the caller's namespace, the NS of its SPIFFE ID
	// spiffe://TD/ns/NS/sa/SA.
	Namespaces    []string `json:"namespaces,omitempty"`
	NotNamespaces []string `json:"notNamespaces,omitempty"`
	// Clusters are the caller's cluster, named by the cluster CA that
	// signed its certificate (never a header).
	Clusters    []string `json:"clusters,omitempty"`
	NotClusters []string `json:"notClusters,omitempty"`
}

// RuleTo holds one operation.
type RuleTo struct {
	Operation Operation `json:"operation"`
}

// Operation matches what is called. Every field that is set must match.
// Methods, paths and grpc are HTTP conditions: on an opaque TCP port a
// DENY rule ignores them (denying more) and an ALLOW or AUDIT rule that
// has them never matches, as in Istio.
type Operation struct {
	// Ports are service ports (numbers, or strings of numbers as in
	// Istio).
	Ports    []Port `json:"ports,omitempty"`
	NotPorts []Port `json:"notPorts,omitempty"`
	// Methods are HTTP methods, exact ("GET"); gRPC calls are POST.
	Methods    []string `json:"methods,omitempty"`
	NotMethods []string `json:"notMethods,omitempty"`
	// Paths are globs on the path without its query ("/api/*").
	Paths    []string `json:"paths,omitempty"`
	NotPaths []string `json:"notPaths,omitempty"`
	// GRPC matches a gRPC service, or one method of it.
	GRPC *GRPCOperation `json:"grpc,omitempty"`
}

// GRPCOperation names a gRPC service ("pkg.Svc") and optionally one of
// its methods ("Get"); it matches the path /pkg.Svc/ or /pkg.Svc/Get.
type GRPCOperation struct {
	Service string `json:"service"`
	Method  string `json:"method,omitempty"`
}

// Condition matches a request header, in Istio's form: Key is
// "request.headers[NAME]"; Values and NotValues are globs on its value.
// A header that is absent matches no value.
type Condition struct {
	Key       string   `json:"key"`
	Values    []string `json:"values,omitempty"`
	NotValues []string `json:"notValues,omitempty"`
}

// Header returns the lower-case header name of a request.headers[NAME]
// key, or false.
func (c *Condition) Header() (string, bool) {
	name, ok := strings.CutPrefix(c.Key, "request.headers[")
	if !ok {
		return "", false
	}
	name, ok = strings.CutSuffix(name, "]")
	if !ok || name == "" {
		return "", false
	}
	return strings.ToLower(name), true
}

// Port is a service port number. It reads from a JSON number or a string
// of one ("8080", as Istio writes ports) and writes as a number.
type Port int32

// UnmarshalJSON accepts 8080 and "8080".
func (p *Port) UnmarshalJSON(b []byte) error {
	var n int64
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return fmt.Errorf("port %q is not a number", s)
		}
		n = v
	} else if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("port %s is not a number", b)
	}
	if n < -1<<31 || n > 1<<31-1 {
		return fmt.Errorf("port %d is out of range 1-65535", n)
	}
	*p = Port(n)
	return nil
}
