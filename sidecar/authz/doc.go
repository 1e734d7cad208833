// Package authz evaluates Envoy RBAC configurations (config.rbac.v3.RBAC,
// as carried by the envoy.filters.http.rbac and envoy.filters.network.rbac
// filters) against one request or connection. It is pure: it compiles
// protobuf configurations into immutable matchers once, and evaluating a
// Request against them does no I/O and, unless a LOG policy matches, no
// allocation.
//
// The semantics follow Envoy's RBAC filter documentation
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/rbac_filter
// and https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/rbac/v3/rbac.proto):
//
//   - a Policy matches when ANY of its permissions AND ANY of its
//     principals match;
//   - a filter with action ALLOW lets a request through when one of its
//     policies matches and denies it otherwise, so an ALLOW filter with no
//     policies denies everything; DENY denies when one matches; LOG
//     records the match and never denies;
//   - the filters of a chain run in order and the first denial wins; the
//     policies of one filter are tried in name order, and the first match
//     names the policy.
//
// Only the matchers fedmesh's control plane emits are supported
// (docs/xds.md, "Inbound authorization"): principals any, authenticated
// (principal_name), filter_state io.fedmesh.peer_cluster, header,
// and_ids, or_ids, not_id; permissions any, header, url_path,
// requested_server_name, and_rules, or_rules, not_rule; string matchers
// exact, prefix, suffix, contains and safe_regex (RE2, full match). Anything
// else (other matcher types, the matcher and shadow fields, CEL
// conditions, audit logging options) is refused by the compiler with an
// error that names the field, so a configuration is either enforced
// exactly or not at all.
//
//	f, err := authz.NewHTTPFilter(cfg) // *envoy.extensions.filters.http.rbac.v3.RBAC
//	eng := authz.NewEngine(f)
//	d := eng.Authorize(&authz.Request{Principal: id, PeerCluster: "east-1", Method: "GET", Path: "/"})
//	if !d.Allowed { ... d.Reason, d.Policy ... }
package authz
