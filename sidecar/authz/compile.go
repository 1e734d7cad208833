package authz

import (
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"sort"
	"strconv"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/fedmesh/fedmesh/internal/pgv"
)

// ErrUnsupported is wrapped by the errors of configurations that use a
// field or matcher the evaluator does not implement.
var ErrUnsupported = errors.New("unsupported RBAC field")

// maxDepth bounds the nesting of and/or/not matchers.
const maxDepth = 32

func unsupported(path, field string) error {
	return fmt.Errorf("%s: %w %q", path, ErrUnsupported, field)
}

// NewHTTPFilter compiles the configuration of an envoy.filters.http.rbac
// filter. A configuration without rules enforces nothing: the result is
// nil and no error. matcher, shadow_rules and shadow_matcher are refused.
func NewHTTPFilter(c *httprbacv3.RBAC) (*Filter, error) {
	switch {
	case c.GetMatcher() != nil:
		return nil, unsupported("rbac", "matcher")
	case c.GetShadowRules() != nil:
		return nil, unsupported("rbac", "shadow_rules")
	case c.GetShadowMatcher() != nil:
		return nil, unsupported("rbac", "shadow_matcher")
	}
	if c.GetRules() == nil {
		return nil, nil
	}
	f, err := compileRules(c.GetRules())
	if err != nil {
		return nil, err
	}
	if err := pgv.Validate(c); err != nil {
		return nil, fmt.Errorf("rbac: %w", err)
	}
	return f, nil
}

// NewNetworkFilter compiles the configuration of an
// envoy.filters.network.rbac filter, evaluated once per connection
// (enforcement_type ONE_TIME_ON_FIRST_BYTE). matcher, shadow_rules,
// shadow_matcher, enforcement_type CONTINUOUS and delay_deny are refused.
func NewNetworkFilter(c *netrbacv3.RBAC) (*Filter, error) {
	switch {
	case c.GetMatcher() != nil:
		return nil, unsupported("rbac", "matcher")
	case c.GetShadowRules() != nil:
		return nil, unsupported("rbac", "shadow_rules")
	case c.GetShadowMatcher() != nil:
		return nil, unsupported("rbac", "shadow_matcher")
	case c.GetEnforcementType() != netrbacv3.RBAC_ONE_TIME_ON_FIRST_BYTE:
		return nil, unsupported("rbac", "enforcement_type")
	case c.GetDelayDeny() != nil:
		return nil, unsupported("rbac", "delay_deny")
	}
	if c.GetRules() == nil {
		return nil, nil
	}
	f, err := compileRules(c.GetRules())
	if err != nil {
		return nil, err
	}
	if err := pgv.Validate(c); err != nil {
		return nil, fmt.Errorf("rbac: %w", err)
	}
	return f, nil
}

func compileRules(rules *rbacv3.RBAC) (*Filter, error) {
	if rules.GetAuditLoggingOptions() != nil {
		return nil, unsupported("rules", "audit_logging_options")
	}
	f := &Filter{}
	switch rules.GetAction() {
	case rbacv3.RBAC_ALLOW:
		f.action = Allow
	case rbacv3.RBAC_DENY:
		f.action = Deny
	case rbacv3.RBAC_LOG:
		f.action = Log
	default:
		return nil, fmt.Errorf("rules.action: %w %q", ErrUnsupported, rules.GetAction().String())
	}
	names := make([]string, 0, len(rules.GetPolicies()))
	for name := range rules.GetPolicies() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := rules.GetPolicies()[name]
		path := "rules.policies[" + strconv.Quote(name) + "]"
		cp, err := compilePolicy(path, p)
		if err != nil {
			return nil, err
		}
		cp.ref = parsePolicyName(name)
		f.policies = append(f.policies, cp)
	}
	return f, nil
}

