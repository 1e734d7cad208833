package policy

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
)

// Limits of a route, as the Gateway API CRDs (v1.6) set them.
const (
	// MaxParentRefs is the most parentRefs a route may have.
	MaxParentRefs = 32
	// MaxHostnames is the most hostnames a route may have.
	MaxHostnames = 16
	// MaxRouteRules is the most rules a route may have.
	MaxRouteRules = 16
	// MaxRuleMatches is the most matches one rule may have.
	MaxRuleMatches = 64
	// MaxRouteMatches is the most matches all rules of a route may have
	// together.
	MaxRouteMatches = 128
	// MaxMatchConditions is the most header (or query parameter)
	// matches one match may have.
	MaxMatchConditions = 16
	// MaxFilters is the most filters a rule or a backendRef may have.
	MaxFilters = 16
	// MaxBackendRefs is the most backendRefs a rule may have.
	MaxBackendRefs = 16
	// MaxHeaderModifications is the most set, add or remove entries of
	// a header modifier.
	MaxHeaderModifications = 16
	// MaxWeight is the largest backendRef weight.
	MaxWeight = 1000000
	// MaxRetryAttempts caps retries of a route rule or a policy.
	MaxRetryAttempts = 100
)

var (
	// gatewayDurationRE is a Gateway API Duration (GEP-2257).
	gatewayDurationRE = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)
	// pathCharsRE are the characters of an Exact or PathPrefix path.
	pathCharsRE = regexp.MustCompile(`^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$`)
	// gwHeaderNameRE is a Gateway API HeaderName (an RFC 7230 token).
	gwHeaderNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$")
	// hostnameRE is a Gateway API Hostname (a wildcard allowed).
	hostnameRE = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// preciseHostnameRE is a Gateway API PreciseHostname.
	preciseHostnameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// gwGRPCServiceRE is a GRPCRoute Exact service name.
	gwGRPCServiceRE = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
)

// ParseGatewayDuration parses a Gateway API Duration (GEP-2257: one to
// four numbers of up to 5 digits, each followed by h, m, s or ms, such
// as "1h30m" or "500ms").
func ParseGatewayDuration(d gatewayv1.Duration) (time.Duration, error) {
	if !gatewayDurationRE.MatchString(string(d)) {
		return 0, fmt.Errorf("%q is not a Gateway API duration such as 10s, 500ms or 1m30s", d)
	}
	return time.ParseDuration(string(d))
}

// routeChecker validates one route; fe collects what is wrong.
type routeChecker struct {
	fe *fieldErrors
	ns string // the route's namespace
}

func (c *routeChecker) add(field, value, reason string) { c.fe.add(field, short(value), reason) }

