package policy

import (
	"regexp"
	"strings"
)

// GlobKind is the form of a glob, the four forms Istio's string fields
// take.
type GlobKind int

// Glob forms.
const (
	// GlobExact matches the value itself.
	GlobExact GlobKind = iota
	// GlobPrefix ("abc*") matches values starting with Value.
	GlobPrefix
	// GlobSuffix ("*abc") matches values ending with Value.
	GlobSuffix
	// GlobAny ("*") matches any non-empty value.
	GlobAny
)

// Glob is a parsed glob: a form and the literal part.
type Glob struct {
	Kind  GlobKind
	Value string
}

// ParseGlob parses s. It returns false for an empty string and for a "*"
// anywhere but at one end ("a*b", "**", "*a*"), which no form expresses.
func ParseGlob(s string) (Glob, bool) {
	switch n := strings.Count(s, "*"); {
	case s == "":
		return Glob{}, false
	case s == "*":
		return Glob{Kind: GlobAny}, true
	case n == 0:
		return Glob{Kind: GlobExact, Value: s}, true
	case n > 1:
		return Glob{}, false
	case strings.HasSuffix(s, "*"):
		return Glob{Kind: GlobPrefix, Value: s[:len(s)-1]}, true
	case strings.HasPrefix(s, "*"):
		return Glob{Kind: GlobSuffix, Value: s[1:]}, true
	}
	return Glob{}, false
}

// mustGlob parses a glob that validation accepted.
func mustGlob(s string) Glob {
	g, _ := ParseGlob(s)
	return g
}

// Match reports whether v matches. An empty v matches nothing: a missing
// header, principal or cluster never matches, as in Envoy.
func (g Glob) Match(v string) bool {
	if v == "" {
		return false
	}
	switch g.Kind {
	case GlobPrefix:
		return strings.HasPrefix(v, g.Value)
	case GlobSuffix:
		return strings.HasSuffix(v, g.Value)
	case GlobAny:
		return true
	}
	return v == g.Value
}

// Regexp renders the glob as an RE2 expression (without anchors) in
// which the wildcard stands for one or more (any) or zero or more
// (prefix, suffix) characters of class, such as "[^/]".
func (g Glob) Regexp(class string) string {
	q := regexp.QuoteMeta(g.Value)
	switch g.Kind {
	case GlobPrefix:
		return q + class + "*"
	case GlobSuffix:
		return class + "*" + q
	case GlobAny:
		return class + "+"
	}
	return q
}

// matchAny reports whether v matches any of globs.
func matchAny(globs []string, v string) bool {
	for _, s := range globs {
		if mustGlob(s).Match(v) {
			return true
		}
	}
	return false
}

// field reports whether a field with values and notValues matches v:
// some value (or no values at all) and no notValue.
func field(values, notValues []string, v string) bool {
	if len(values) > 0 && !matchAny(values, v) {
		return false
	}
	return !matchAny(notValues, v)
}
