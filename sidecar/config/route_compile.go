package config

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
)

// This file compiles RDS routes into the types of routes.go, once per
// Apply: regular expressions compiled, header names canonical, clusters
// resolved; a resource the sidecar cannot obey exactly is refused.

// simpleRoute reports whether vh is the shape the control plane sends
// when no route is in force: one route, prefix "/", to the service's own
// cluster, with nothing else. Such a virtual host keeps the fast path
// (Service.Routes nil).
func simpleRoute(vh *routev3.VirtualHost, cluster string) (*routev3.RouteAction, bool) {
	if len(vh.GetRoutes()) != 1 || len(vh.GetTypedPerFilterConfig()) > 0 ||
		len(vh.GetRequestHeadersToAdd()) > 0 || len(vh.GetRequestHeadersToRemove()) > 0 ||
		len(vh.GetResponseHeadersToAdd()) > 0 || len(vh.GetResponseHeadersToRemove()) > 0 {
		return nil, false
	}
	r := vh.GetRoutes()[0]
	m := r.GetMatch()
	if _, ok := m.GetPathSpecifier().(*routev3.RouteMatch_Prefix); !ok || (m.GetPrefix() != "/" && m.GetPrefix() != "") ||
		len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 || m.GetRuntimeFraction() != nil || m.GetGrpc() != nil {
		return nil, false
	}
	if len(r.GetTypedPerFilterConfig()) > 0 || len(r.GetRequestHeadersToAdd()) > 0 || len(r.GetRequestHeadersToRemove()) > 0 ||
		len(r.GetResponseHeadersToAdd()) > 0 || len(r.GetResponseHeadersToRemove()) > 0 {
		return nil, false
	}
	ra := r.GetRoute()
	if ra == nil || ra.GetCluster() != cluster || len(ra.GetHashPolicy()) > 0 || ra.GetPrefixRewrite() != "" ||
		ra.GetRegexRewrite() != nil || ra.GetHostRewriteLiteral() != "" || len(ra.GetRequestMirrorPolicies()) > 0 {
		return nil, false
	}
	// The fast path's retry policy knows no per-try timeout or back-off.
	if rp := ra.GetRetryPolicy(); rp.GetPerTryTimeout() != nil || rp.GetRetryBackOff() != nil {
		return nil, false
	}
	return ra, true
}

// compileVirtualHost compiles every route of vh. clusters resolves
// backend cluster names.
func compileVirtualHost(vh *routev3.VirtualHost, clusters map[string]*Service) (*VirtualHost, error) {
	out := &VirtualHost{Name: vh.GetName(), Rules: make([]*Rule, 0, len(vh.GetRoutes()))}
	for i, r := range vh.GetRoutes() {
		rule, err := compileRule(r, clusters)
		if err != nil {
			name := r.GetName()
			if name == "" {
				name = "#" + strconv.Itoa(i)
			}
			return nil, fmt.Errorf("route %q: %w", name, err)
		}
		out.Rules = append(out.Rules, rule)
	}
	return out, nil
}