// short cuts a value to a length fit for an error message.
func short(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func validateHTTPRoute(fe *fieldErrors, r *gatewayv1.HTTPRoute) {
	if r.APIVersion != "" && r.APIVersion != GatewayAPIVersion {
		fe.add("apiVersion", r.APIVersion, "must be "+GatewayAPIVersion)
	}
	if r.Kind != "" && r.Kind != KindHTTPRoute {
		fe.add("kind", r.Kind, "must be "+KindHTTPRoute)
	}
	c := &routeChecker{fe: fe, ns: r.Namespace}
	c.common(&r.Spec.CommonRouteSpec)
	c.hostnames(r.Spec.Hostnames)
	rules := r.Spec.Rules
	if !c.count("spec.rules", len(rules), 1, MaxRouteRules, "rules") {
		return
	}
	total := 0
	names := map[gatewayv1.SectionName]int{}
	for i := range rules {
		total += len(rules[i].Matches)
		c.ruleName(fmt.Sprintf("spec.rules[%d].name", i), rules[i].Name, names, i)
	}
	if total > MaxRouteMatches {
		c.add("spec.rules", "", fmt.Sprintf("%d matches in all rules, at most %d", total, MaxRouteMatches))
		return
	}
	for i := range rules {
		c.httpRule(fmt.Sprintf("spec.rules[%d]", i), &rules[i])
	}
}

func validateGRPCRoute(fe *fieldErrors, r *gatewayv1.GRPCRoute) {
	if r.APIVersion != "" && r.APIVersion != GatewayAPIVersion {
		fe.add("apiVersion", r.APIVersion, "must be "+GatewayAPIVersion)
	}
	if r.Kind != "" && r.Kind != KindGRPCRoute {
		fe.add("kind", r.Kind, "must be "+KindGRPCRoute)
	}
	c := &routeChecker{fe: fe, ns: r.Namespace}
	c.common(&r.Spec.CommonRouteSpec)
	c.hostnames(r.Spec.Hostnames)
	rules := r.Spec.Rules
	if !c.count("spec.rules", len(rules), 1, MaxRouteRules, "rules") {
		return
	}
	total := 0
	names := map[gatewayv1.SectionName]int{}
	for i := range rules {
		total += len(rules[i].Matches)
		c.ruleName(fmt.Sprintf("spec.rules[%d].name", i), rules[i].Name, names, i)
	}
	if total > MaxRouteMatches {
		c.add("spec.rules", "", fmt.Sprintf("%d matches in all rules, at most %d", total, MaxRouteMatches))
		return
	}
	for i := range rules {
		c.grpcRule(fmt.Sprintf("spec.rules[%d]", i), &rules[i])
	}
}

// count checks that a list has min to max entries; it reports whether
// the list is small enough to look into.
func (c *routeChecker) count(field string, n, min, max int, what string) bool {
	switch {
	case n > max:
		c.add(field, "", fmt.Sprintf("%d %s, at most %d", n, what, max))
		return false
	case n < min && min == 1:
		c.add(field, "", "at least one of "+what+" is required")
	case n < min:
		c.add(field, "", fmt.Sprintf("%d %s, at least %d", n, what, min))
	}
	return true
}

func (c *routeChecker) ruleName(field string, name *gatewayv1.SectionName, seen map[gatewayv1.SectionName]int, i int) {
	if name == nil {
		return
	}
	if why := catalog.IsDNS1123Subdomain(string(*name)); why != "" {
		c.add(field, string(*name), why)
		return
	}
	if first, dup := seen[*name]; dup {
		c.add(field, string(*name), fmt.Sprintf("rule names must be unique within the route: rule %d has it too", first))
		return
	}
	seen[*name] = i
}

// common checks parentRefs: fedmesh routes attach to Services and
// ServiceImports (GAMMA), never to Gateways.
func (c *routeChecker) common(s *gatewayv1.CommonRouteSpec) {
	switch s.UseDefaultGateways {
	case "", gatewayv1.GatewayDefaultScopeNone:
	case gatewayv1.GatewayDefaultScopeAll:
		c.add("spec.useDefaultGateways", string(s.UseDefaultGateways), "fedmesh has no Gateways: routes attach to a Service or ServiceImport by parentRefs")
	default:
		c.add("spec.useDefaultGateways", string(s.UseDefaultGateways), "must be None or All")
	}
	if !c.count("spec.parentRefs", len(s.ParentRefs), 1, MaxParentRefs, "parentRefs") {
		return
	}
	seen := map[string]int{}
	for i, p := range s.ParentRefs {
		f := fmt.Sprintf("spec.parentRefs[%d]", i)
		// The CRD's defaults: group gateway.networking.k8s.io, kind Gateway.
		group, kind := GatewayGroup, "Gateway"
		if p.Group != nil {
			group = string(*p.Group)
		}
		if p.Kind != nil {
			kind = string(*p.Kind)
		}
		switch {
		case group == "" && kind == KindService, group == MCSGroup && kind == KindServiceImport:
		case p.Group == nil && p.Kind == nil:
			c.add(f, "", `group and kind must be set: group "" and kind Service, or group `+MCSGroup+` and kind ServiceImport (unset, they default to a Gateway, and fedmesh has no Gateways)`)
		case kind == KindService:
			c.add(f+".group", group, `must be "" (the core group) for kind Service; unset, it defaults to `+GatewayGroup)
		case kind == KindServiceImport:
			c.add(f+".group", group, "must be "+MCSGroup+" for kind ServiceImport")
		case kind == "Gateway" || group == GatewayGroup:
			c.add(f+".kind", kind, `fedmesh has no Gateways: a parentRef names a Service (group "") or a ServiceImport (group `+MCSGroup+`)`)
		default:
			c.add(f+".kind", kind, `must be Service (group "") or ServiceImport (group `+MCSGroup+`)`)
		}
		if why := catalog.IsServiceName(string(p.Name)); why != "" {
			c.add(f+".name", string(p.Name), why)
		}
		ns := c.ns
		if p.Namespace != nil {
			ns = string(*p.Namespace)
			if why := catalog.IsDNS1123Label(ns); why != "" {
				c.add(f+".namespace", ns, why)
			}
		}
		section := ""
		if p.SectionName != nil {
			section = string(*p.SectionName)
			if why := catalog.IsDNS1123Subdomain(section); why != "" {
				c.add(f+".sectionName", section, why)
			}
		}
		port := int32(0)
		if p.Port != nil {
			port = *p.Port
			if port < 1 || port > 65535 {
				c.add(f+".port", fmt.Sprint(port), "out of range 1-65535")
			}
		}
		key := fmt.Sprintf("%s/%s/%s/%s/%s/%d", group, kind, ns, p.Name, section, port)
		if first, dup := seen[key]; dup {
			c.add(f, string(p.Name), fmt.Sprintf("the same parent as parentRefs[%d]: sectionName or port must tell them apart", first))
		} else {
			seen[key] = i
		}
	}
}

func (c *routeChecker) hostnames(hs []gatewayv1.Hostname) {
	if !c.count("spec.hostnames", len(hs), 0, MaxHostnames, "hostnames") {
		return
	}
	for i, h := range hs {
		if len(h) > 253 || !hostnameRE.MatchString(string(h)) {
			c.add(fmt.Sprintf("spec.hostnames[%d]", i), string(h), "must be a lower-case DNS name such as echo.demo.svc, optionally starting with *.")
		}
	}
}

func (c *routeChecker) httpRule(f string, r *gatewayv1.HTTPRouteRule) {
	if c.count(f+".matches", len(r.Matches), 0, MaxRuleMatches, "matches") {
		for i := range r.Matches {
			c.httpMatch(fmt.Sprintf("%s.matches[%d]", f, i), &r.Matches[i])
		}
	}
	if c.count(f+".filters", len(r.Filters), 0, MaxFilters, "filters") {
		fs := make([]filter, len(r.Filters))
		for i := range r.Filters {
			fs[i] = httpFilter(&r.Filters[i])
		}
		c.filters(f+".filters", fs, false, false)
		// Gateway API: a ReplacePrefixMatch needs exactly one PathPrefix match.
		for i := range r.Filters {
			if usesReplacePrefix(&r.Filters[i]) && !onePrefixMatch(r.Matches) {
				c.add(fmt.Sprintf("%s.filters[%d]", f, i), string(r.Filters[i].Type), "path.replacePrefixMatch needs exactly one match, of path type PathPrefix")
			}
			if r.Filters[i].Type == gatewayv1.HTTPRouteFilterRequestRedirect && len(r.BackendRefs) > 0 {
				c.add(fmt.Sprintf("%s.filters[%d]", f, i), string(r.Filters[i].Type), "a RequestRedirect filter must not be used together with backendRefs")
			}
		}
	}
	if c.count(f+".backendRefs", len(r.BackendRefs), 0, MaxBackendRefs, "backendRefs") {
		for i := range r.BackendRefs {
			b := &r.BackendRefs[i]
			bf := fmt.Sprintf("%s.backendRefs[%d]", f, i)
			c.backendRef(bf, &b.BackendRef)
			if c.count(bf+".filters", len(b.Filters), 0, MaxFilters, "filters") {
				fs := make([]filter, len(b.Filters))
				for j := range b.Filters {
					fs[j] = httpFilter(&b.Filters[j])
				}
				c.filters(bf+".filters", fs, true, false)
			}
		}
	}
	var request time.Duration
	if t := r.Timeouts; t != nil {
		var requestSet bool
		if t.Request != nil {
			d, err := ParseGatewayDuration(*t.Request)
			if err != nil {
				c.add(f+".timeouts.request", string(*t.Request), "must be a Gateway API duration such as 10s, 500ms or 1m30s (0s: none)")
			} else {
				request, requestSet = d, true
			}
		}
		if t.BackendRequest != nil {
			d, err := ParseGatewayDuration(*t.BackendRequest)
			switch {
			case err != nil:
				c.add(f+".timeouts.backendRequest", string(*t.BackendRequest), "must be a Gateway API duration such as 10s, 500ms or 1m30s (0s: none)")
			case requestSet && request != 0 && d > request:
				c.add(f+".timeouts.backendRequest", string(*t.BackendRequest), "must not be longer than timeouts.request "+string(*t.Request))
			}
		}
	}
	if rt := r.Retry; rt != nil {
		if rt.Attempts != nil && (*rt.Attempts < 1 || *rt.Attempts > MaxRetryAttempts) {
			c.add(f+".retry.attempts", fmt.Sprint(*rt.Attempts), fmt.Sprintf("out of range 1-%d", MaxRetryAttempts))
		}
		seen := map[gatewayv1.HTTPRouteRetryStatusCode]bool{}
		for i, code := range rt.Codes {
			cf := fmt.Sprintf("%s.retry.codes[%d]", f, i)
			switch {
			case code < 400 || code > 599:
				c.add(cf, fmt.Sprint(code), "out of range 400-599")
			case seen[code]:
				c.add(cf, fmt.Sprint(code), "listed twice")
			}
			seen[code] = true
		}
		if rt.Backoff != nil {
			if d, err := ParseGatewayDuration(*rt.Backoff); err != nil || d <= 0 {
				c.add(f+".retry.backoff", string(*rt.Backoff), "must be a positive Gateway API duration such as 100ms")
			}
		}
	}
	if r.SessionPersistence != nil {
		c.add(f+".sessionPersistence", "", "not supported by fedmesh: use a ResiliencePolicy with loadBalancer.algorithm RingHash and a hashKey for affinity")
	}
}

func (c *routeChecker) grpcRule(f string, r *gatewayv1.GRPCRouteRule) {
	if c.count(f+".matches", len(r.Matches), 0, MaxRuleMatches, "matches") {
		for i := range r.Matches {
			m := &r.Matches[i]
			mf := fmt.Sprintf("%s.matches[%d]", f, i)
			if mm := m.Method; mm != nil {
				c.grpcMethod(mf+".method", mm)
			}
			if c.count(mf+".headers", len(m.Headers), 0, MaxMatchConditions, "headers") {
				hs := make([]condition, len(m.Headers))
				for j, h := range m.Headers {
					hs[j] = condition{name: string(h.Name), value: h.Value, typ: string(ptrOr(h.Type, gatewayv1.GRPCHeaderMatchExact))}
				}
				c.conditions(mf+".headers", hs, 4096, true)
			}
		}
	}
	if c.count(f+".filters", len(r.Filters), 0, MaxFilters, "filters") {
		fs := make([]filter, len(r.Filters))
		for i := range r.Filters {
			fs[i] = grpcFilter(&r.Filters[i])
		}
		c.filters(f+".filters", fs, false, true)
	}
	if c.count(f+".backendRefs", len(r.BackendRefs), 0, MaxBackendRefs, "backendRefs") {
		for i := range r.BackendRefs {
			b := &r.BackendRefs[i]
			bf := fmt.Sprintf("%s.backendRefs[%d]", f, i)
			c.backendRef(bf, &b.BackendRef)
			if c.count(bf+".filters", len(b.Filters), 0, MaxFilters, "filters") {
				fs := make([]filter, len(b.Filters))
				for j := range b.Filters {
					fs[j] = grpcFilter(&b.Filters[j])
				}
				c.filters(bf+".filters", fs, true, true)
			}
		}
	}
	if r.SessionPersistence != nil {
		c.add(f+".sessionPersistence", "", "not supported by fedmesh: use a ResiliencePolicy with loadBalancer.algorithm RingHash and a hashKey for affinity")
	}
}

func (c *routeChecker) grpcMethod(f string, m *gatewayv1.GRPCMethodMatch) {
	typ := ptrOr(m.Type, gatewayv1.GRPCMethodMatchExact)
	if m.Service == nil && m.Method == nil {
		c.add(f, "", "service or method (or both) must be set")
	}
	switch typ {
	case gatewayv1.GRPCMethodMatchExact:
		if m.Service != nil {
			if s := *m.Service; len(s) > 1024 || !gwGRPCServiceRE.MatchString(s) {
				c.add(f+".service", s, "must be a fully qualified gRPC service name such as pkg.v1.Greeter")
			}
		}
		if m.Method != nil {
			if s := *m.Method; len(s) > 1024 || !grpcMethodRE.MatchString(s) {
				c.add(f+".method", s, "must be a gRPC method name such as SayHello")
			}
		}
	case gatewayv1.GRPCMethodMatchRegularExpression:
		if m.Service != nil {
			c.regex(f+".service", *m.Service, 1024)
		}
		if m.Method != nil {
			c.regex(f+".method", *m.Method, 1024)
		}
	default:
		c.add(f+".type", string(typ), "must be Exact or RegularExpression")
	}
}

func (c *routeChecker) httpMatch(f string, m *gatewayv1.HTTPRouteMatch) {
	if p := m.Path; p != nil {
		typ := ptrOr(p.Type, gatewayv1.PathMatchPathPrefix)
		value := ptrOr(p.Value, "/")
		switch typ {
		case gatewayv1.PathMatchExact, gatewayv1.PathMatchPathPrefix:
			if why := pathValue(value); why != "" {
				c.add(f+".path.value", value, why)
			}
		case gatewayv1.PathMatchRegularExpression:
			c.regex(f+".path.value", value, 1024)
		default:
			c.add(f+".path.type", string(typ), "must be Exact, PathPrefix or RegularExpression")
		}
	}
	if c.count(f+".headers", len(m.Headers), 0, MaxMatchConditions, "headers") {
		hs := make([]condition, len(m.Headers))
		for i, h := range m.Headers {
			typ := ptrOr(h.Type, gatewayv1.HeaderMatchExact)
			hs[i] = condition{name: string(h.Name), value: h.Value, typ: string(typ)}
		}
		c.conditions(f+".headers", hs, 4096, true)
	}
	if c.count(f+".queryParams", len(m.QueryParams), 0, MaxMatchConditions, "queryParams") {
		qs := make([]condition, len(m.QueryParams))
		for i, q := range m.QueryParams {
			typ := ptrOr(q.Type, gatewayv1.QueryParamMatchExact)
			qs[i] = condition{name: string(q.Name), value: q.Value, typ: string(typ)}
		}
		c.conditions(f+".queryParams", qs, 1024, false)
	}
	if m.Method != nil {
		switch *m.Method {
		case gatewayv1.HTTPMethodGet, gatewayv1.HTTPMethodHead, gatewayv1.HTTPMethodPost, gatewayv1.HTTPMethodPut, gatewayv1.HTTPMethodDelete,
			gatewayv1.HTTPMethodConnect, gatewayv1.HTTPMethodOptions, gatewayv1.HTTPMethodTrace, gatewayv1.HTTPMethodPatch:
		default:
			c.add(f+".method", string(*m.Method), "must be GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE or PATCH")
		}
	}
}

// pathValue says why v is not an Exact or PathPrefix path, or "".
func pathValue(v string) string {
	switch {
	case len(v) > 1024:
		return "longer than 1024 characters"
	case !strings.HasPrefix(v, "/"):
		return `must be an absolute path starting with "/"`
	case strings.Contains(v, "//"):
		return `must not contain "//"`
	case strings.Contains(v, "/./"), strings.HasSuffix(v, "/."):
		return `must not contain a "." segment`
	case strings.Contains(v, "/../"), strings.HasSuffix(v, "/.."):
		return `must not contain a ".." segment`
	case strings.Contains(strings.ToLower(v), "%2f"):
		return `must not contain an encoded "/" (%2F)`
	case strings.Contains(v, "#"), strings.Contains(v, "?"):
		return `must not contain "?" or "#": paths match without the query and fragment`
	case !pathCharsRE.MatchString(v):
		return "holds a character that is not allowed in a path (RFC 3986 pchar, or %XX)"
	}
	return ""
}

// regex checks that v is a non-empty RE2 expression of at most max bytes.
func (c *routeChecker) regex(f, v string, max int) {
	switch {
	case v == "":
		c.add(f, v, "the regular expression must not be empty")
	case len(v) > max:
		c.add(f, v, fmt.Sprintf("longer than %d characters", max))
	default:
		if _, err := regexp.Compile(v); err != nil {
			c.add(f, v, "not an RE2 regular expression: "+err.Error())
		}
	}
}

// condition is a header or query parameter match.
type condition struct {
	name, value, typ string
}

// conditions checks header (caseless names) or query parameter matches.
func (c *routeChecker) conditions(f string, cs []condition, maxValue int, caseless bool) {
	seen := map[string]int{}
	for i, m := range cs {
		mf := fmt.Sprintf("%s[%d]", f, i)
		if why := headerName(m.name); why != "" {
			c.add(mf+".name", m.name, why)
		}
		key := m.name
		if caseless {
			key = strings.ToLower(key)
		}
		if first, dup := seen[key]; dup {
			c.add(mf+".name", m.name, fmt.Sprintf("matched already by entry %d: a name may appear once", first))
		} else {
			seen[key] = i
		}
		switch m.typ {
		case "Exact":
			switch {
			case m.value == "":
				c.add(mf+".value", m.value, "must not be empty")
			case len(m.value) > maxValue:
				c.add(mf+".value", m.value, fmt.Sprintf("longer than %d characters", maxValue))
			}
		case "RegularExpression":
			c.regex(mf+".value", m.value, maxValue)
		default:
			c.add(mf+".type", m.typ, "must be Exact or RegularExpression")
		}
	}
}

// headerName says why s is not a Gateway API HeaderName, or "".
func headerName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 256:
		return "longer than 256 characters"
	case !gwHeaderNameRE.MatchString(s):
		return "must be an HTTP header name token (letters, digits and !#$%&'*+-.^_`|~)"
	}
	return ""
}

