package policy

import (
	"fmt"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
)

// filter is an HTTPRouteFilter or a GRPCRouteFilter: the parts both have,
// and those only HTTP has.
type filter struct {
	typ            string
	requestHeader  *gatewayv1.HTTPHeaderFilter
	responseHeader *gatewayv1.HTTPHeaderFilter
	mirror         *gatewayv1.HTTPRequestMirrorFilter
	extension      *gatewayv1.LocalObjectReference
	redirect       *gatewayv1.HTTPRequestRedirectFilter
	rewrite        *gatewayv1.HTTPURLRewriteFilter
	// other names a set field fedmesh does not support, such as cors.
	other string
}

func httpFilter(f *gatewayv1.HTTPRouteFilter) filter {
	out := filter{typ: string(f.Type), requestHeader: f.RequestHeaderModifier, responseHeader: f.ResponseHeaderModifier,
		mirror: f.RequestMirror, extension: f.ExtensionRef, redirect: f.RequestRedirect, rewrite: f.URLRewrite}
	switch {
	case f.CORS != nil:
		out.other = "cors"
	case f.ExternalAuth != nil:
		out.other = "externalAuth"
	}
	return out
}

func grpcFilter(f *gatewayv1.GRPCRouteFilter) filter {
	return filter{typ: string(f.Type), requestHeader: f.RequestHeaderModifier, responseHeader: f.ResponseHeaderModifier,
		mirror: f.RequestMirror, extension: f.ExtensionRef}
}

// filters checks the filters of a rule, or of a backendRef when backend.
func (c *routeChecker) filters(f string, fs []filter, backend, grpc bool) {
	counts := map[string]int{}
	for i, x := range fs {
		ff := fmt.Sprintf("%s[%d]", f, i)
		counts[x.typ]++
		// The field named by the type must be set, and no other.
		set := []struct {
			typ, field string
			ok         bool
		}{
			{"RequestHeaderModifier", "requestHeaderModifier", x.requestHeader != nil},
			{"ResponseHeaderModifier", "responseHeaderModifier", x.responseHeader != nil},
			{"RequestMirror", "requestMirror", x.mirror != nil},
			{"ExtensionRef", "extensionRef", x.extension != nil},
			{"RequestRedirect", "requestRedirect", x.redirect != nil},
			{"URLRewrite", "urlRewrite", x.rewrite != nil},
		}
		if x.other != "" {
			c.add(ff+"."+x.other, "", "not supported by fedmesh")
		}
		supported := true
		switch x.typ {
		case "RequestHeaderModifier", "ResponseHeaderModifier":
		case "RequestRedirect", "URLRewrite":
			if grpc {
				c.add(ff+".type", x.typ, "must be RequestHeaderModifier, ResponseHeaderModifier, RequestMirror or ExtensionRef")
				supported = false
			} else if backend {
				c.add(ff+".type", x.typ, "only RequestHeaderModifier and ResponseHeaderModifier are supported on a backendRef; put it on the rule")
				supported = false
			}
		case "RequestMirror", "ExtensionRef":
			if backend {
				c.add(ff+".type", x.typ, "only RequestHeaderModifier and ResponseHeaderModifier are supported on a backendRef; put it on the rule")
				supported = false
			}
		case "CORS", "ExternalAuth":
			c.add(ff+".type", x.typ, "not supported by fedmesh")
			supported = false
		case "":
			c.add(ff+".type", x.typ, "required")
			supported = false
		default:
			if grpc {
				c.add(ff+".type", x.typ, "must be RequestHeaderModifier, ResponseHeaderModifier, RequestMirror or ExtensionRef")
			} else {
				c.add(ff+".type", x.typ, "must be RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect, RequestMirror or ExtensionRef")
			}
			supported = false
		}
		for _, part := range set {
			if part.ok && part.typ != x.typ {
				c.add(ff+"."+part.field, "", "must not be set for a filter of type "+x.typ)
			}
			if !part.ok && part.typ == x.typ && supported {
				c.add(ff+"."+part.field, "", "required for a filter of type "+x.typ)
			}
		}
		if !supported {
			continue
		}
		switch x.typ {
		case "RequestHeaderModifier":
			c.headerFilter(ff+".requestHeaderModifier", x.requestHeader)
		case "ResponseHeaderModifier":
			c.headerFilter(ff+".responseHeaderModifier", x.responseHeader)
		case "RequestMirror":
			c.mirror(ff+".requestMirror", x.mirror)
		case "ExtensionRef":
			c.extensionRef(ff+".extensionRef", x.extension)
		case "RequestRedirect":
			c.redirect(ff+".requestRedirect", x.redirect)
		case "URLRewrite":
			c.rewrite(ff+".urlRewrite", x.rewrite)
		}
	}
	for _, typ := range []string{"RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite"} {
		if counts[typ] > 1 {
			c.add(f, typ, "a "+typ+" filter may appear once")
		}
	}
	if counts["RequestRedirect"] > 0 && counts["URLRewrite"] > 0 {
		c.add(f, "", "RequestRedirect and URLRewrite must not be used together")
	}
	faults := 0
	for _, x := range fs {
		if x.typ == "ExtensionRef" && x.extension != nil && string(x.extension.Kind) == KindFaultInjection {
			faults++
		}
	}
	if faults > 1 {
		c.add(f, "", "at most one FaultInjection per rule")
	}
}

