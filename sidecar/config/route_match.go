package config

import (
	"net/http"
	"net/url"
	"strings"
)

// Match returns the first rule that accepts r, or nil. It does not
// allocate unless a header has several values, a query value is
// percent-encoded, or a pseudo-header other than :method is matched.
func (vh *VirtualHost) Match(r *http.Request) *Rule {
	for _, rule := range vh.Rules {
		if rule.Match.Matches(r) {
			return rule
		}
	}
	return nil
}

// Matches reports whether r satisfies every part of m. The path is the
// request's path without the query.
func (m *RouteMatch) Matches(r *http.Request) bool {
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	switch m.PathKind {
	case PathPrefix:
		if !hasPrefix(path, m.Path, m.IgnoreCase) {
			return false
		}
	case PathSeparatedPrefix:
		if !hasPrefix(path, m.Path, m.IgnoreCase) || (len(path) > len(m.Path) && path[len(m.Path)] != '/' && m.Path != "/") {
			return false
		}
	case PathExact:
		if len(path) != len(m.Path) || !hasPrefix(path, m.Path, m.IgnoreCase) {
			return false
		}
	case PathRegex:
		if !m.Regex.MatchString(path) {
			return false
		}
	}
	for i := range m.Headers {
		if !m.Headers[i].Matches(r) {
			return false
		}
	}
	for i := range m.Query {
		q := &m.Query[i]
		v, ok := queryValue(r.URL.RawQuery, q.Name)
		if !q.String.matches(v, ok) {
			return false
		}
	}
	return true
}

func hasPrefix(s, prefix string, ignoreCase bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	if ignoreCase {
		return strings.EqualFold(s[:len(prefix)], prefix)
	}
	return s[:len(prefix)] == prefix
}

// MatchHeaders reports whether every matcher accepts r.
func MatchHeaders(hs []HeaderMatch, r *http.Request) bool {
	for i := range hs {
		if !hs[i].Matches(r) {
			return false
		}
	}
	return true
}

// Matches reports whether h accepts r.
func (h *HeaderMatch) Matches(r *http.Request) bool {
	v, ok := headerValue(r, h.Name)
	return h.String.matches(v, ok) != h.Invert
}

// headerValue returns a request header's value, its values joined with
// "," (Envoy's rule), or a pseudo-header's.
func headerValue(r *http.Request, name string) (string, bool) {
	if name[0] == ':' {
		switch name {
		case ":method":
			return r.Method, true
		case ":authority":
			return r.Host, true
		case ":path":
			return r.URL.RequestURI(), true
		case ":scheme":
			if r.TLS != nil {
				return "https", true
			}
			return "http", true
		}
		return "", false
	}
	vs := r.Header[name]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

func (s *StringMatch) matches(v string, present bool) bool {
	if s.Kind == StringPresent {
		return present != s.Absent
	}
	if !present {
		return false
	}
	switch s.Kind {
	case StringExact:
		if s.IgnoreCase {
			return strings.EqualFold(v, s.Value)
		}
		return v == s.Value
	case StringPrefix:
		return hasPrefix(v, s.Value, s.IgnoreCase)
	case StringSuffix:
		if len(v) < len(s.Value) {
			return false
		}
		if s.IgnoreCase {
			return strings.EqualFold(v[len(v)-len(s.Value):], s.Value)
		}
		return strings.HasSuffix(v, s.Value)
	case StringContains:
		if s.IgnoreCase {
			return strings.Contains(strings.ToLower(v), strings.ToLower(s.Value))
		}
		return strings.Contains(v, s.Value)
	case StringRegex:
		return s.Regex.MatchString(v)
	}
	return false
}

// queryValue returns the first value of parameter name in a raw query,
// decoded; it decodes (and allocates) only keys and values that hold %
// or +.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(k, "%+") {
			dk, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			k = dk
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				return "", false
			}
			v = dv
		}
		return v, true
	}
	return "", false
}

// QueryValue is queryValue for the proxy's hash policies.
func QueryValue(raw, name string) (string, bool) { return queryValue(raw, name) }

// HeaderValue is headerValue for the proxy's hash policies.
func HeaderValue(r *http.Request, name string) (string, bool) { return headerValue(r, name) }