// backendRef checks a Service (this cluster's endpoints) or ServiceImport
// (the clusterset) reference with a port.
func (c *routeChecker) backendRef(f string, b *gatewayv1.BackendRef) {
	c.backendObject(f, &b.BackendObjectReference)
	if b.Weight != nil && (*b.Weight < 0 || *b.Weight > MaxWeight) {
		c.add(f+".weight", fmt.Sprint(*b.Weight), fmt.Sprintf("out of range 0-%d", MaxWeight))
	}
}

func (c *routeChecker) backendObject(f string, b *gatewayv1.BackendObjectReference) {
	// The CRD's defaults: group "", kind Service.
	group, kind := ptrOr(b.Group, ""), ptrOr(b.Kind, KindService)
	switch {
	case group == "" && kind == KindService, group == MCSGroup && kind == KindServiceImport:
	case kind == KindService:
		c.add(f+".group", string(group), `must be "" (the core group) for kind Service`)
	case kind == KindServiceImport:
		c.add(f+".group", string(group), "must be "+MCSGroup+" for kind ServiceImport")
	default:
		c.add(f+".kind", string(kind), `must be Service (group "": this cluster's endpoints) or ServiceImport (group `+MCSGroup+`: the clusterset)`)
	}
	if why := catalog.IsServiceName(string(b.Name)); why != "" {
		c.add(f+".name", string(b.Name), why)
	}
	if b.Namespace != nil {
		if why := catalog.IsDNS1123Label(string(*b.Namespace)); why != "" {
			c.add(f+".namespace", string(*b.Namespace), why)
		}
	}
	switch {
	case b.Port == nil:
		c.add(f+".port", "", "required: the service port to send to")
	case *b.Port < 1 || *b.Port > 65535:
		c.add(f+".port", fmt.Sprint(*b.Port), "out of range 1-65535")
	}
}

// ptrOr returns *p, or def when p is nil.
func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