func compileRule(r *routev3.Route, clusters map[string]*Service) (*Rule, error) {
	rule := &Rule{Name: r.GetName()}
	m, err := compileMatch(r.GetMatch())
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	rule.Match = m
	if rule.RequestHeaders, err = headerMods(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove()); err != nil {
		return nil, fmt.Errorf("request_headers_to_add: %w", err)
	}
	if rule.ResponseHeaders, err = headerMods(r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove()); err != nil {
		return nil, fmt.Errorf("response_headers_to_add: %w", err)
	}
	for name, a := range r.GetTypedPerFilterConfig() {
		if name != FaultFilterName {
			continue // a filter the sidecar does not run
		}
		var hf faultv3.HTTPFault
		if err := a.UnmarshalTo(&hf); err != nil {
			return nil, fmt.Errorf("typed_per_filter_config %q: %w", name, err)
		}
		if rule.Fault, err = compileFault(&hf); err != nil {
			return nil, fmt.Errorf("typed_per_filter_config %q: %w", name, err)
		}
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		rule.Kind = ActionRoute
		if rule.Route, err = compileRouteAction(a.Route, clusters); err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
	case *routev3.Route_Redirect:
		rule.Kind = ActionRedirect
		if rule.Redirect, err = compileRedirect(a.Redirect); err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
	case *routev3.Route_DirectResponse:
		rule.Kind = ActionDirect
		st := a.DirectResponse.GetStatus()
		if st < 200 || st > 599 {
			return nil, fmt.Errorf("direct_response: status %d is not 200 to 599", st)
		}
		rule.Direct = &DirectResponse{Status: int(st), Body: string(dataSource(a.DirectResponse.GetBody()))}
	default:
		return nil, fmt.Errorf("action %T is not supported (want route, redirect or direct_response)", r.GetAction())
	}
	return rule, nil
}

func compileMatch(m *routev3.RouteMatch) (RouteMatch, error) {
	var out RouteMatch
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		out.IgnoreCase = true
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.PathKind, out.Path = PathPrefix, p.Prefix
	case *routev3.RouteMatch_PathSeparatedPrefix:
		v := p.PathSeparatedPrefix
		if !strings.HasPrefix(v, "/") || (len(v) > 1 && strings.HasSuffix(v, "/")) || strings.ContainsAny(v, "?#") {
			return out, fmt.Errorf("path_separated_prefix %q must start with / and not end with / or hold ? or #", v)
		}
		out.PathKind, out.Path = PathSeparatedPrefix, v
	case *routev3.RouteMatch_Path:
		out.PathKind, out.Path = PathExact, p.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(p.SafeRegex.GetRegex(), out.IgnoreCase)
		if err != nil {
			return out, fmt.Errorf("safe_regex: %w", err)
		}
		out.PathKind, out.Regex = PathRegex, re
	case nil:
		return out, errors.New("no path specifier")
	default:
		return out, fmt.Errorf("path specifier %T is not supported", p)
	}
	if m.GetGrpc() != nil || m.GetRuntimeFraction() != nil || m.GetTlsContext() != nil || len(m.GetDynamicMetadata()) > 0 {
		return out, errors.New("grpc, runtime_fraction, tls_context and dynamic_metadata matches are not supported")
	}
	for _, h := range m.GetHeaders() {
		hm, err := compileHeaderMatch(h)
		if err != nil {
			return out, fmt.Errorf("header %q: %w", h.GetName(), err)
		}
		out.Headers = append(out.Headers, hm)
	}
	for _, q := range m.GetQueryParameters() {
		qm := QueryMatch{Name: q.GetName()}
		if qm.Name == "" {
			return out, errors.New("query parameter without a name")
		}
		switch s := q.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_StringMatch:
			sm, err := compileString(s.StringMatch)
			if err != nil {
				return out, fmt.Errorf("query parameter %q: %w", qm.Name, err)
			}
			qm.String = sm
		case *routev3.QueryParameterMatcher_PresentMatch:
			qm.String = StringMatch{Kind: StringPresent, Absent: !s.PresentMatch}
		default:
			return out, fmt.Errorf("query parameter %q: no match specifier", qm.Name)
		}
		out.Query = append(out.Query, qm)
	}
	return out, nil
}

// compileRegex compiles an RE2 pattern that must match a whole value.
func compileRegex(pattern string, ignoreCase bool) (*regexp.Regexp, error) {
	if len(pattern) > maxRegexLen {
		return nil, fmt.Errorf("regex is %d bytes, longer than %d", len(pattern), maxRegexLen)
	}
	flags := ""
	if ignoreCase {
		flags = "(?i)"
	}
	re, err := regexp.Compile(flags + "^(?:" + pattern + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", pattern, err)
	}
	return re, nil
}

