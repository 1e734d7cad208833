package policy

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Request is what an authorization decision looks at: one HTTP request,
// or one TCP connection, arriving at a service port's server sidecar.
type Request struct {
	// Principal is the caller's SPIFFE ID from its verified certificate.
	// Source namespaces are matched against its /ns/NS/sa/SA path.
	Principal string `json:"principal"`
	// Cluster is the caller's cluster, named by its certificate's
	// cluster CA; empty when unknown (then no cluster value matches).
	Cluster string `json:"cluster,omitempty"`
	// Namespace and Service name the destination service; Port is its
	// service port.
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	Port      int32  `json:"port,omitempty"`
	// TCP says the port is opaque TCP: there is no method, path or
	// header, and rules are reduced as RuleOnTCP says.
	TCP bool `json:"tcp,omitempty"`
	// Method and Path are the HTTP request's; the path's query and
	// fragment are ignored.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Headers are the request headers by lower-case name; values of a
	// repeated header are joined with ",".
	Headers map[string]string `json:"headers,omitempty"`
}

// Decision is the outcome of Evaluate.
type Decision struct {
	// Allowed says whether the request goes through.
	Allowed bool `json:"allowed"`
	// Action is the action of the policy that decided: DENY for a DENY
	// match, ALLOW for an ALLOW match or for the default deny when ALLOW
	// policies apply and none matched; empty when no DENY matched and no
	// ALLOW policy applies.
	Action Action `json:"action,omitempty"`
	// Policy ("NAMESPACE/NAME") and Rule (its index) name the rule that
	// matched; empty and nil when no rule decided.
	Policy string `json:"policy,omitempty"`
	Rule   *int   `json:"rule,omitempty"`
	// Reason says why, in the words of the sidecar's audit records.
	Reason string `json:"reason"`
	// Audited lists the AUDIT policies' rules that matched: the request
	// is recorded for each; the decision does not change.
	Audited []Match `json:"audited,omitempty"`
}

// Match names one rule of one policy.
type Match struct {
	Policy string `json:"policy"`
	Rule   int    `json:"rule"`
}

// Reasons of a Decision.
const (
	ReasonDenied      = "denied by DENY policy"
	ReasonNoAllow     = "no ALLOW policy matched"
	ReasonAllowed     = "allowed by ALLOW policy"
	ReasonNoneApplies = "no ALLOW policy applies"
)

// Applies reports whether policy p applies to service namespace/name: a
// policy of the root namespace without targetRefs applies to every
// service of the mesh; any other policy to the services of its namespace,
// all of them when targetRefs is empty, else those it names.
func Applies(p *AuthorizationPolicy, namespace, name string) bool {
	if len(p.Spec.TargetRefs) == 0 {
		return p.Namespace == RootNamespace || p.Namespace == namespace
	}
	if p.Namespace != namespace {
		return false
	}
	for _, t := range p.Spec.TargetRefs {
		if t.Kind == "Service" && t.Group == "" && t.Name == name {
			return true
		}
	}
	return false
}

