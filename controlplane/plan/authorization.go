package plan

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
)

// This file plans inbound authorization (docs/xds.md, "Inbound
// authorization"): which AuthorizationPolicies apply to each service port
// a sidecar serves, translated rule by rule into RBAC policies, as plain
// data that controlplane/xds renders into Envoy's RBAC filters.

// WithAuthorization returns a plan of the same view and topology policy
// that also plans inbound authorization from policies (each valid).
// Policies are local to the cluster: they apply to the local workloads'
// inbound listeners only.
func (p *Plan) WithAuthorization(policies []policy.AuthorizationPolicy) *Plan {
	ps := slices.Clone(policies)
	policy.Sort(ps)
	n := p.clone()
	n.authz = ps
	return n
}

// AuthorizationPolicies returns the policies the plan enforces, sorted by
// namespace/name. Callers must not change them.
func (p *Plan) AuthorizationPolicies() []policy.AuthorizationPolicy { return p.authz }

// Authorization is what one inbound chain (one service port) enforces.
type Authorization struct {
	// Filters are the chain's RBAC filters in the order they run: LOG
	// (AUDIT policies), DENY, ALLOW, each present only when needed. An
	// ALLOW filter is present whenever an ALLOW policy applies to the
	// port, even with no policies in it: it then denies everything.
	Filters []RBACFilter `json:"filters,omitempty"`
	// Notes record translation decisions: rules left out or reduced, and
	// why.
	Notes []AuthorizationNote `json:"notes,omitempty"`
}

// AuthorizationNote is one translation decision about one rule.
type AuthorizationNote struct {
	Policy string `json:"policy"`
	Rule   int    `json:"rule"`
	Note   string `json:"note"`
}

// RBACAction is the action of an RBAC filter.
type RBACAction string

// RBAC filter actions (Envoy's config.rbac.v3.RBAC.Action).
const (
	RBACAllow RBACAction = "ALLOW"
	RBACDeny  RBACAction = "DENY"
	RBACLog   RBACAction = "LOG"
)

// RBACFilter is one RBAC filter: its action and its policies, sorted by
// name.
type RBACFilter struct {
	Action   RBACAction   `json:"action"`
	Policies []RBACPolicy `json:"policies"`
}

// RBACPolicy is one rule of one AuthorizationPolicy: it matches when any
// of its permissions and any of its principals match.
type RBACPolicy struct {
	// Name is ns[NS]-policy[NAME]-rule[INDEX].
	Name        string       `json:"name"`
	Permissions []Permission `json:"permissions"`
	Principals  []Principal  `json:"principals"`
}

// MatchKind is how a StringMatch compares.
type MatchKind string

// String match kinds; MatchRegex is RE2, matching the whole value.
const (
	MatchExact  MatchKind = "exact"
	MatchPrefix MatchKind = "prefix"
	MatchSuffix MatchKind = "suffix"
	MatchRegex  MatchKind = "regex"
)

// StringMatch matches a string.
type StringMatch struct {
	Kind  MatchKind `json:"kind"`
	Value string    `json:"value"`
}

// HeaderMatch matches a request header's value.
type HeaderMatch struct {
	Name  string      `json:"name"`
	Match StringMatch `json:"match"`
}

// Principal matches the caller. Exactly one field is set.
type Principal struct {
	Any bool        `json:"any,omitempty"`
	And []Principal `json:"and,omitempty"`
	Or  []Principal `json:"or,omitempty"`
	Not *Principal  `json:"not,omitempty"`
	// Name matches the SPIFFE ID of the verified peer certificate.
	Name *StringMatch `json:"name,omitempty"`
	// PeerCluster matches the caller's cluster, from the verified peer
	// chain (filter state io.fedmesh.peer_cluster).
	PeerCluster *StringMatch `json:"peerCluster,omitempty"`
	// Header matches a request header (HTTP only).
	Header *HeaderMatch `json:"header,omitempty"`
}

// Permission matches what is called. Exactly one field is set.
type Permission struct {
	Any bool         `json:"any,omitempty"`
	And []Permission `json:"and,omitempty"`
	Or  []Permission `json:"or,omitempty"`
	Not *Permission  `json:"not,omitempty"`
	// Method matches the :method header exactly (HTTP only).
	Method string `json:"method,omitempty"`
	// Path matches the path without query (HTTP only).
	Path *StringMatch `json:"path,omitempty"`
}

// PeerClusterKey is the filter state key the server sidecar stores the
// caller's verified cluster under.
const PeerClusterKey = "io.fedmesh.peer_cluster"

// Authorization plans what the chain of service port sp enforces; http
// says whether the port is HTTP (else opaque TCP). It is nil when no
// policy applies to the port.
func (p *Plan) Authorization(sp naming.ServicePort, http bool) *Authorization {
	return p.authorization(sp, http, false)
}

