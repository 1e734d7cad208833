package xdsresource

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// This file builds the routes of docs/xds.md ("Routes"): one Envoy route
// per match of a Gateway API route rule, with matchers, weighted
// clusters, retries, timeouts, header modifiers, rewrites, redirects,
// mirrors, hash policies and the fault filter's per-route config.

// PathKind is how a RouteRule matches the path: "exact", "prefix" or
// "regex".
type PathKind string

// Path match kinds. A prefix not ending in "/" matches whole segments
// (path_separated_prefix).
const (
	PathExact  PathKind = "exact"
	PathPrefix PathKind = "prefix"
	PathRegex  PathKind = "regex"
)

// RouteRule is one Envoy route.
type RouteRule struct {
	// Name is NS/ROUTE/rule-I[/match-J] or "default".
	Name     string
	PathKind PathKind
	Path     string
	Headers  []HeaderMatch
	// Query matches query parameters (HeaderMatch.Name is the parameter).
	Query  []HeaderMatch
	Method string

	// Clusters share the requests by weight; one cluster without header
	// modifiers renders as `cluster`, more as `weighted_clusters`.
	Clusters []WeightedCluster
	// DirectStatus answers every request itself (no backend).
	DirectStatus uint32
	Redirect     *Redirect

	// Timeout bounds the request; 0 disables it. MaxStreamDuration also
	// sets max_stream_duration (what grpc-go reads).
	Timeout           time.Duration
	MaxStreamDuration bool
	Retry             *Retry
	Fault             *Fault
	Mirrors           []Mirror
	RequestHeaders    HeaderModifier
	ResponseHeaders   HeaderModifier
	Rewrite           *Rewrite
	Hash              []HashPolicy
}

// WeightedCluster is one cluster of a route with its weight and its own
// header modifiers.
type WeightedCluster struct {
	Name            string
	Weight          uint32
	RequestHeaders  HeaderModifier
	ResponseHeaders HeaderModifier
}

// Header is a header name and value.
type Header struct{ Name, Value string }

// HeaderModifier sets (overwrites), adds (appends) and removes headers.
type HeaderModifier struct {
	Set, Add []Header
	Remove   []string
}

// Redirect answers with a redirect.
type Redirect struct {
	Scheme, Hostname string
	Port             uint32
	// FullPath or PrefixPath (one at most) replace the path or the
	// matched prefix.
	FullPath, PrefixPath *string
	// StatusCode is 301, 302, 303, 307 or 308.
	StatusCode int
}

// Rewrite changes the request before it is forwarded.
type Rewrite struct {
	Hostname             string
	FullPath, PrefixPath *string
}

// Mirror copies Percent percent of requests to Cluster.
type Mirror struct {
	Cluster string
	Percent float64
}

// Retry is a route's retry policy.
type Retry struct {
	On            []string
	StatusCodes   []uint32
	NumRetries    uint32
	PerTryTimeout time.Duration
	BaseInterval  time.Duration
	MaxInterval   time.Duration
}

// HashPolicy is one ring hash key; exactly one field is set.
type HashPolicy struct {
	Header, Cookie, QueryParameter string
	SourceIP                       bool
}

// RouteOf renders r; proxyless renders it for grpc-go, which rejects a
// whole route configuration holding path_separated_prefix: a
// segment-wise prefix is a safe_regex there.
func RouteOf(r *RouteRule, proxyless bool) *routev3.Route {
	out := &routev3.Route{Name: r.Name, Match: routeMatch(r, proxyless)}
	switch {
	case r.Redirect != nil:
		out.Action = &routev3.Route_Redirect{Redirect: redirectAction(r.Redirect)}
	case len(r.Clusters) == 0:
		status := r.DirectStatus
		if status == 0 {
			status = 500
		}
		out.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: status}}
	default:
		out.Action = &routev3.Route_Route{Route: routeAction(r, proxyless)}
	}
	out.RequestHeadersToAdd, out.RequestHeadersToRemove = headersToAdd(r.RequestHeaders), r.RequestHeaders.Remove
	out.ResponseHeadersToAdd, out.ResponseHeadersToRemove = headersToAdd(r.ResponseHeaders), r.ResponseHeaders.Remove
	if r.Fault != nil {
		out.TypedPerFilterConfig = map[string]*anypb.Any{wellknown.Fault: Any(HTTPFault(r.Fault))}
	}
	return out
}