func compileString(s *matcherv3.StringMatcher) (StringMatch, error) {
	out := StringMatch{IgnoreCase: s.GetIgnoreCase()}
	switch p := s.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Kind, out.Value = StringExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.Kind, out.Value = StringPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.Kind, out.Value = StringSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.Kind, out.Value = StringContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex.GetRegex(), out.IgnoreCase)
		if err != nil {
			return out, err
		}
		out.Kind, out.Regex = StringRegex, re
	default:
		return out, fmt.Errorf("string matcher %T is not supported", p)
	}
	return out, nil
}

func compileHeaderMatch(h *routev3.HeaderMatcher) (HeaderMatch, error) {
	name := h.GetName()
	if name == "" {
		return HeaderMatch{}, errors.New("no name")
	}
	out := HeaderMatch{Name: canonicalName(name), Invert: h.GetInvertMatch()}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := compileString(s.StringMatch)
		if err != nil {
			return out, err
		}
		out.String = sm
	case *routev3.HeaderMatcher_ExactMatch:
		//lint:ignore SA1019 deprecated, but a valid Envoy resource may still use it
		out.String = StringMatch{Kind: StringExact, Value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		//lint:ignore SA1019 deprecated, but a valid Envoy resource may still use it
		out.String = StringMatch{Kind: StringPrefix, Value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		//lint:ignore SA1019 deprecated, but a valid Envoy resource may still use it
		out.String = StringMatch{Kind: StringSuffix, Value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		//lint:ignore SA1019 deprecated, but a valid Envoy resource may still use it
		out.String = StringMatch{Kind: StringContains, Value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		//lint:ignore SA1019 deprecated, but a valid Envoy resource may still use it
		re, err := compileRegex(s.SafeRegexMatch.GetRegex(), false)
		if err != nil {
			return out, err
		}
		out.String = StringMatch{Kind: StringRegex, Regex: re}
	case *routev3.HeaderMatcher_PresentMatch:
		out.String = StringMatch{Kind: StringPresent, Absent: !s.PresentMatch}
	case nil:
		// Envoy: no specifier means "present".
		out.String = StringMatch{Kind: StringPresent}
	default:
		return out, fmt.Errorf("header matcher %T is not supported", s)
	}
	return out, nil
}

// canonicalName keeps pseudo-headers as they are and puts other header
// names in Go's canonical form, so that matching indexes http.Header
// without converting per request.
func canonicalName(name string) string {
	if strings.HasPrefix(name, ":") {
		return strings.ToLower(name)
	}
	return http.CanonicalHeaderKey(name)
}

func headerMods(add []*corev3.HeaderValueOption, remove []string) (HeaderMods, error) {
	var m HeaderMods
	for _, k := range remove {
		if k == "" || strings.HasPrefix(k, ":") || strings.EqualFold(k, "host") {
			return m, fmt.Errorf("cannot remove header %q", k)
		}
		m.Remove = append(m.Remove, canonicalName(k))
	}
	for _, o := range add {
		k := o.GetHeader().GetKey()
		if k == "" || strings.HasPrefix(k, ":") || strings.EqualFold(k, "host") {
			return m, fmt.Errorf("cannot set header %q", k)
		}
		v := o.GetHeader().GetValue()
		if raw := o.GetHeader().GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return m, fmt.Errorf("header %q: value holds CR, LF or NUL", k)
		}
		h := Header{Name: canonicalName(k), Value: v}
		action := o.GetAppendAction()
		// The deprecated append field wins when set.
		//lint:ignore SA1019 deprecated, but a valid Envoy resource may still use it
		if ap := o.GetAppend(); ap != nil {
			action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			if ap.GetValue() {
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
		}
		switch action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			m.Add = append(m.Add, h)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			m.Set = append(m.Set, h)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			m.AddIfAbsent = append(m.AddIfAbsent, h)
		default:
			return m, fmt.Errorf("header %q: append_action %v is not supported", k, action)
		}
	}
	return m, nil
}

// perMillion converts a FractionalPercent to parts per million, capped at
// a million. A nil percentage is 100% (Envoy's default for faults and
// mirrors).
func perMillion(p *typev3.FractionalPercent) uint32 {
	if p == nil {
		return 1_000_000
	}
	n := uint64(p.GetNumerator())
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	}
	return uint32(min(n, 1_000_000))
}

func compileFault(hf *faultv3.HTTPFault) (*Fault, error) {
	f := &Fault{AbortGRPC: -1}
	if d := hf.GetDelay(); d != nil {
		fd := d.GetFixedDelay()
		if fd == nil {
			return nil, errors.New("delay: only fixed_delay is supported")
		}
		if err := fd.CheckValid(); err != nil || fd.AsDuration() < 0 {
			return nil, fmt.Errorf("delay: fixed_delay %v is not a valid duration", fd)
		}
		f.Delay, f.DelayPerMillion = fd.AsDuration(), perMillion(d.GetPercentage())
	}
	if a := hf.GetAbort(); a != nil {
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus > 599 {
				return nil, fmt.Errorf("abort: http_status %d is not 200 to 599", e.HttpStatus)
			}
			f.AbortHTTP = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			if e.GrpcStatus > uint32(codes.Unauthenticated) {
				return nil, fmt.Errorf("abort: grpc_status %d is not a gRPC status code", e.GrpcStatus)
			}
			f.AbortGRPC = int(e.GrpcStatus)
		default:
			return nil, errors.New("abort: only http_status and grpc_status are supported")
		}
		f.AbortPerMillion = perMillion(a.GetPercentage())
	}
	if f.Delay == 0 && !f.HasAbort() {
		// Envoy's empty HTTPFault on a route does nothing.
		return nil, nil
	}
	for _, h := range hf.GetHeaders() {
		hm, err := compileHeaderMatch(h)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", h.GetName(), err)
		}
		f.Headers = append(f.Headers, hm)
	}
	return f, nil
}