// ProxylessAuthorization plans what a grpc-go xDS server serving service
// port sp (an HTTP/2 port) enforces: the same policies, less what grpc-go
// cannot check (policy.RuleOnProxyless: the caller's cluster). grpc-go
// also ignores AUDIT (LOG) filters, so a proxyless server writes no audit
// records. It is nil when no policy applies to the port.
func (p *Plan) ProxylessAuthorization(sp naming.ServicePort) *Authorization {
	return p.authorization(sp, true, true)
}

func (p *Plan) authorization(sp naming.ServicePort, http, proxyless bool) *Authorization {
	byAction := map[policy.Action][]*policy.AuthorizationPolicy{}
	for i := range p.authz {
		ap := &p.authz[i]
		if policy.Applies(ap, sp.Namespace, sp.Name) {
			a := ap.Spec.EffectiveAction()
			byAction[a] = append(byAction[a], ap)
		}
	}
	if len(byAction) == 0 {
		return nil
	}
	a := &Authorization{}
	for _, step := range []struct {
		action policy.Action
		rbac   RBACAction
	}{{policy.ActionAudit, RBACLog}, {policy.ActionDeny, RBACDeny}, {policy.ActionAllow, RBACAllow}} {
		aps := byAction[step.action]
		if len(aps) == 0 {
			continue
		}
		f := RBACFilter{Action: step.rbac, Policies: []RBACPolicy{}}
		for _, ap := range aps {
			if len(ap.Spec.Rules) == 0 {
				a.note(ap, -1, "no rules: matches nothing")
			}
			for i := range ap.Spec.Rules {
				if rp, ok := p.translateRule(a, ap, i, sp, http, proxyless); ok {
					f.Policies = append(f.Policies, rp)
				}
			}
		}
		if len(f.Policies) == 0 && step.action != policy.ActionAllow {
			continue // a LOG or DENY filter without policies does nothing
		}
		slices.SortFunc(f.Policies, func(x, y RBACPolicy) int { return strings.Compare(x.Name, y.Name) })
		a.Filters = append(a.Filters, f)
	}
	return a
}

func (a *Authorization) note(ap *policy.AuthorizationPolicy, rule int, format string, args ...any) {
	a.Notes = append(a.Notes, AuthorizationNote{Policy: ap.Key(), Rule: rule, Note: fmt.Sprintf(format, args...)})
}

// translateRule makes the RBAC policy of rule i of ap on service port sp,
// or reports (in a's notes) why the rule cannot match there.
func (p *Plan) translateRule(a *Authorization, ap *policy.AuthorizationPolicy, i int, sp naming.ServicePort, http, proxyless bool) (RBACPolicy, bool) {
	r := ap.Spec.Rules[i]
	action := ap.Spec.EffectiveAction()
	if proxyless {
		pr, ok := policy.RuleOnProxyless(r, action)
		if !ok {
			a.note(ap, i, "left out for a proxyless gRPC server on port %d: an %s rule on the caller's cluster never matches there (grpc-go cannot tell the cluster)", sp.Port, action)
			return RBACPolicy{}, false
		}
		if !reflect.DeepEqual(pr, r) {
			a.note(ap, i, "cluster conditions ignored for a proxyless gRPC server on port %d: the DENY rule denies more", sp.Port)
		}
		r = pr
	}
	if !http {
		only := policy.HTTPOnly(&r)
		tr, ok := policy.RuleOnTCP(r, action)
		if !ok {
			a.note(ap, i, "left out on TCP port %d: an %s rule with HTTP-only conditions (%s) never matches a TCP connection", sp.Port, action, strings.Join(only, ", "))
			return RBACPolicy{}, false
		}
		if len(only) > 0 {
			a.note(ap, i, "HTTP-only conditions (%s) ignored on TCP port %d: the DENY rule denies more", strings.Join(only, ", "), sp.Port)
		}
		r = tr
	}
	rp := RBACPolicy{Name: policy.RBACPolicyName(ap.Namespace, ap.Name, i)}
	if len(r.To) == 0 {
		rp.Permissions = []Permission{{Any: true}}
	}
	for j := range r.To {
		op := &r.To[j].Operation
		// Ports are decided here: the chain serves one service port.
		if len(op.Ports) > 0 && !slices.Contains(op.Ports, policy.Port(sp.Port)) || slices.Contains(op.NotPorts, policy.Port(sp.Port)) {
			continue
		}
		rp.Permissions = append(rp.Permissions, operationPermission(op))
	}
	if len(rp.Permissions) == 0 {
		a.note(ap, i, "left out on port %d: every to.operation names other ports", sp.Port)
		return RBACPolicy{}, false
	}
	var when []Principal
	for j := range r.When {
		when = append(when, conditionPrincipal(&r.When[j]))
	}
	if len(r.From) == 0 {
		rp.Principals = []Principal{andPrincipals(when)}
	}
	for j := range r.From {
		rp.Principals = append(rp.Principals, andPrincipals(append(p.sourcePrincipals(&r.From[j].Source), when...)))
	}
	return rp, true
}