// RoutesOf is RouteOf as one or more routes: grpc-go ignores a fault's
// header matches (it applies the fault to every request of the route),
// so for proxyless a fault with headers becomes a route whose match
// holds them too, with the fault, followed by the route without it.
func RoutesOf(r *RouteRule, proxyless bool) []*routev3.Route {
	if !proxyless || r.Fault == nil || len(r.Fault.Headers) == 0 {
		return []*routev3.Route{RouteOf(r, proxyless)}
	}
	faulted, plain := *r, *r
	faulted.Headers = append(slices.Clone(r.Headers), r.Fault.Headers...)
	f := *r.Fault
	f.Headers = nil
	faulted.Fault, plain.Fault = &f, nil
	return []*routev3.Route{RouteOf(&faulted, true), RouteOf(&plain, true)}
}

func routeMatch(r *RouteRule, proxyless bool) *routev3.RouteMatch {
	m := &routev3.RouteMatch{}
	switch r.PathKind {
	case PathExact:
		m.PathSpecifier = &routev3.RouteMatch_Path{Path: r.Path}
	case PathRegex:
		m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: r.Path}}
	default:
		switch {
		case r.Path == "" || strings.HasSuffix(r.Path, "/"):
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: cmpOr(r.Path, "/")}
		case proxyless:
			m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: regexp.QuoteMeta(r.Path) + "(/.*)?"}}
		default:
			m.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: r.Path}
		}
	}
	for i := range r.Headers {
		m.Headers = append(m.Headers, headerMatcher(&r.Headers[i]))
	}
	if r.Method != "" {
		m.Headers = append(m.Headers, headerMatcher(&HeaderMatch{Name: ":method", Match: StringMatch{Kind: MatchExact, Value: r.Method}}))
	}
	for _, q := range r.Query {
		m.QueryParameters = append(m.QueryParameters, &routev3.QueryParameterMatcher{
			Name:                         q.Name,
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: StringMatcher(q.Match)},
		})
	}
	return m
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func routeAction(r *RouteRule, proxyless bool) *routev3.RouteAction {
	a := &routev3.RouteAction{Timeout: durationpb.New(r.Timeout)}
	if c := r.Clusters; len(c) == 1 && c[0].RequestHeaders.empty() && c[0].ResponseHeaders.empty() {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: c[0].Name}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, c := range r.Clusters {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
				Name:                    c.Name,
				Weight:                  wrapperspb.UInt32(c.Weight),
				RequestHeadersToAdd:     headersToAdd(c.RequestHeaders),
				RequestHeadersToRemove:  c.RequestHeaders.Remove,
				ResponseHeadersToAdd:    headersToAdd(c.ResponseHeaders),
				ResponseHeadersToRemove: c.ResponseHeaders.Remove,
			})
		}
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if r.MaxStreamDuration {
		a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(r.Timeout)}
	}
	if r.Retry != nil {
		a.RetryPolicy = retryPolicy(r.Retry, proxyless)
	}
	if rw := r.Rewrite; rw != nil {
		if rw.Hostname != "" {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Hostname}
		}
		switch {
		case rw.FullPath != nil:
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^/.*$"}, Substitution: *rw.FullPath}
		case rw.PrefixPath != nil && *rw.PrefixPath == "/" && r.Path != "/" && r.Path != "":
			// Replacing "/foo" by "/" in "/foo/bar" must give "/bar",
			// not "//bar".
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
				Pattern: &matcherv3.RegexMatcher{Regex: "^" + regexp.QuoteMeta(r.Path) + "/*"}, Substitution: "/",
			}
		case rw.PrefixPath != nil:
			a.PrefixRewrite = *rw.PrefixPath
		}
	}
	for _, m := range r.Mirrors {
		a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster:         m.Cluster,
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: FractionalPercent(m.Percent)},
		})
	}
	for _, h := range r.Hash {
		a.HashPolicy = append(a.HashPolicy, hashPolicy(h))
	}
	return a
}

// FractionalPercent is pct percent in millionths.
func FractionalPercent(pct float64) *typev3.FractionalPercent {
	n := math.Round(min(100, max(0, pct)) * 10000)
	return &typev3.FractionalPercent{Numerator: uint32(n), Denominator: typev3.FractionalPercent_MILLION}
}