func compilePolicy(path string, p *rbacv3.Policy) (policy, error) {
	switch {
	case p == nil:
		return policy{}, fmt.Errorf("%s: empty policy", path)
	case p.GetCondition() != nil:
		return policy{}, unsupported(path, "condition")
	case p.GetCheckedCondition() != nil:
		return policy{}, unsupported(path, "checked_condition")
	case p.GetCelConfig() != nil:
		return policy{}, unsupported(path, "cel_config")
	}
	var out policy
	for i, perm := range p.GetPermissions() {
		n, err := compilePermission(path+".permissions["+strconv.Itoa(i)+"]", perm, 0)
		if err != nil {
			return policy{}, err
		}
		out.permissions = append(out.permissions, n)
	}
	for i, pr := range p.GetPrincipals() {
		n, err := compilePrincipal(path+".principals["+strconv.Itoa(i)+"]", pr, 0)
		if err != nil {
			return policy{}, err
		}
		out.principals = append(out.principals, n)
	}
	return out, nil
}

func compilePermission(path string, p *rbacv3.Permission, depth int) (node, error) {
	if depth > maxDepth {
		return node{}, fmt.Errorf("%s: nested deeper than %d", path, maxDepth)
	}
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return node{}, fmt.Errorf("%s.any: must be true", path)
		}
		return node{kind: nodeAny}, nil
	case *rbacv3.Permission_AndRules:
		return compileSet(path+".and_rules", "rules", nodeAnd, r.AndRules.GetRules(), depth, compilePermission)
	case *rbacv3.Permission_OrRules:
		return compileSet(path+".or_rules", "rules", nodeOr, r.OrRules.GetRules(), depth, compilePermission)
	case *rbacv3.Permission_NotRule:
		c, err := compilePermission(path+".not_rule", r.NotRule, depth+1)
		if err != nil {
			return node{}, err
		}
		return node{kind: nodeNot, children: []node{c}}, nil
	case *rbacv3.Permission_Header:
		h, err := compileHeader(path+".header", r.Header)
		if err != nil {
			return node{}, err
		}
		return node{kind: nodeHeader, header: h}, nil
	case *rbacv3.Permission_UrlPath:
		sm, ok := r.UrlPath.GetRule().(*matcherv3.PathMatcher_Path)
		if !ok {
			return node{}, fmt.Errorf("%s.url_path: needs path", path)
		}
		s, err := compileString(path+".url_path.path", sm.Path)
		if err != nil {
			return node{}, err
		}
		return node{kind: nodeURLPath, str: s}, nil
	case *rbacv3.Permission_RequestedServerName:
		s, err := compileString(path+".requested_server_name", r.RequestedServerName)
		if err != nil {
			return node{}, err
		}
		return node{kind: nodeSNI, str: s}, nil
	case nil:
		return node{}, fmt.Errorf("%s: no rule set", path)
	default:
		return node{}, unsupported(path, oneofField(p, "rule"))
	}
}

// compileSet compiles the members of an and/or set (field "rules" of a
// permission set, "ids" of a principal set) into one node of kind.
func compileSet[T any](path, field string, kind nodeKind, items []T, depth int, compile func(string, T, int) (node, error)) (node, error) {
	if len(items) == 0 {
		return node{}, fmt.Errorf("%s: no %s", path, field)
	}
	n := node{kind: kind}
	for i, c := range items {
		cn, err := compile(path+"."+field+"["+strconv.Itoa(i)+"]", c, depth+1)
		if err != nil {
			return node{}, err
		}
		n.children = append(n.children, cn)
	}
	return n, nil
}