func compileRouteAction(ra *routev3.RouteAction, clusters map[string]*Service) (*RouteAction, error) {
	out := &RouteAction{Timeout: DefaultTimeout, Retry: RetryPolicy{HostAttempts: 1}}
	switch cs := ra.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if cs.Cluster == "" {
			return nil, errors.New("empty cluster")
		}
		out.Backends = []Backend{{Cluster: cs.Cluster, Weight: 1, Service: clusters[cs.Cluster]}}
	case *routev3.RouteAction_WeightedClusters:
		for _, cw := range cs.WeightedClusters.GetClusters() {
			if cw.GetName() == "" {
				return nil, errors.New("weighted cluster without a name")
			}
			w := cw.GetWeight().GetValue()
			if w == 0 {
				continue // never chosen
			}
			b := Backend{Cluster: cw.GetName(), Weight: w, Service: clusters[cw.GetName()]}
			var err error
			if b.RequestHeaders, err = headerMods(cw.GetRequestHeadersToAdd(), cw.GetRequestHeadersToRemove()); err != nil {
				return nil, fmt.Errorf("weighted cluster %q: request_headers_to_add: %w", cw.GetName(), err)
			}
			if b.ResponseHeaders, err = headerMods(cw.GetResponseHeadersToAdd(), cw.GetResponseHeadersToRemove()); err != nil {
				return nil, fmt.Errorf("weighted cluster %q: response_headers_to_add: %w", cw.GetName(), err)
			}
			out.Backends = append(out.Backends, b)
			out.TotalWeight += uint64(w)
		}
		if out.TotalWeight == 0 {
			return nil, errors.New("weighted_clusters: no cluster has a weight above 0")
		}
	default:
		return nil, fmt.Errorf("cluster specifier %T is not supported (want cluster or weighted_clusters)", cs)
	}
	if len(out.Backends) == 1 {
		out.TotalWeight = uint64(out.Backends[0].Weight)
	}
	if d := ra.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, fmt.Errorf("timeout %v is not a valid duration", d)
		}
		out.Timeout = d.AsDuration()
	}
	if rp := ra.GetRetryPolicy(); rp != nil {
		p, err := compileRetry(rp)
		if err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
		out.Retry = p
	}
	for _, hp := range ra.GetHashPolicy() {
		h := HashPolicy{Terminal: hp.GetTerminal()}
		switch s := hp.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			h.Kind, h.Name = HashHeader, canonicalName(s.Header.GetHeaderName())
		case *routev3.RouteAction_HashPolicy_Cookie_:
			h.Kind, h.Name = HashCookie, s.Cookie.GetName()
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			h.Kind, h.Name = HashQuery, s.QueryParameter.GetName()
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			if !s.ConnectionProperties.GetSourceIp() {
				continue
			}
			h.Kind = HashSourceIP
		default:
			return nil, fmt.Errorf("hash_policy %T is not supported", s)
		}
		if h.Kind != HashSourceIP && h.Name == "" {
			return nil, errors.New("hash_policy without a name")
		}
		out.Hash = append(out.Hash, h)
	}
	out.PrefixRewrite = ra.GetPrefixRewrite()
	if rr := ra.GetRegexRewrite(); rr != nil {
		pat := rr.GetPattern().GetRegex()
		if len(pat) > maxRegexLen {
			return nil, fmt.Errorf("regex_rewrite: regex is %d bytes, longer than %d", len(pat), maxRegexLen)
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			return nil, fmt.Errorf("regex_rewrite: regex %q: %w", pat, err)
		}
		out.RegexRewrite, out.RegexSubstitution = re, envoySubstitution(rr.GetSubstitution())
	}
	if out.PrefixRewrite != "" && out.RegexRewrite != nil {
		return nil, errors.New("prefix_rewrite and regex_rewrite are both set")
	}
	switch hr := ra.GetHostRewriteSpecifier().(type) {
	case *routev3.RouteAction_HostRewriteLiteral:
		if _, _, err := SplitHostPort(hr.HostRewriteLiteral, 80); err != nil {
			return nil, fmt.Errorf("host_rewrite_literal %q: %w", hr.HostRewriteLiteral, err)
		}
		out.HostRewrite = hr.HostRewriteLiteral
	case nil:
	default:
		return nil, fmt.Errorf("host rewrite %T is not supported", hr)
	}
	for _, mp := range ra.GetRequestMirrorPolicies() {
		if mp.GetCluster() == "" {
			return nil, errors.New("request_mirror_policies: no cluster")
		}
		pm := uint32(1_000_000)
		if rf := mp.GetRuntimeFraction(); rf != nil {
			pm = perMillion(rf.GetDefaultValue())
		}
		out.Mirrors = append(out.Mirrors, Mirror{Cluster: mp.GetCluster(), Service: clusters[mp.GetCluster()], PerMillion: pm})
	}
	return out, nil
}

