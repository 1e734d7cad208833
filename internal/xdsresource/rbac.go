package xdsresource

import (
	"time"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/durationpb"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// This file builds the inbound authorization resources of docs/xds.md
// ("Inbound authorization"): Envoy's RBAC filters, HTTP and network, and
// the inbound HTTP connection manager that carries the HTTP ones.

// RBACAction is what an RBAC filter does with requests its policies
// match: "ALLOW", "DENY" or "LOG".
type RBACAction string

// RBAC filter actions.
const (
	RBACAllow RBACAction = "ALLOW"
	RBACDeny  RBACAction = "DENY"
	RBACLog   RBACAction = "LOG"
)

// RBAC is one RBAC filter's rules. An ALLOW filter with no policies
// denies everything.
type RBAC struct {
	Action RBACAction
	// Policies are keyed by Name in the rendered map.
	Policies []RBACPolicy
}

// RBACPolicy matches when any permission and any principal match.
type RBACPolicy struct {
	Name        string
	Permissions []RBACPermission
	Principals  []RBACPrincipal
}

// MatchKind is how a StringMatch compares: "exact", "prefix", "suffix"
// or "regex" (RE2, whole value).
type MatchKind string

// StringMatch kinds.
const (
	MatchExact  MatchKind = "exact"
	MatchPrefix MatchKind = "prefix"
	MatchSuffix MatchKind = "suffix"
	MatchRegex  MatchKind = "regex"
)

// StringMatch is a type.matcher.v3.StringMatcher.
type StringMatch struct {
	Kind  MatchKind
	Value string
}

// HeaderMatch matches one header's value.
type HeaderMatch struct {
	Name  string
	Match StringMatch
}

// FilterStateMatch matches a string filter state object.
type FilterStateMatch struct {
	Key   string
	Match StringMatch
}

// RBACPrincipal is a config.rbac.v3.Principal; exactly one field is set.
type RBACPrincipal struct {
	Any bool
	And []RBACPrincipal
	Or  []RBACPrincipal
	Not *RBACPrincipal
	// Name matches the peer certificate's principal (its URI SAN).
	Name        *StringMatch
	FilterState *FilterStateMatch
	Header      *HeaderMatch
}

// RBACPermission is a config.rbac.v3.Permission; exactly one field is
// set.
type RBACPermission struct {
	Any bool
	And []RBACPermission
	Or  []RBACPermission
	Not *RBACPermission
	// Header matches a request header (":method" for methods).
	Header *HeaderMatch
	// Path matches the path without query (url_path).
	Path *StringMatch
	// ServerName matches the TLS SNI (requested_server_name).
	ServerName *StringMatch
}

// StringMatcher renders m.
func StringMatcher(m StringMatch) *matcherv3.StringMatcher {
	switch m.Kind {
	case MatchPrefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Value}}
	case MatchSuffix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: m.Value}}
	case MatchRegex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Value}}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Value}}
}

func headerMatcher(h *HeaderMatch) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name:                 h.Name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: StringMatcher(h.Match)},
	}
}

// RBACRules renders r as config.rbac.v3.RBAC.
func RBACRules(r RBAC) *rbacv3.RBAC {
	action := rbacv3.RBAC_ALLOW
	switch r.Action {
	case RBACDeny:
		action = rbacv3.RBAC_DENY
	case RBACLog:
		action = rbacv3.RBAC_LOG
	}
	out := &rbacv3.RBAC{Action: action, Policies: make(map[string]*rbacv3.Policy, len(r.Policies))}
	for _, p := range r.Policies {
		rp := &rbacv3.Policy{}
		for i := range p.Permissions {
			rp.Permissions = append(rp.Permissions, permission(&p.Permissions[i]))
		}
		for i := range p.Principals {
			rp.Principals = append(rp.Principals, principal(&p.Principals[i]))
		}
		out.Policies[p.Name] = rp
	}
	return out
}

