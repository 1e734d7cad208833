package meshtest

import (
	"sort"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// This file describes the inbound authorization of docs/xds.md ("Inbound
// authorization") in test-friendly shapes; internal/xdsresource builds
// the RBAC filters and chains, as it does for the control plane.

// PeerClusterKey is the filter state key of the client's cluster.
const PeerClusterKey = "io.fedmesh.peer_cluster"

// Permission and Principal are RBAC permissions and principals.
type (
	Permission = xdsresource.RBACPermission
	Principal  = xdsresource.RBACPrincipal
)

// Exact, Prefix, Suffix and Regex are string matchers.
func Exact(s string) xdsresource.StringMatch {
	return xdsresource.StringMatch{Kind: xdsresource.MatchExact, Value: s}
}

// Prefix matches strings that start with s.
func Prefix(s string) xdsresource.StringMatch {
	return xdsresource.StringMatch{Kind: xdsresource.MatchPrefix, Value: s}
}

// Suffix matches strings that end with s.
func Suffix(s string) xdsresource.StringMatch {
	return xdsresource.StringMatch{Kind: xdsresource.MatchSuffix, Value: s}
}

// Regex matches strings the RE2 expression re matches whole.
func Regex(re string) xdsresource.StringMatch {
	return xdsresource.StringMatch{Kind: xdsresource.MatchRegex, Value: re}
}

// AnyPrincipal matches every client.
func AnyPrincipal() Principal { return Principal{Any: true} }

// PrincipalName matches the client's SPIFFE ID.
func PrincipalName(m xdsresource.StringMatch) Principal { return Principal{Name: &m} }

// PeerCluster matches the client's cluster.
func PeerCluster(m xdsresource.StringMatch) Principal {
	return Principal{FilterState: &xdsresource.FilterStateMatch{Key: PeerClusterKey, Match: m}}
}

// PrincipalHeader matches a request header.
func PrincipalHeader(name string, m xdsresource.StringMatch) Principal {
	return Principal{Header: &xdsresource.HeaderMatch{Name: name, Match: m}}
}

// AndIDs matches when all of ids do.
func AndIDs(ids ...Principal) Principal { return Principal{And: ids} }

// OrIDs matches when one of ids does.
func OrIDs(ids ...Principal) Principal { return Principal{Or: ids} }

// NotID matches when id does not.
func NotID(id Principal) Principal { return Principal{Not: &id} }

// AnyPermission matches every request.
func AnyPermission() Permission { return Permission{Any: true} }

// Method matches the request method exactly.
func Method(m string) Permission { return HeaderPermission(":method", Exact(m)) }

// HeaderPermission matches a request header.
func HeaderPermission(name string, m xdsresource.StringMatch) Permission {
	return Permission{Header: &xdsresource.HeaderMatch{Name: name, Match: m}}
}

// Path matches the request path without the query.
func Path(m xdsresource.StringMatch) Permission { return Permission{Path: &m} }

// ServerName matches the SNI (a service port, for to.ports).
func ServerName(sni string) Permission {
	m := Exact(sni)
	return Permission{ServerName: &m}
}

// AndRules matches when all of rs do.
func AndRules(rs ...Permission) Permission { return Permission{And: rs} }

// OrRules matches when one of rs does.
func OrRules(rs ...Permission) Permission { return Permission{Or: rs} }

// NotRule matches when r does not.
func NotRule(r Permission) Permission { return Permission{Not: &r} }

// Policy matches when one of perms and one of ids match.
func Policy(perms []Permission, ids []Principal) xdsresource.RBACPolicy {
	return xdsresource.RBACPolicy{Permissions: perms, Principals: ids}
}

// Policies are RBAC policies by name (ns[NS]-policy[NAME]-rule[N]).
type Policies map[string]xdsresource.RBACPolicy

// RBAC is one filter of action with ps, policies in name order.
func (ps Policies) RBAC(action xdsresource.RBACAction) xdsresource.RBAC {
	r := xdsresource.RBAC{Action: action}
	for name, p := range ps {
		p.Name = name
		r.Policies = append(r.Policies, p)
	}
	sort.Slice(r.Policies, func(i, j int) bool { return r.Policies[i].Name < r.Policies[j].Name })
	return r
}

// Authz is the authorization of one inbound port: AUDIT, DENY and ALLOW
// policies, each filter present only when it has policies, except ALLOW
// when DefaultDeny is set (an ALLOW filter with what Allow holds, possibly
// nothing, which then denies everything).
type Authz struct {
	Audit, Deny, Allow Policies
	DefaultDeny        bool
}

// Rules returns the RBAC filters in the order they run.
func (a *Authz) Rules() []xdsresource.RBAC {
	var out []xdsresource.RBAC
	if len(a.Audit) > 0 {
		out = append(out, a.Audit.RBAC(xdsresource.RBACLog))
	}
	if len(a.Deny) > 0 {
		out = append(out, a.Deny.RBAC(xdsresource.RBACDeny))
	}
	if len(a.Allow) > 0 || a.DefaultDeny {
		out = append(out, a.Allow.RBAC(xdsresource.RBACAllow))
	}
	return out
}

// AuthzPort is an inbound port with its authorization and rate limits;
// both nil send the old shape (tcp_proxy only).
type AuthzPort struct {
	InboundPort
	Authz *Authz
	// RateLimit is the port's local rate limit filter (HTTP) or network
	// filters (TCP), as docs/ratelimit.md renders them.
	RateLimit *xdsresource.RateLimit
}

// InboundAuthz builds the inbound listener inbound|ADDR in the shapes of
// docs/xds.md "Inbound authorization" (an HTTP port: the HCM with its RBAC
// filters; a TCP port: network RBAC filters before tcp_proxy) and, after
// it, the STATIC inbound clusters, as Inbound does.
func InboundAuthz(addr string, ports ...AuthzPort) []types.Resource {
	host, port := mustSplit(addr)
	sort.SliceStable(ports, func(i, j int) bool { return ports[i].SP.String() < ports[j].SP.String() })
	var chains []xdsresource.InboundChain
	var clusters []types.Resource
	for _, ip := range ports {
		cluster := ip.SP.InboundCluster()
		ch := xdsresource.InboundChain{SNI: ip.SP.SNI(), ALPN: xdsresource.ALPN(ip.HTTP || ip.GRPC), Cluster: cluster}
		if ip.Authz != nil {
			ch.HTTP = ip.HTTP || ip.GRPC
			ch.RBAC = ip.Authz.Rules()
		}
		if ip.RateLimit != nil {
			ch.HTTP = ip.HTTP || ip.GRPC
			ch.RateLimit = ip.RateLimit
		}
		chains = append(chains, ch)
		ah, ap := mustSplit(ip.App)
		clusters = append(clusters, xdsresource.StaticCluster(cluster, ah, ap, 5*time.Second, ip.GRPC))
	}
	return append([]types.Resource{xdsresource.InboundListener(host, port, chains)}, clusters...)
}

// AddUnsupportedPolicy adds policy name, matching every request from a
// remote_ip principal (which the sidecar does not support), to the first
// RBAC filter of action of every chain of l, HTTP or network: the input
// of tests that the sidecar refuses what it cannot enforce. It reports
// whether it found such a filter.
func AddUnsupportedPolicy(l *listenerv3.Listener, action rbacv3.RBAC_Action, name string) bool {
	bad := &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
		Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_RemoteIp{}}},
	}
	found := false
	edit := func(r *rbacv3.RBAC) bool {
		if r.GetAction() != action {
			return false
		}
		r.Policies[name] = bad
		found = true
		return true
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			var nr netrbacv3.RBAC
			switch {
			case f.GetTypedConfig().UnmarshalTo(&nr) == nil:
				if edit(nr.GetRules()) {
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdsresource.Any(&nr)}
				}
			case f.GetTypedConfig().UnmarshalTo(&hcm) == nil:
				for _, hf := range hcm.GetHttpFilters() {
					var hr httprbacv3.RBAC
					if hf.GetTypedConfig().UnmarshalTo(&hr) == nil && edit(hr.GetRules()) {
						hf.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdsresource.Any(&hr)}
						f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdsresource.Any(&hcm)}
						break
					}
				}
			}
		}
	}
	return found
}