func (p *Plan) sourcePrincipals(s *policy.Source) []Principal {
	var out []Principal
	field := func(values, notValues []string, one func(policy.Glob) Principal) {
		if len(values) > 0 {
			out = append(out, orPrincipals(globsTo(values, one)))
		}
		if len(notValues) > 0 {
			not := orPrincipals(globsTo(notValues, one))
			out = append(out, Principal{Not: &not})
		}
	}
	field(s.Principals, s.NotPrincipals, func(g policy.Glob) Principal {
		m := globMatch(g)
		return Principal{Name: &m}
	})
	td := regexp.QuoteMeta(p.trustDomain)
	field(s.Namespaces, s.NotNamespaces, func(g policy.Glob) Principal {
		return Principal{Name: &StringMatch{Kind: MatchRegex, Value: "spiffe://" + td + "/ns/" + g.Regexp("[^/]") + "/sa/[^/]+"}}
	})
	field(s.Clusters, s.NotClusters, func(g policy.Glob) Principal {
		m := globMatch(g)
		return Principal{PeerCluster: &m}
	})
	return out
}

func conditionPrincipal(c *policy.Condition) Principal {
	name, _ := c.Header()
	one := func(g policy.Glob) Principal {
		return Principal{Header: &HeaderMatch{Name: name, Match: globMatch(g)}}
	}
	var parts []Principal
	if len(c.Values) > 0 {
		parts = append(parts, orPrincipals(globsTo(c.Values, one)))
	}
	if len(c.NotValues) > 0 {
		not := orPrincipals(globsTo(c.NotValues, one))
		parts = append(parts, Principal{Not: &not})
	}
	return andPrincipals(parts)
}

func operationPermission(op *policy.Operation) Permission {
	var parts []Permission
	strs := func(values []string, one func(string) Permission) []Permission {
		out := make([]Permission, len(values))
		for i, v := range values {
			out[i] = one(v)
		}
		return out
	}
	method := func(m string) Permission { return Permission{Method: m} }
	path := func(s string) Permission {
		g, _ := policy.ParseGlob(s)
		m := globMatch(g)
		return Permission{Path: &m}
	}
	if len(op.Methods) > 0 {
		parts = append(parts, orPermissions(strs(op.Methods, method)))
	}
	if len(op.NotMethods) > 0 {
		not := orPermissions(strs(op.NotMethods, method))
		parts = append(parts, Permission{Not: &not})
	}
	if len(op.Paths) > 0 {
		parts = append(parts, orPermissions(strs(op.Paths, path)))
	}
	if len(op.NotPaths) > 0 {
		not := orPermissions(strs(op.NotPaths, path))
		parts = append(parts, Permission{Not: &not})
	}
	if op.GRPC != nil {
		m := globMatch(op.GRPC.Path())
		parts = append(parts, Permission{Path: &m})
	}
	switch len(parts) {
	case 0:
		return Permission{Any: true}
	case 1:
		return parts[0]
	}
	return Permission{And: parts}
}

// globMatch is the string match of a glob: "*" is the regex ".+" (any
// non-empty value), as the contract says.
func globMatch(g policy.Glob) StringMatch {
	switch g.Kind {
	case policy.GlobPrefix:
		return StringMatch{Kind: MatchPrefix, Value: g.Value}
	case policy.GlobSuffix:
		return StringMatch{Kind: MatchSuffix, Value: g.Value}
	case policy.GlobAny:
		return StringMatch{Kind: MatchRegex, Value: ".+"}
	}
	return StringMatch{Kind: MatchExact, Value: g.Value}
}

func globsTo(values []string, one func(policy.Glob) Principal) []Principal {
	out := make([]Principal, len(values))
	for i, v := range values {
		g, _ := policy.ParseGlob(v)
		out[i] = one(g)
	}
	return out
}

// orPrincipals and the like avoid one-element lists (Envoy's and_ids and
// or_ids need at least one; one element says the same thing plainly).
func orPrincipals(ps []Principal) Principal {
	if len(ps) == 1 {
		return ps[0]
	}
	return Principal{Or: ps}
}

func andPrincipals(ps []Principal) Principal {
	switch len(ps) {
	case 0:
		return Principal{Any: true}
	case 1:
		return ps[0]
	}
	return Principal{And: ps}
}

func orPermissions(ps []Permission) Permission {
	if len(ps) == 1 {
		return ps[0]
	}
	return Permission{Or: ps}
}