// envoySubstitution turns Envoy's RE2 substitution (\1 for a group,
// everything else literal) into Go's expansion syntax.
func envoySubstitution(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '$':
			b.WriteString("$$")
		case c == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			b.WriteString("${")
			b.WriteByte(s[i+1])
			b.WriteString("}")
			i++
		case c == '\\' && i+1 < len(s) && s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// gRPC status codes that retry_on can name.
var grpcRetryOn = map[string]codes.Code{
	"cancelled":          codes.Canceled,
	"deadline-exceeded":  codes.DeadlineExceeded,
	"internal":           codes.Internal,
	"resource-exhausted": codes.ResourceExhausted,
	"unavailable":        codes.Unavailable,
}

// DefaultBackOffBase is the base interval of a compiled route's retry
// back-off when the policy sets none (Envoy's default; the cap is ten
// times the base).
const DefaultBackOffBase = 25 * time.Millisecond

// compileRetry is retryPolicy with what only a compiled route has: gRPC
// status codes, retriable-4xx, per-try timeout and back-off.
func compileRetry(rp *routev3.RetryPolicy) (RetryPolicy, error) {
	out := retryPolicy(rp)
	out.BackOffBase, out.BackOffMax = DefaultBackOffBase, 10*DefaultBackOffBase
	for _, on := range strings.Split(rp.GetRetryOn(), ",") {
		on = strings.TrimSpace(on)
		if c, ok := grpcRetryOn[on]; ok {
			out.GRPCCodes |= 1 << uint(c)
		}
		if on == "retriable-4xx" {
			out.On4xx = true
		}
	}
	if d := rp.GetPerTryTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return out, fmt.Errorf("per_try_timeout %v is not a valid duration", d)
		}
		out.PerTryTimeout = d.AsDuration()
	}
	if bo := rp.GetRetryBackOff(); bo != nil {
		base := bo.GetBaseInterval()
		if base == nil || base.CheckValid() != nil || base.AsDuration() <= 0 {
			return out, errors.New("retry_back_off: base_interval must be above 0")
		}
		out.BackOffBase = base.AsDuration()
		out.BackOffMax = 10 * out.BackOffBase
		if mx := bo.GetMaxInterval(); mx != nil {
			if mx.CheckValid() != nil || mx.AsDuration() < out.BackOffBase {
				return out, errors.New("retry_back_off: max_interval is below base_interval")
			}
			out.BackOffMax = mx.AsDuration()
		}
	}
	for _, c := range rp.GetRetriableStatusCodes() {
		if c < 100 || c > 599 {
			return out, fmt.Errorf("retriable_status_codes: %d is not an HTTP status", c)
		}
	}
	return out, nil
}

