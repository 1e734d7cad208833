package authz_test

import (
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// The raw Envoy RBAC protos these tests feed the engine: the package
// interprets any RBAC config a control plane may send, including fields
// fedmesh's own control plane never emits (internal/xdsresource builds
// those), so its tests build their inputs here.

// PeerClusterKey is the filter state key of the client's cluster.
const PeerClusterKey = "io.fedmesh.peer_cluster"

// Exact, Prefix, Suffix and Regex are string matchers.
func Exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

// Prefix matches strings that start with s.
func Prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}

// Suffix matches strings that end with s.
func Suffix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s}}
}

// Regex matches strings the RE2 expression re matches whole.
func Regex(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

// AnyPrincipal matches every client.
func AnyPrincipal() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

// PrincipalName matches the client's SPIFFE ID.
func PrincipalName(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

// PeerCluster matches the client's cluster.
func PeerCluster(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
		Key: PeerClusterKey, Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: m},
	}}}
}

// PrincipalHeader matches a request header.
func PrincipalHeader(name string, m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: header(name, m)}}
}

// AndIDs, OrIDs and NotID combine principals.
func AndIDs(ids ...*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ids}}}
}

// OrIDs matches when one of ids does.
func OrIDs(ids ...*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ids}}}
}

// NotID matches when id does not.
func NotID(id *rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: id}}
}

// AnyPermission matches every request.
func AnyPermission() *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
}

// Method matches the request method exactly.
func Method(m string) *rbacv3.Permission {
	return HeaderPermission(":method", Exact(m))
}

// HeaderPermission matches a request header.
func HeaderPermission(name string, m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: header(name, m)}}
}

// Path matches the request path without the query.
func Path(m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: m}}}}
}

// ServerName matches the SNI (a service port, for to.ports).
func ServerName(sni string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: Exact(sni)}}
}

// AndRules, OrRules and NotRule combine permissions.
func AndRules(rs ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: rs}}}
}

// OrRules matches when one of rs does.
func OrRules(rs ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: rs}}}
}

// NotRule matches when r does not.
func NotRule(r *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: r}}
}

func header(name string, m *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}
}

// Policy matches when one of perms and one of ids match.
func Policy(perms []*rbacv3.Permission, ids []*rbacv3.Principal) *rbacv3.Policy {
	return &rbacv3.Policy{Permissions: perms, Principals: ids}
}

// Policies are RBAC policies by name (ns[NS]-policy[NAME]-rule[N]).
type Policies map[string]*rbacv3.Policy
