package meshtest

import (
	"sort"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// This file builds the inbound authorization resources of docs/xds.md
// ("Inbound authorization") with plain go-control-plane types, until
// internal/xdsresource has its own RBAC builders; everything RBAC the
// sidecar tests send is made here.

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

// Authz is the authorization of one inbound port: AUDIT, DENY and ALLOW
// policies, each filter present only when it has policies, except ALLOW
// when DefaultDeny is set (an ALLOW filter with what Allow holds, possibly
// nothing, which then denies everything).
type Authz struct {
	Audit, Deny, Allow Policies
	DefaultDeny        bool
}

// Rules returns the RBAC rules in filter order.
func (a *Authz) Rules() []*rbacv3.RBAC {
	var out []*rbacv3.RBAC
	if len(a.Audit) > 0 {
		out = append(out, &rbacv3.RBAC{Action: rbacv3.RBAC_LOG, Policies: a.Audit})
	}
	if len(a.Deny) > 0 {
		out = append(out, &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: a.Deny})
	}
	if len(a.Allow) > 0 || a.DefaultDeny {
		out = append(out, &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: a.Allow})
	}
	return out
}

// HTTPRBAC is an envoy.filters.http.rbac filter.
func HTTPRBAC(rules *rbacv3.RBAC) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdsresource.Any(&httprbacv3.RBAC{Rules: rules})}}
}

// NetworkRBAC is an envoy.filters.network.rbac filter.
func NetworkRBAC(statPrefix string, rules *rbacv3.RBAC) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: xdsresource.Any(&netrbacv3.RBAC{Rules: rules, StatPrefix: statPrefix})}}
}

// InboundHCM is the HTTP connection manager of an HTTP inbound port: an
// inline route to cluster, the RBAC filters of rules in order, the router.
func InboundHCM(cluster string, rules []*rbacv3.RBAC) *listenerv3.Filter {
	var filters []*hcmv3.HttpFilter
	for _, r := range rules {
		filters = append(filters, HTTPRBAC(r))
	}
	filters = append(filters, &hcmv3.HttpFilter{Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdsresource.Any(&routerv3.Router{})}})
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: cluster,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: cluster,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "inbound",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
						Timeout:          durationpb.New(0),
					}},
				}},
			}},
		}},
		HttpFilters: filters,
	}
	return &listenerv3.Filter{Name: wellknown.HTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: xdsresource.Any(hcm)}}
}

// AuthzPort is an inbound port with its authorization; Authz nil sends
// the old shape (tcp_proxy only).
type AuthzPort struct {
	InboundPort
	Authz *Authz
}

// InboundAuthz builds the inbound listener inbound|ADDR in the shapes of
// docs/xds.md "Inbound authorization" (an HTTP port: the HCM with its RBAC
// filters; a TCP port: network RBAC filters before tcp_proxy) and, after
// it, the STATIC inbound clusters, as Inbound does.
func InboundAuthz(addr string, ports ...AuthzPort) []types.Resource {
	host, port := mustSplit(addr)
	l := &listenerv3.Listener{
		Name:    xdsresource.InboundListenerName(host, port),
		Address: xdsresource.SocketAddress(host, port),
	}
	var clusters []types.Resource
	sort.SliceStable(ports, func(i, j int) bool { return ports[i].SP.String() < ports[j].SP.String() })
	for _, ip := range ports {
		cluster := ip.SP.InboundCluster()
		var filters []*listenerv3.Filter
		switch {
		case ip.Authz == nil:
			filters = []*listenerv3.Filter{xdsresource.TCPProxy(cluster)}
		case ip.HTTP || ip.GRPC:
			filters = []*listenerv3.Filter{InboundHCM(cluster, ip.Authz.Rules())}
		default:
			for _, r := range ip.Authz.Rules() {
				filters = append(filters, NetworkRBAC(cluster, r))
			}
			filters = append(filters, xdsresource.TCPProxy(cluster))
		}
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{ip.SP.SNI()}, TransportProtocol: "tls"},
			TransportSocket:  xdsresource.DownstreamTLS(xdsresource.ALPN(ip.HTTP || ip.GRPC)),
			Filters:          filters,
		})
		ah, ap := mustSplit(ip.App)
		clusters = append(clusters, xdsresource.StaticCluster(cluster, ah, ap, 5*time.Second, ip.GRPC))
	}
	return append([]types.Resource{l}, clusters...)
}