func (c *routeChecker) headerFilter(f string, h *gatewayv1.HTTPHeaderFilter) {
	if h == nil {
		return
	}
	if len(h.Set) == 0 && len(h.Add) == 0 && len(h.Remove) == 0 {
		c.add(f, "", "set, add or remove must be given")
	}
	seen := map[string]string{}
	for _, part := range []struct {
		name string
		hs   []gatewayv1.HTTPHeader
	}{{"set", h.Set}, {"add", h.Add}} {
		if !c.count(f+"."+part.name, len(part.hs), 0, MaxHeaderModifications, "headers") {
			continue
		}
		for i, hh := range part.hs {
			hf := fmt.Sprintf("%s.%s[%d]", f, part.name, i)
			c.modifiedHeader(hf+".name", string(hh.Name))
			key := strings.ToLower(string(hh.Name))
			if where, dup := seen[key]; dup {
				c.add(hf+".name", string(hh.Name), "already named in "+where)
			} else {
				seen[key] = fmt.Sprintf("%s[%d]", part.name, i)
			}
			switch {
			case hh.Value == "":
				c.add(hf+".value", "", "must not be empty")
			case len(hh.Value) > 4096:
				c.add(hf+".value", hh.Value, "longer than 4096 characters")
			case strings.ContainsAny(hh.Value, "\r\n\x00"):
				c.add(hf+".value", hh.Value, "must not hold CR, LF or NUL")
			}
		}
	}
	if c.count(f+".remove", len(h.Remove), 0, MaxHeaderModifications, "headers") {
		removed := map[string]bool{}
		for i, name := range h.Remove {
			rf := fmt.Sprintf("%s.remove[%d]", f, i)
			c.modifiedHeader(rf, name)
			if removed[strings.ToLower(name)] {
				c.add(rf, name, "listed twice")
			}
			removed[strings.ToLower(name)] = true
		}
	}
}

// modifiedHeader checks the name of a header a filter changes.
func (c *routeChecker) modifiedHeader(f, name string) {
	if why := headerName(name); why != "" {
		c.add(f, name, why)
		return
	}
	if strings.EqualFold(name, "host") {
		c.add(f, name, "the Host header is changed with a URLRewrite hostname")
	}
}

func (c *routeChecker) mirror(f string, m *gatewayv1.HTTPRequestMirrorFilter) {
	if m == nil {
		return
	}
	c.backendObject(f+".backendRef", &m.BackendRef)
	if m.Percent != nil && m.Fraction != nil {
		c.add(f, "", "percent and fraction must not both be set")
	}
	if m.Percent != nil && (*m.Percent < 0 || *m.Percent > 100) {
		c.add(f+".percent", fmt.Sprint(*m.Percent), "out of range 0-100")
	}
	if fr := m.Fraction; fr != nil {
		den := ptrOr(fr.Denominator, 100)
		switch {
		case den < 1:
			c.add(f+".fraction.denominator", fmt.Sprint(den), "must be at least 1")
		case fr.Numerator < 0 || fr.Numerator > den:
			c.add(f+".fraction.numerator", fmt.Sprint(fr.Numerator), fmt.Sprintf("out of range 0-%d (the denominator)", den))
		}
	}
}

