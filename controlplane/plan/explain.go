package plan

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// RouteDecision says what a caller's sidecar does with one request: which
// route and rule take it and where it goes, or why it is answered by the
// sidecar itself.
type RouteDecision struct {
	// Namespace is the caller's namespace.
	Namespace string `json:"namespace"`
	// Service is NS/NAME:PORT of the service the host names.
	Service string `json:"service,omitempty"`
	// Origin is where the route table comes from (OriginDefault,
	// OriginProducer, OriginConsumer).
	Origin          string `json:"origin,omitempty"`
	PoliciesCluster string `json:"policiesCluster,omitempty"`
	// Matched is false when no rule matches (Status 404) or the host
	// names no service.
	Matched bool `json:"matched"`
	// Route is the Envoy route name: NS/ROUTE/rule-I[/match-J] or
	// DefaultRouteName; Kind, RouteObject and Rule say the same apart.
	Route       string `json:"route,omitempty"`
	Kind        string `json:"kind,omitempty"`
	RouteObject string `json:"routeObject,omitempty"`
	Rule        int    `json:"rule"`
	// Backends share the request by weight.
	Backends []Backend `json:"backends,omitempty"`
	Redirect *Redirect `json:"redirect,omitempty"`
	Fault    *Fault    `json:"fault,omitempty"`
	Mirrors  []Mirror  `json:"mirrors,omitempty"`
	// Status is set when the sidecar answers itself: 404 (no rule
	// matches), 500 (no backend), a redirect's status.
	Status int `json:"status,omitempty"`
	// Reason says in a sentence why.
	Reason string `json:"reason"`
	// Notes are the route table's translation notes.
	Notes []string `json:"notes,omitempty"`
}

// Explain decides a request from a caller in namespace clientNS to
// host:port (host is NAME.NS, NAME.NS.svc.clusterset.local, or either
// with ":PORT") with method, path (query included) and headers (names
// in any case), as the caller's sidecar routes it.
func (p *Plan) Explain(clientNS, host string, port int32, method, path string, headers map[string]string) RouteDecision {
	d := RouteDecision{Namespace: clientNS}
	svc, sport, why := p.serviceOfHost(host, port)
	if svc == nil {
		d.Status, d.Reason = 404, why
		return d
	}
	t := p.Routes(clientNS, svc, sport)
	d.Service, d.Origin, d.PoliciesCluster, d.Notes = t.Service.String(), t.Origin, t.PoliciesCluster, t.Notes
	hs := make(map[string]string, len(headers))
	for k, v := range headers {
		hs[strings.ToLower(k)] = v
	}
	p0, rawQuery, _ := strings.Cut(path, "?")
	query, _ := url.ParseQuery(rawQuery)
	for i := range t.Routes {
		r := &t.Routes[i]
		if !r.Match.matches(method, p0, query, hs) {
			continue
		}
		d.Matched, d.Route, d.Kind, d.RouteObject, d.Rule = true, r.Name, r.Kind, r.Route, r.Rule
		d.Backends, d.Redirect, d.Fault, d.Mirrors = r.Backends, r.Redirect, r.Fault, r.Mirrors
		switch {
		case r.Redirect != nil:
			d.Status = r.Redirect.StatusCode
			d.Reason = fmt.Sprintf("rule %s matches; it redirects", r.Name)
		case r.DirectStatus != 0:
			d.Status = int(r.DirectStatus)
			d.Reason = fmt.Sprintf("rule %s matches but has no backend with weight above 0: answered %d", r.Name, r.DirectStatus)
		case r.Name == DefaultRouteName:
			d.Reason = "no HTTPRoute or GRPCRoute applies to " + t.Service.String() + ": the default route sends every path to the whole service"
		default:
			d.Reason = fmt.Sprintf("rule %s (%s route) is the first in precedence order that matches", r.Name, t.Origin)
		}
		return d
	}
	d.Status = 404
	d.Reason = fmt.Sprintf("no rule of the %s routes of %s matches: answered 404 (Gateway API)", t.Origin, t.Service)
	return d
}

// serviceOfHost finds the service and HTTP port host:port names.
func (p *Plan) serviceOfHost(host string, port int32) (*catalog.ImportedService, catalog.Port, string) {
	h := strings.ToLower(host)
	if hh, ps, ok := strings.Cut(h, ":"); ok {
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil {
			return nil, catalog.Port{}, fmt.Sprintf("host %q has a bad port", host)
		}
		if port == 0 {
			port = int32(n)
		}
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimSuffix(h, "."), "."+naming.ClusterSetDomain)
	name, ns, ok := strings.Cut(h, ".")
	if !ok || strings.Contains(ns, ".") {
		return nil, catalog.Port{}, fmt.Sprintf("host %q is not NAME.NAMESPACE or NAME.NAMESPACE.%s", host, naming.ClusterSetDomain)
	}
	svc := p.service(ns, name)
	if svc == nil {
		return nil, catalog.Port{}, "service " + ns + "/" + name + " is not in the catalog"
	}
	if port == 0 {
		port = firstPort(svc)
	}
	sport, ok := portByNumber(svc, port)
	if !ok {
		return nil, catalog.Port{}, fmt.Sprintf("service %s/%s has no port %d", ns, name, port)
	}
	if !IsHTTP(sport) {
		return nil, catalog.Port{}, fmt.Sprintf("port %d of %s/%s is not HTTP: relayed as TCP, not routed", port, ns, name)
	}
	return svc, sport, ""
}

// matches reports whether a request matches m, as Envoy matches the
// rendered route: path without the query, header names lower case.
func (m *RouteMatch) matches(method, path string, query url.Values, headers map[string]string) bool {
	if !m.Path.matches(path) {
		return false
	}
	if m.Method != "" && m.Method != method {
		return false
	}
	for _, h := range m.Headers {
		v, ok := headers[h.Name]
		if !ok || !h.Match.matches(v) {
			return false
		}
	}
	for _, q := range m.Query {
		vs, ok := query[q.Name]
		if !ok || len(vs) == 0 || !q.Match.matches(vs[0]) {
			return false
		}
	}
	return true
}

func (pm PathMatch) matches(path string) bool {
	switch pm.Kind {
	case PathExact:
		return path == pm.Value
	case PathPrefix:
		if strings.HasSuffix(pm.Value, "/") {
			return strings.HasPrefix(path, pm.Value)
		}
		return path == pm.Value || strings.HasPrefix(path, pm.Value+"/")
	case PathRegex:
		return fullMatch(pm.Value, path)
	}
	return false
}

func (m StringMatch) matches(v string) bool {
	switch m.Kind {
	case MatchExact:
		return v == m.Value
	case MatchPrefix:
		return strings.HasPrefix(v, m.Value)
	case MatchSuffix:
		return strings.HasSuffix(v, m.Value)
	case MatchRegex:
		return fullMatch(m.Value, v)
	}
	return false
}

// fullMatch is Envoy's safe_regex: the whole value must match.
func fullMatch(re, v string) bool {
	r, err := regexp.Compile("^(?:" + re + ")$")
	return err == nil && r.MatchString(v)
}