// Sort orders policies by namespace and name: the order Evaluate reports
// the first match in, and the order of their RBAC policies.
func Sort(ps []AuthorizationPolicy) {
	slices.SortStableFunc(ps, func(a, b AuthorizationPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}

// Evaluate decides req under policies (each valid), in Istio's order
// (istio.io/latest/docs/reference/config/security/authorization-policy):
// AUDIT matches are recorded and change nothing; any matching DENY policy
// denies; if no ALLOW policy applies to the service the request is
// allowed; if one applies, the request is allowed only when some ALLOW
// policy matches. Policies are taken in namespace/name order; the first
// matching rule is reported. It decides what the sidecar's RBAC filters
// decide with the resources the control plane renders from the same
// policies.
func Evaluate(policies []AuthorizationPolicy, req Request) Decision {
	order := make([]*AuthorizationPolicy, 0, len(policies))
	for i := range policies {
		if Applies(&policies[i], req.Namespace, req.Service) {
			order = append(order, &policies[i])
		}
	}
	slices.SortStableFunc(order, func(a, b *AuthorizationPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	var d Decision
	for _, p := range order {
		if p.Spec.EffectiveAction() != ActionAudit {
			continue
		}
		for i := range p.Spec.Rules {
			if ruleMatches(&p.Spec.Rules[i], ActionAudit, &req) {
				d.Audited = append(d.Audited, Match{Policy: p.Key(), Rule: i})
			}
		}
	}
	for _, p := range order {
		if p.Spec.EffectiveAction() != ActionDeny {
			continue
		}
		if i, ok := firstMatch(p, ActionDeny, &req); ok {
			d.Action, d.Policy, d.Rule, d.Reason = ActionDeny, p.Key(), &i, ReasonDenied
			return d
		}
	}
	applies := false
	for _, p := range order {
		if p.Spec.EffectiveAction() != ActionAllow {
			continue
		}
		applies = true
		if i, ok := firstMatch(p, ActionAllow, &req); ok {
			d.Allowed, d.Action, d.Policy, d.Rule, d.Reason = true, ActionAllow, p.Key(), &i, ReasonAllowed
			return d
		}
	}
	if applies {
		d.Action, d.Reason = ActionAllow, ReasonNoAllow
		return d
	}
	d.Allowed, d.Reason = true, ReasonNoneApplies
	return d
}

func firstMatch(p *AuthorizationPolicy, a Action, req *Request) (int, bool) {
	for i := range p.Spec.Rules {
		if ruleMatches(&p.Spec.Rules[i], a, req) {
			return i, true
		}
	}
	return 0, false
}

// ruleMatches reports whether rule r of a policy with action a matches
// req; on a TCP port the rule is first reduced as RuleOnTCP says.
func ruleMatches(r *Rule, a Action, req *Request) bool {
	if req.TCP {
		tr, ok := RuleOnTCP(*r, a)
		if !ok {
			return false
		}
		r = &tr
	}
	if len(r.From) > 0 && !slices.ContainsFunc(r.From, func(f RuleFrom) bool { return sourceMatches(&f.Source, req) }) {
		return false
	}
	if len(r.To) > 0 && !slices.ContainsFunc(r.To, func(t RuleTo) bool { return operationMatches(&t.Operation, req) }) {
		return false
	}
	for i := range r.When {
		c := &r.When[i]
		name, _ := c.Header()
		if !field(c.Values, c.NotValues, req.Headers[name]) {
			return false
		}
	}
	return true
}

func sourceMatches(s *Source, req *Request) bool {
	return field(s.Principals, s.NotPrincipals, req.Principal) &&
		field(s.Namespaces, s.NotNamespaces, SourceNamespace(req.Principal)) &&
		field(s.Clusters, s.NotClusters, req.Cluster)
}

// SourceNamespace returns NS of a principal spiffe://TD/ns/NS/sa/SA, or
// "" when the principal has another form (then no namespace matches).
func SourceNamespace(principal string) string {
	td, path, ok := SplitSpiffeID(principal)
	if !ok || td == "" {
		return ""
	}
	parts := strings.Split(path, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return ""
	}
	return parts[2]
}

func operationMatches(op *Operation, req *Request) bool {
	if len(op.Ports) > 0 && !slices.Contains(op.Ports, Port(req.Port)) {
		return false
	}
	if slices.Contains(op.NotPorts, Port(req.Port)) {
		return false
	}
	if len(op.Methods) > 0 && !slices.Contains(op.Methods, req.Method) {
		return false
	}
	if slices.Contains(op.NotMethods, req.Method) {
		return false
	}
	path := URLPath(req.Path)
	if !field(op.Paths, op.NotPaths, path) {
		return false
	}
	if op.GRPC != nil && !op.GRPC.Path().Match(path) {
		return false
	}
	return true
}

// URLPath is the path without query and fragment, what Envoy's url_path
// matcher sees.
func URLPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// Path is the request path glob of a gRPC operation: "/pkg.Svc/" as a
// prefix, or "/pkg.Svc/Method" exactly.
func (g *GRPCOperation) Path() Glob {
	if g.Method == "" {
		return Glob{Kind: GlobPrefix, Value: "/" + g.Service + "/"}
	}
	return Glob{Kind: GlobExact, Value: "/" + g.Service + "/" + g.Method}
}

// RBACPolicyName is the name of rule i of policy namespace/name among a
// chain's RBAC policies, Istio's format: ns[NS]-policy[NAME]-rule[i].
func RBACPolicyName(namespace, name string, rule int) string {
	return "ns[" + namespace + "]-policy[" + name + "]-rule[" + strconv.Itoa(rule) + "]"
}