func permission(p *RBACPermission) *rbacv3.Permission {
	set := func(ps []RBACPermission) *rbacv3.Permission_Set {
		s := &rbacv3.Permission_Set{}
		for i := range ps {
			s.Rules = append(s.Rules, permission(&ps[i]))
		}
		return s
	}
	switch {
	case len(p.And) > 0:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: set(p.And)}}
	case len(p.Or) > 0:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: set(p.Or)}}
	case p.Not != nil:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: permission(p.Not)}}
	case p.Header != nil:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatcher(p.Header)}}
	case p.Path != nil:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: StringMatcher(*p.Path)},
		}}}
	case p.ServerName != nil:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: StringMatcher(*p.ServerName)}}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
}

func principal(p *RBACPrincipal) *rbacv3.Principal {
	set := func(ps []RBACPrincipal) *rbacv3.Principal_Set {
		s := &rbacv3.Principal_Set{}
		for i := range ps {
			s.Ids = append(s.Ids, principal(&ps[i]))
		}
		return s
	}
	switch {
	case len(p.And) > 0:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: set(p.And)}}
	case len(p.Or) > 0:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: set(p.Or)}}
	case p.Not != nil:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: principal(p.Not)}}
	case p.Name != nil:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
			PrincipalName: StringMatcher(*p.Name),
		}}}
	case p.FilterState != nil:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
			Key:     p.FilterState.Key,
			Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: StringMatcher(p.FilterState.Match)},
		}}}
	case p.Header != nil:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: headerMatcher(p.Header)}}
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

// HTTPRBAC is the envoy.filters.http.rbac filter enforcing r.
func HTTPRBAC(r RBAC) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       wellknown.HTTPRoleBasedAccessControl,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: Any(&rbachttpv3.RBAC{Rules: RBACRules(r)})},
	}
}

// NetworkRBAC is the envoy.filters.network.rbac filter enforcing r on
// connections, counting under statPrefix.
func NetworkRBAC(statPrefix string, r RBAC) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: wellknown.RoleBasedAccessControl,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: Any(&rbacnetv3.RBAC{
			Rules:      RBACRules(r),
			StatPrefix: statPrefix,
		})},
	}
}

// InboundVirtualHost is the name of the one virtual host of an inbound
// HTTP chain's route configuration.
const InboundVirtualHost = "inbound"

// InboundHTTPConnectionManager is the network filter of an HTTP inbound
// chain: an inline route configuration named cluster (one virtual host
// "inbound", every domain and path to cluster, no timeout) and the HTTP
// filters rbac... then the router.
func InboundHTTPConnectionManager(cluster string, rbac []RBAC, tel *Telemetry) *listenerv3.Filter {
	return InboundHTTPConnectionManagerWithRateLimit(cluster, rbac, nil, tel)
}

// InboundHTTPConnectionManagerWithRateLimit is InboundHTTPConnectionManager
// with rl's local rate limit filter between the RBAC filters and the
// router (none when rl has no limits): requests are authorized first,
// so a denied request takes no token.
func InboundHTTPConnectionManagerWithRateLimit(cluster string, rbac []RBAC, rl *RateLimit, tel *Telemetry) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: cluster,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: cluster,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    InboundVirtualHost,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
						Timeout:          durationpb.New(time.Duration(0)),
					}},
				}},
			}},
		}},
		HttpFilters: httpFilters(rbac),
	}
	if rl != nil && len(rl.Limits) > 0 {
		n := len(hcm.HttpFilters)
		hcm.HttpFilters = append(hcm.HttpFilters[:n-1:n-1], HTTPLocalRateLimit(cluster, rl), hcm.HttpFilters[n-1])
	}
	applyTelemetry(hcm, tel, ReporterDestination)
	return hcmFilter(hcm)
}

// httpFilters are the RBAC filters of rbac in order, then the router.
func httpFilters(rbac []RBAC) []*hcmv3.HttpFilter {
	filters := make([]*hcmv3.HttpFilter, 0, len(rbac)+1)
	for _, r := range rbac {
		filters = append(filters, HTTPRBAC(r))
	}
	return append(filters, routerFilter())
}