var redirectCodes = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY:  http.StatusMovedPermanently,
	routev3.RedirectAction_FOUND:              http.StatusFound,
	routev3.RedirectAction_SEE_OTHER:          http.StatusSeeOther,
	routev3.RedirectAction_TEMPORARY_REDIRECT: http.StatusTemporaryRedirect,
	routev3.RedirectAction_PERMANENT_REDIRECT: http.StatusPermanentRedirect,
}

func compileRedirect(ra *routev3.RedirectAction) (*Redirect, error) {
	out := &Redirect{Host: ra.GetHostRedirect(), Port: ra.GetPortRedirect(), StripQuery: ra.GetStripQuery()}
	code, ok := redirectCodes[ra.GetResponseCode()]
	if !ok {
		return nil, fmt.Errorf("response_code %v is not supported", ra.GetResponseCode())
	}
	out.Code = code
	switch s := ra.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			out.Scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		if s.SchemeRedirect != "http" && s.SchemeRedirect != "https" {
			return nil, fmt.Errorf("scheme_redirect %q is not http or https", s.SchemeRedirect)
		}
		out.Scheme = s.SchemeRedirect
	}
	if out.Host != "" {
		if _, _, err := SplitHostPort(out.Host, 80); err != nil {
			return nil, fmt.Errorf("host_redirect %q: %w", out.Host, err)
		}
	}
	if out.Port > 65535 {
		return nil, fmt.Errorf("port_redirect %d is above 65535", out.Port)
	}
	switch p := ra.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		if !strings.HasPrefix(p.PathRedirect, "/") {
			return nil, fmt.Errorf("path_redirect %q does not start with /", p.PathRedirect)
		}
		out.Path, out.HasPath = p.PathRedirect, true
	case *routev3.RedirectAction_PrefixRewrite:
		out.PrefixRewrite, out.HasPrefix = p.PrefixRewrite, true
	case nil:
	default:
		return nil, fmt.Errorf("path rewrite %T is not supported", p)
	}
	return out, nil
}
