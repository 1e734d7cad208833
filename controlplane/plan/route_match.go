package plan

import (
	"cmp"
	"fmt"
	"regexp"
	"strings"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// This file translates route matches and orders them by Gateway API
// precedence.

// httpMatch translates an HTTPRouteMatch.
func httpMatch(m *gatewayv1.HTTPRouteMatch) (RouteMatch, error) {
	out := RouteMatch{Path: PathMatch{Kind: PathPrefix, Value: "/"}}
	if pm := m.Path; pm != nil {
		typ, val := gatewayv1.PathMatchPathPrefix, "/"
		if pm.Type != nil {
			typ = *pm.Type
		}
		if pm.Value != nil {
			val = *pm.Value
		}
		switch typ {
		case gatewayv1.PathMatchExact:
			out.Path = PathMatch{Kind: PathExact, Value: val}
		case gatewayv1.PathMatchPathPrefix:
			// A trailing "/" is ignored (Gateway API): /foo/ matches /foo.
			if v := strings.TrimRight(val, "/"); v != "" {
				val = v
			} else {
				val = "/"
			}
			out.Path = PathMatch{Kind: PathPrefix, Value: val}
		case gatewayv1.PathMatchRegularExpression:
			if _, err := regexp.Compile(val); err != nil {
				return out, fmt.Errorf("path regex %q: %w", val, err)
			}
			out.Path = PathMatch{Kind: PathRegex, Value: val}
		default:
			return out, fmt.Errorf("path match type %q is not supported", typ)
		}
	}
	for _, h := range m.Headers {
		hm, err := stringMatch(h.Type == nil || *h.Type == gatewayv1.HeaderMatchExact, string(ptrOr(h.Type, gatewayv1.HeaderMatchExact)), h.Value)
		if err != nil {
			return out, fmt.Errorf("header %s: %w", h.Name, err)
		}
		out.Headers = append(out.Headers, HeaderMatch{Name: strings.ToLower(string(h.Name)), Match: hm})
	}
	for _, q := range m.QueryParams {
		qm, err := stringMatch(q.Type == nil || *q.Type == gatewayv1.QueryParamMatchExact, string(ptrOr(q.Type, gatewayv1.QueryParamMatchExact)), q.Value)
		if err != nil {
			return out, fmt.Errorf("query parameter %s: %w", q.Name, err)
		}
		out.Query = append(out.Query, HeaderMatch{Name: string(q.Name), Match: qm})
	}
	if m.Method != nil {
		out.Method = string(*m.Method)
	}
	return out, nil
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// stringMatch is an exact match, or a regex one when typ is
// RegularExpression.
func stringMatch(exact bool, typ, value string) (StringMatch, error) {
	if exact {
		return StringMatch{Kind: MatchExact, Value: value}, nil
	}
	if typ != "RegularExpression" {
		return StringMatch{}, fmt.Errorf("match type %q is not supported", typ)
	}
	if _, err := regexp.Compile(value); err != nil {
		return StringMatch{}, fmt.Errorf("regex %q: %w", value, err)
	}
	return StringMatch{Kind: MatchRegex, Value: value}, nil
}

// grpcMatch translates a GRPCRouteMatch: the method becomes a path
// match on /SERVICE/METHOD.
func grpcMatch(m *gatewayv1.GRPCRouteMatch) (RouteMatch, error) {
	out := RouteMatch{Path: PathMatch{Kind: PathPrefix, Value: "/"}}
	if mm := m.Method; mm != nil {
		svc, method := ptrOr(mm.Service, ""), ptrOr(mm.Method, "")
		typ := ptrOr(mm.Type, gatewayv1.GRPCMethodMatchExact)
		switch {
		case typ == gatewayv1.GRPCMethodMatchRegularExpression:
			s, me := svc, method
			if s == "" {
				s = "[^/]+"
			}
			if me == "" {
				me = "[^/]+"
			}
			re := "/" + s + "/" + me
			if _, err := regexp.Compile(re); err != nil {
				return out, fmt.Errorf("method regex %q: %w", re, err)
			}
			out.Path = PathMatch{Kind: PathRegex, Value: re}
		case typ != gatewayv1.GRPCMethodMatchExact:
			return out, fmt.Errorf("method match type %q is not supported", typ)
		case svc != "" && method != "":
			out.Path = PathMatch{Kind: PathExact, Value: "/" + svc + "/" + method}
		case svc != "":
			out.Path = PathMatch{Kind: PathPrefix, Value: "/" + svc + "/"}
		case method != "":
			out.Path = PathMatch{Kind: PathRegex, Value: "/[^/]+/" + regexp.QuoteMeta(method)}
		}
	}
	for _, h := range m.Headers {
		exact := h.Type == nil || *h.Type == gatewayv1.GRPCHeaderMatchExact
		hm, err := stringMatch(exact, string(ptrOr(h.Type, gatewayv1.GRPCHeaderMatchExact)), h.Value)
		if err != nil {
			return out, fmt.Errorf("header %s: %w", h.Name, err)
		}
		out.Headers = append(out.Headers, HeaderMatch{Name: strings.ToLower(string(h.Name)), Match: hm})
	}
	return out, nil
}

// precedence orders routes as the Gateway API does: exact path, then
// the longest prefix, then regex; a method match; more header matches;
// more query matches; the oldest route; namespace/name; then rule and
// match order within a route.
type precedence struct {
	pathRank  int // 0 exact, 1 prefix, 2 regex
	pathLen   int
	method    bool
	headers   int
	query     int
	created   time.Time
	key       string
	rule, idx int
}

func precedenceOf(m *RouteMatch, created time.Time, key string, rule, idx int) precedence {
	p := precedence{pathLen: len(m.Path.Value), method: m.Method != "", headers: len(m.Headers), query: len(m.Query),
		created: created, key: key, rule: rule, idx: idx}
	switch m.Path.Kind {
	case PathPrefix:
		p.pathRank = 1
	case PathRegex:
		p.pathRank, p.pathLen = 2, 0
	}
	return p
}

func (a *precedence) compare(b *precedence) int {
	if c := cmp.Compare(a.pathRank, b.pathRank); c != 0 {
		return c
	}
	if c := cmp.Compare(b.pathLen, a.pathLen); c != 0 {
		return c
	}
	if a.method != b.method {
		if a.method {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(b.headers, a.headers); c != 0 {
		return c
	}
	if c := cmp.Compare(b.query, a.query); c != 0 {
		return c
	}
	if c := a.created.Compare(b.created); c != 0 {
		return c
	}
	return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.rule, b.rule), cmp.Compare(a.idx, b.idx))
}