func (m HeaderModifier) empty() bool { return len(m.Set) == 0 && len(m.Add) == 0 && len(m.Remove) == 0 }

func headersToAdd(m HeaderModifier) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, h := range m.Set {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, h := range m.Add {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

func redirectAction(r *Redirect) *routev3.RedirectAction {
	a := &routev3.RedirectAction{HostRedirect: r.Hostname, PortRedirect: r.Port}
	if r.Scheme != "" {
		a.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	switch {
	case r.FullPath != nil:
		a.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: *r.FullPath}
	case r.PrefixPath != nil:
		a.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: *r.PrefixPath}
	}
	switch r.StatusCode {
	case 301:
		a.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	case 303:
		a.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		a.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		a.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	default:
		a.ResponseCode = routev3.RedirectAction_FOUND
	}
	return a
}

func retryPolicy(r *Retry, proxyless bool) *routev3.RetryPolicy {
	on := r.On
	if proxyless {
		var ok bool
		if on, ok = grpcRetryOn(r.On, r.StatusCodes); !ok {
			// grpc-go would retry nothing: no policy.
			return nil
		}
	}
	p := &routev3.RetryPolicy{
		RetryOn:              strings.Join(on, ","),
		NumRetries:           wrapperspb.UInt32(r.NumRetries),
		RetriableStatusCodes: r.StatusCodes,
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name: "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{
				TypedConfig: Any(&previoushostsv3.PreviousHostsPredicate{}),
			},
		}},
		HostSelectionRetryMaxAttempts: 3,
	}
	if r.PerTryTimeout > 0 {
		p.PerTryTimeout = durationpb.New(r.PerTryTimeout)
	}
	if r.BaseInterval > 0 {
		p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(r.BaseInterval)}
		if r.MaxInterval >= r.BaseInterval {
			p.RetryBackOff.MaxInterval = durationpb.New(r.MaxInterval)
		}
	}
	return p
}

func hashPolicy(h HashPolicy) *routev3.RouteAction_HashPolicy {
	switch {
	case h.Header != "":
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: h.Header}}}
	case h.Cookie != "":
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: h.Cookie}}}
	case h.QueryParameter != "":
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: h.QueryParameter}}}
	}
	return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}
}

// VirtualHostRoutes is the virtual host of service port sp (the domains
// of VirtualHost) with the given routes, in order.
func VirtualHostRoutes(sp naming.ServicePort, routes []*routev3.Route, extraDomains ...string) *routev3.VirtualHost {
	host, short := sp.Host(), sp.Name+"."+sp.Namespace
	port := strconv.Itoa(int(sp.Port))
	return &routev3.VirtualHost{
		Name:    host + ":" + port,
		Domains: append([]string{host, host + ":" + port, short, short + ":" + port}, extraDomains...),
		Routes:  routes,
	}
}

// grpcRetryOn is on for grpc-go, which reads only the gRPC status names
// of retry_on (gRFC A44): on with "unavailable" added when on retries
// what a grpc-go client sees as UNAVAILABLE (a failed connection, a
// reset or refused stream, a gateway error, a 5xx, or one of the
// retriable HTTP statuses gRPC maps to UNAVAILABLE: 429, 502, 503,
// 504). ok is false when the result retries nothing grpc-go reads.
func grpcRetryOn(on []string, statusCodes []uint32) (out []string, ok bool) {
	wantUnavailable, hasUnavailable := false, false
	for _, cond := range on {
		for c := range strings.SplitSeq(cond, ",") {
			switch strings.TrimSpace(c) {
			case "cancelled", "deadline-exceeded", "internal", "resource-exhausted":
				ok = true
			case "unavailable":
				ok, hasUnavailable = true, true
			case "connect-failure", "refused-stream", "reset", "gateway-error", "5xx":
				wantUnavailable = true
			case "retriable-status-codes":
				for _, s := range statusCodes {
					if s == 429 || s == 502 || s == 503 || s == 504 {
						wantUnavailable = true
					}
				}
			}
		}
	}
	out = on
	if wantUnavailable && !hasUnavailable {
		out = append(slices.Clone(on), "unavailable")
		ok = true
	}
	return out, ok
}