func compilePrincipal(path string, p *rbacv3.Principal, depth int) (node, error) {
	if depth > maxDepth {
		return node{}, fmt.Errorf("%s: nested deeper than %d", path, maxDepth)
	}
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !id.Any {
			return node{}, fmt.Errorf("%s.any: must be true", path)
		}
		return node{kind: nodeAny}, nil
	case *rbacv3.Principal_AndIds:
		return compileSet(path+".and_ids", "ids", nodeAnd, id.AndIds.GetIds(), depth, compilePrincipal)
	case *rbacv3.Principal_OrIds:
		return compileSet(path+".or_ids", "ids", nodeOr, id.OrIds.GetIds(), depth, compilePrincipal)
	case *rbacv3.Principal_NotId:
		c, err := compilePrincipal(path+".not_id", id.NotId, depth+1)
		if err != nil {
			return node{}, err
		}
		return node{kind: nodeNot, children: []node{c}}, nil
	case *rbacv3.Principal_Authenticated_:
		if id.Authenticated.GetPrincipalName() == nil {
			return node{kind: nodeAuthenticated}, nil
		}
		s, err := compileString(path+".authenticated.principal_name", id.Authenticated.GetPrincipalName())
		if err != nil {
			return node{}, err
		}
		return node{kind: nodeAuthenticated, str: s}, nil
	case *rbacv3.Principal_FilterState:
		fs := id.FilterState
		if fs.GetKey() != PeerClusterKey {
			return node{}, fmt.Errorf("%s.filter_state.key: %w %q (only %q is known)", path, ErrUnsupported, fs.GetKey(), PeerClusterKey)
		}
		sm, ok := fs.GetMatcher().(*matcherv3.FilterStateMatcher_StringMatch)
		if !ok {
			return node{}, unsupported(path+".filter_state", "matcher (only string_match)")
		}
		s, err := compileString(path+".filter_state.string_match", sm.StringMatch)
		if err != nil {
			return node{}, err
		}
		return node{kind: nodePeerCluster, str: s}, nil
	case *rbacv3.Principal_Header:
		h, err := compileHeader(path+".header", id.Header)
		if err != nil {
			return node{}, err
		}
		return node{kind: nodeHeader, header: h}, nil
	case nil:
		return node{}, fmt.Errorf("%s: no identifier set", path)
	default:
		return node{}, unsupported(path, oneofField(p, "identifier"))
	}
}

// oneofField names the field set in oneof of m.
func oneofField(m proto.Message, oneof protoreflect.Name) string {
	r := m.ProtoReflect()
	if fd := r.WhichOneof(r.Descriptor().Oneofs().ByName(oneof)); fd != nil {
		return string(fd.Name())
	}
	return string(oneof)
}

func compileHeader(path string, h *routev3.HeaderMatcher) (*headerMatch, error) {
	name := strings.ToLower(h.GetName())
	if name == "" {
		return nil, fmt.Errorf("%s.name: empty", path)
	}
	m := &headerMatch{invert: h.GetInvertMatch(), missingIsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	switch name {
	case ":method":
		m.pseudo = pseudoMethod
	case ":path":
		m.pseudo = pseudoPath
	case ":authority", "host":
		m.pseudo = pseudoAuthority
	case ":scheme":
		m.pseudo = pseudoScheme
	default:
		if strings.HasPrefix(name, ":") {
			return nil, fmt.Errorf("%s.name: %w: pseudo-header %q", path, ErrUnsupported, name)
		}
		m.key = textproto.CanonicalMIMEHeaderKey(name)
	}
	switch spec := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		s, err := compileString(path+".string_match", spec.StringMatch)
		if err != nil {
			return nil, err
		}
		m.str = s
	case *routev3.HeaderMatcher_PresentMatch:
		m.present = spec.PresentMatch
	case nil:
		return nil, fmt.Errorf("%s: no header_match_specifier (use string_match or present_match)", path)
	default:
		return nil, unsupported(path, oneofField(h, "header_match_specifier"))
	}
	return m, nil
}

func compileString(path string, s *matcherv3.StringMatcher) (*strMatch, error) {
	if s == nil {
		return nil, fmt.Errorf("%s: missing", path)
	}
	m := &strMatch{ignoreCase: s.GetIgnoreCase()}
	switch p := s.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		m.kind, m.s = strExact, p.Exact
		return m, nil
	case *matcherv3.StringMatcher_Prefix:
		m.kind, m.s = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		m.kind, m.s = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		m.kind, m.s = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		if p.SafeRegex.GetRegex() == "" {
			return nil, fmt.Errorf("%s.safe_regex.regex: empty", path)
		}
		re, err := regexp.Compile(`^(?:` + p.SafeRegex.GetRegex() + `)$`)
		if err != nil {
			return nil, fmt.Errorf("%s.safe_regex.regex: %w", path, err)
		}
		m.kind, m.re = strRegex, re
		return m, nil
	case nil:
		return nil, fmt.Errorf("%s: no match_pattern", path)
	default:
		return nil, unsupported(path, oneofField(s, "match_pattern"))
	}
	if m.s == "" {
		return nil, fmt.Errorf("%s: empty pattern", path)
	}
	return m, nil
}
