package xdsresource

import (
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// This file builds the route shapes of a route in force from a plain
// description (RuleSpec): matchers, weighted clusters, filters, retry
// policy, fault injection. The sidecar's tests and benchmarks use it to
// drive real sidecars with the resources the control plane sends.

// FaultFilter names envoy.filters.http.fault, the key of a route's
// typed_per_filter_config.
const FaultFilter = "envoy.filters.http.fault"

// RuleSpec describes one Envoy Route.
type RuleSpec struct {
	// Name is the route name ("NS/ROUTE/rule-I").
	Name string
	// Match selects requests.
	Match RuleMatch
	// Backends: one gives action cluster, more weighted_clusters.
	Backends []RuleBackend
	// Timeout, when set, is the route's timeout (0: none).
	Timeout *time.Duration
	// Retry, when set, is the route's retry policy.
	Retry *RuleRetry
	// Hash are hash policies, for RING_HASH clusters.
	Hash []RuleHash
	// PrefixRewrite replaces the matched prefix.
	PrefixRewrite string
	// FullPathRewrite replaces the whole path (regex_rewrite "^/.*$").
	FullPathRewrite string
	// HostRewrite is host_rewrite_literal.
	HostRewrite string
	// Mirrors are request_mirror_policies.
	Mirrors []RuleMirror
	// Redirect, when set, makes the route a redirect.
	Redirect *RuleRedirect
	// DirectStatus, when set, makes the route a direct_response.
	DirectStatus uint32
	// DirectBody is the direct response's body.
	DirectBody string
	// RequestHeaders and ResponseHeaders modify headers on the route.
	RequestHeaders, ResponseHeaders RuleHeaderMods
	// Fault, when set, is the route's HTTPFault.
	Fault *RuleFault
}

// RuleMatch is a RouteMatch: one path kind, headers, query, method.
type RuleMatch struct {
	// Prefix, SeparatedPrefix, Exact, Regex: the first that is set wins;
	// none is prefix "/".
	Prefix, SeparatedPrefix, Exact, Regex string
	// IgnoreCase sets case_sensitive false.
	IgnoreCase bool
	// Headers must all match.
	Headers []RuleHeader
	// Query must all match.
	Query []RuleQuery
	// Method, when set, is a ":method" exact match.
	Method string
}

// RuleHeader is one HeaderMatcher: Exact, else Regex, else present.
type RuleHeader struct {
	Name, Exact, Regex string
	// Absent matches a missing header (present_match false).
	Absent bool
	Invert bool
}

// RuleQuery is one QueryParameterMatcher: Exact, else Regex.
type RuleQuery struct{ Name, Exact, Regex string }

// RuleBackend is one (weighted) cluster.
type RuleBackend struct {
	Cluster string
	Weight  uint32
	// RequestHeaders and ResponseHeaders modify headers for this backend.
	RequestHeaders, ResponseHeaders RuleHeaderMods
}

// RuleHeaderMods are *_headers_to_add (Set overwrites, Add appends) and
// *_headers_to_remove.
type RuleHeaderMods struct {
	Set, Add [][2]string
	Remove   []string
}

// RuleRetry is a RetryPolicy.
type RuleRetry struct {
	RetryOn       string
	NumRetries    uint32
	PerTryTimeout time.Duration
	// BackOffBase, when set, is retry_back_off base_interval.
	BackOffBase, BackOffMax time.Duration
	StatusCodes             []uint32
}

// RuleHash is one hash policy: Header, Cookie or Query, or SourceIP.
type RuleHash struct {
	Header, Cookie, Query string
	SourceIP, Terminal    bool
}

// RuleMirror mirrors PerMillion of the requests to Cluster.
type RuleMirror struct {
	Cluster    string
	PerMillion uint32
}

// RuleRedirect is a RedirectAction.
type RuleRedirect struct {
	Scheme, Host        string
	Port                uint32
	Path, PrefixRewrite string
	// Code is the HTTP status: 301 (default), 302, 303, 307 or 308.
	Code int
}

// RuleFault is an HTTPFault: a fixed delay and/or an abort with an HTTP
// status or (GRPC set) a gRPC status, each on a share of requests per
// million, for requests matching Headers.
type RuleFault struct {
	Delay           time.Duration
	DelayPerMillion uint32
	AbortHTTP       uint32
	GRPC            bool
	AbortGRPC       uint32
	AbortPerMillion uint32
	Headers         []RuleHeader
}

// RuleRoute builds the Envoy Route that r describes.
func RuleRoute(r RuleSpec) *routev3.Route {
	out := &routev3.Route{Name: r.Name, Match: ruleMatch(r.Match)}
	out.RequestHeadersToAdd, out.RequestHeadersToRemove = ruleHeaderMods(r.RequestHeaders)
	out.ResponseHeadersToAdd, out.ResponseHeadersToRemove = ruleHeaderMods(r.ResponseHeaders)
	switch {
	case r.Redirect != nil:
		out.Action = &routev3.Route_Redirect{Redirect: ruleRedirect(r.Redirect)}
	case r.DirectStatus != 0:
		out.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: r.DirectStatus,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: r.DirectBody}},
		}}
	default:
		out.Action = &routev3.Route_Route{Route: ruleAction(r)}
	}
	if r.Fault != nil {
		out.TypedPerFilterConfig = map[string]*anypb.Any{FaultFilter: Any(ruleFault(r.Fault))}
	}
	return out
}