func (c *routeChecker) extensionRef(f string, e *gatewayv1.LocalObjectReference) {
	if e == nil {
		return
	}
	if string(e.Group) != ExtensionGroup || string(e.Kind) != KindFaultInjection {
		c.add(f, string(e.Group)+"/"+string(e.Kind), "fedmesh supports one extension filter: group "+ExtensionGroup+", kind "+KindFaultInjection)
	}
	if why := catalog.IsDNS1123Subdomain(string(e.Name)); why != "" {
		c.add(f+".name", string(e.Name), why)
	}
}

func (c *routeChecker) redirect(f string, r *gatewayv1.HTTPRequestRedirectFilter) {
	if r == nil {
		return
	}
	if r.Scheme != nil && *r.Scheme != "http" && *r.Scheme != "https" {
		c.add(f+".scheme", *r.Scheme, "must be http or https")
	}
	if r.Hostname != nil {
		c.preciseHostname(f+".hostname", string(*r.Hostname))
	}
	c.pathModifier(f+".path", r.Path)
	if r.Port != nil && (*r.Port < 1 || *r.Port > 65535) {
		c.add(f+".port", fmt.Sprint(*r.Port), "out of range 1-65535")
	}
	if r.StatusCode != nil {
		switch *r.StatusCode {
		case 301, 302, 303, 307, 308:
		default:
			c.add(f+".statusCode", fmt.Sprint(*r.StatusCode), "must be 301, 302, 303, 307 or 308")
		}
	}
}

func (c *routeChecker) rewrite(f string, r *gatewayv1.HTTPURLRewriteFilter) {
	if r == nil {
		return
	}
	if r.Hostname != nil {
		c.preciseHostname(f+".hostname", string(*r.Hostname))
	}
	c.pathModifier(f+".path", r.Path)
}

func (c *routeChecker) preciseHostname(f, h string) {
	if len(h) > 253 || !preciseHostnameRE.MatchString(h) {
		c.add(f, h, "must be a lower-case DNS name such as echo.demo.svc (no wildcard)")
	}
}

func (c *routeChecker) pathModifier(f string, p *gatewayv1.HTTPPathModifier) {
	if p == nil {
		return
	}
	check := func(field string, v *string) {
		switch {
		case v == nil:
			c.add(field, "", "required for path type "+string(p.Type))
		case len(*v) > 1024:
			c.add(field, *v, "longer than 1024 characters")
		case *v != "" && !strings.HasPrefix(*v, "/"):
			c.add(field, *v, `must start with "/"`)
		case *v != "" && !pathCharsRE.MatchString(*v):
			c.add(field, *v, "holds a character that is not allowed in a path (RFC 3986 pchar, or %XX)")
		}
	}
	switch p.Type {
	case gatewayv1.FullPathHTTPPathModifier:
		check(f+".replaceFullPath", p.ReplaceFullPath)
		if p.ReplacePrefixMatch != nil {
			c.add(f+".replacePrefixMatch", *p.ReplacePrefixMatch, "must not be set for type ReplaceFullPath")
		}
	case gatewayv1.PrefixMatchHTTPPathModifier:
		check(f+".replacePrefixMatch", p.ReplacePrefixMatch)
		if p.ReplaceFullPath != nil {
			c.add(f+".replaceFullPath", *p.ReplaceFullPath, "must not be set for type ReplacePrefixMatch")
		}
	default:
		c.add(f+".type", string(p.Type), "must be ReplaceFullPath or ReplacePrefixMatch")
	}
}

// usesReplacePrefix reports whether a rule filter rewrites or redirects
// with a ReplacePrefixMatch.
func usesReplacePrefix(f *gatewayv1.HTTPRouteFilter) bool {
	var p *gatewayv1.HTTPPathModifier
	switch {
	case f.URLRewrite != nil:
		p = f.URLRewrite.Path
	case f.RequestRedirect != nil:
		p = f.RequestRedirect.Path
	}
	return p != nil && p.Type == gatewayv1.PrefixMatchHTTPPathModifier
}

// onePrefixMatch reports whether ms is exactly one match of path type
// PathPrefix.
func onePrefixMatch(ms []gatewayv1.HTTPRouteMatch) bool {
	return len(ms) == 1 && ms[0].Path != nil && ptrOr(ms[0].Path.Type, gatewayv1.PathMatchPathPrefix) == gatewayv1.PathMatchPathPrefix
}