// RuleVirtualHost is the virtual host of service port sp (domains as
// VirtualHost's) with the given routes.
func RuleVirtualHost(sp naming.ServicePort, routes ...*routev3.Route) *routev3.VirtualHost {
	host, short := sp.Host(), sp.Name+"."+sp.Namespace
	port := strconv.Itoa(int(sp.Port))
	return &routev3.VirtualHost{
		Name:    host + ":" + port,
		Domains: []string{host, host + ":" + port, short, short + ":" + port},
		Routes:  routes,
	}
}

// WithRingHash makes c a RING_HASH cluster with the given ring sizes
// (XX_HASH).
func WithRingHash(c *clusterv3.Cluster, minSize, maxSize uint64) *clusterv3.Cluster {
	c.LbPolicy = clusterv3.Cluster_RING_HASH
	c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
		MinimumRingSize: wrapperspb.UInt64(minSize),
		MaximumRingSize: wrapperspb.UInt64(maxSize),
		HashFunction:    clusterv3.Cluster_RingHashLbConfig_XX_HASH,
	}}
	return c
}

// WithRoundRobin makes c a ROUND_ROBIN cluster.
func WithRoundRobin(c *clusterv3.Cluster) *clusterv3.Cluster {
	c.LbPolicy, c.LbConfig = clusterv3.Cluster_ROUND_ROBIN, nil
	return c
}

// WithIdleTimeout sets c's upstream idle timeout.
func WithIdleTimeout(c *clusterv3.Cluster, d time.Duration) *clusterv3.Cluster {
	if c.TypedExtensionProtocolOptions == nil {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{}
	}
	c.TypedExtensionProtocolOptions[HTTPProtocolOptionsKey] = Any(&upstreamhttpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(d)},
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamHttpConfig{},
		},
	})
	return c
}

func regexMatcher(re string) *matcherv3.RegexMatcher { return &matcherv3.RegexMatcher{Regex: re} }

func ruleMatch(m RuleMatch) *routev3.RouteMatch {
	out := &routev3.RouteMatch{}
	switch {
	case m.Prefix != "":
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.Prefix}
	case m.SeparatedPrefix != "":
		out.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: m.SeparatedPrefix}
	case m.Exact != "":
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: m.Exact}
	case m.Regex != "":
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher(m.Regex)}
	default:
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	}
	if m.IgnoreCase {
		out.CaseSensitive = wrapperspb.Bool(false)
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, ruleHeader(h))
	}
	if m.Method != "" {
		out.Headers = append(out.Headers, ruleHeader(RuleHeader{Name: ":method", Exact: m.Method}))
	}
	for _, q := range m.Query {
		sm := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: q.Exact}}
		if q.Regex != "" {
			sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(q.Regex)}
		}
		out.QueryParameters = append(out.QueryParameters, &routev3.QueryParameterMatcher{
			Name: q.Name, QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm},
		})
	}
	return out
}

func ruleHeader(h RuleHeader) *routev3.HeaderMatcher {
	out := &routev3.HeaderMatcher{Name: h.Name, InvertMatch: h.Invert}
	switch {
	case h.Exact != "":
		out.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Exact}}}
	case h.Regex != "":
		out.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(h.Regex)}}}
	default:
		out.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: !h.Absent}
	}
	return out
}

func ruleHeaderMods(m RuleHeaderMods) ([]*corev3.HeaderValueOption, []string) {
	var add []*corev3.HeaderValueOption
	for _, kv := range m.Set {
		add = append(add, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: kv[0], Value: kv[1]}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	for _, kv := range m.Add {
		add = append(add, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: kv[0], Value: kv[1]}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD})
	}
	return add, m.Remove
}

func millionths(n uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_MILLION}
}

func ruleAction(r RuleSpec) *routev3.RouteAction {
	a := &routev3.RouteAction{}
	if len(r.Backends) == 1 && r.Backends[0].RequestHeaders.empty() && r.Backends[0].ResponseHeaders.empty() {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: r.Backends[0].Cluster}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, b := range r.Backends {
			cw := &routev3.WeightedCluster_ClusterWeight{Name: b.Cluster, Weight: wrapperspb.UInt32(b.Weight)}
			cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = ruleHeaderMods(b.RequestHeaders)
			cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = ruleHeaderMods(b.ResponseHeaders)
			wc.Clusters = append(wc.Clusters, cw)
		}
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if r.Timeout != nil {
		a.Timeout = durationpb.New(*r.Timeout)
	}
	if rr := r.Retry; rr != nil {
		rp := &routev3.RetryPolicy{
			RetryOn:                       rr.RetryOn,
			NumRetries:                    wrapperspb.UInt32(rr.NumRetries),
			RetriableStatusCodes:          rr.StatusCodes,
			HostSelectionRetryMaxAttempts: 3,
		}
		if rr.PerTryTimeout > 0 {
			rp.PerTryTimeout = durationpb.New(rr.PerTryTimeout)
		}
		if rr.BackOffBase > 0 {
			rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(rr.BackOffBase)}
			if rr.BackOffMax > 0 {
				rp.RetryBackOff.MaxInterval = durationpb.New(rr.BackOffMax)
			}
		}
		a.RetryPolicy = rp
	}
	for _, h := range r.Hash {
		hp := &routev3.RouteAction_HashPolicy{Terminal: h.Terminal}
		switch {
		case h.Header != "":
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: h.Header}}
		case h.Cookie != "":
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: h.Cookie}}
		case h.Query != "":
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: h.Query}}
		default:
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
		}
		a.HashPolicy = append(a.HashPolicy, hp)
	}
	a.PrefixRewrite = r.PrefixRewrite
	if r.FullPathRewrite != "" {
		a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: regexMatcher("^/.*$"), Substitution: r.FullPathRewrite}
	}
	if r.HostRewrite != "" {
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: r.HostRewrite}
	}
	for _, m := range r.Mirrors {
		a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster:         m.Cluster,
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: millionths(m.PerMillion)},
		})
	}
	return a
}

func (m RuleHeaderMods) empty() bool { return len(m.Set) == 0 && len(m.Add) == 0 && len(m.Remove) == 0 }

var redirectCodes = map[int]routev3.RedirectAction_RedirectResponseCode{
	0: routev3.RedirectAction_MOVED_PERMANENTLY, 301: routev3.RedirectAction_MOVED_PERMANENTLY,
	302: routev3.RedirectAction_FOUND, 303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT, 308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

func ruleRedirect(r *RuleRedirect) *routev3.RedirectAction {
	out := &routev3.RedirectAction{HostRedirect: r.Host, PortRedirect: r.Port, ResponseCode: redirectCodes[r.Code]}
	if r.Scheme != "" {
		out.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	switch {
	case r.Path != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.Path}
	case r.PrefixRewrite != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.PrefixRewrite}
	}
	return out
}

func ruleFault(f *RuleFault) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if f.Delay > 0 {
		out.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(f.Delay)},
			Percentage:         millionths(f.DelayPerMillion),
		}
	}
	switch {
	case f.GRPC:
		out.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: f.AbortGRPC}, Percentage: millionths(f.AbortPerMillion)}
	case f.AbortHTTP != 0:
		out.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: f.AbortHTTP}, Percentage: millionths(f.AbortPerMillion)}
	}
	for _, h := range f.Headers {
		out.Headers = append(out.Headers, ruleHeader(h))
	}
	return out
}
