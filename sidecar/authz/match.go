package authz

import (
	"regexp"
	"strings"
)

// strKind is the kind of a string matcher.
type strKind uint8

const (
	strExact strKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

// strMatch is a compiled type.matcher.v3.StringMatcher.
type strMatch struct {
	kind       strKind
	s          string
	ignoreCase bool
	re         *regexp.Regexp // strRegex, anchored at both ends
}

func (m *strMatch) match(v string) bool {
	switch m.kind {
	case strExact:
		if m.ignoreCase {
			return strings.EqualFold(v, m.s)
		}
		return v == m.s
	case strPrefix:
		if m.ignoreCase {
			return len(v) >= len(m.s) && strings.EqualFold(v[:len(m.s)], m.s)
		}
		return strings.HasPrefix(v, m.s)
	case strSuffix:
		if m.ignoreCase {
			return len(v) >= len(m.s) && strings.EqualFold(v[len(v)-len(m.s):], m.s)
		}
		return strings.HasSuffix(v, m.s)
	case strContains:
		if m.ignoreCase {
			for i := 0; i+len(m.s) <= len(v); i++ {
				if strings.EqualFold(v[i:i+len(m.s)], m.s) {
					return true
				}
			}
			return false
		}
		return strings.Contains(v, m.s)
	case strRegex:
		return m.re.MatchString(v)
	}
	return false
}

// Pseudo-headers a header matcher can name.
const (
	pseudoNone uint8 = iota
	pseudoMethod
	pseudoPath
	pseudoAuthority
	pseudoScheme
)

// headerMatch is a compiled config.route.v3.HeaderMatcher.
type headerMatch struct {
	pseudo uint8
	key    string // canonical header key when pseudo is pseudoNone
	// str is nil for a present_match.
	str            *strMatch
	present        bool // the present_match value
	invert         bool
	missingIsEmpty bool
}

// match follows Envoy's HeaderUtility::matchHeaders: a missing header
// matches only a present_match that expects absence (or, inverted, one
// that expects presence), unless it is treated as empty.
func (m *headerMatch) match(r *Request) bool {
	v, ok := r.header(m)
	if !ok && !m.missingIsEmpty {
		if m.str != nil {
			return false
		}
		return m.present == m.invert
	}
	var hit bool
	if m.str == nil {
		hit = m.present // the header is there (or treated as empty)
	} else {
		hit = m.str.match(v)
	}
	return hit != m.invert
}

// nodeKind is the kind of a permission or principal.
type nodeKind uint8

const (
	nodeAny nodeKind = iota
	nodeAnd
	nodeOr
	nodeNot
	nodeHeader
	nodeURLPath
	nodeSNI
	nodeAuthenticated // str nil: any authenticated peer
	nodePeerCluster
)

// node is a compiled Permission or Principal.
type node struct {
	kind     nodeKind
	children []node // and, or; not has exactly one
	str      *strMatch
	header   *headerMatch
}

func (n *node) match(r *Request) bool {
	switch n.kind {
	case nodeAny:
		return true
	case nodeAnd:
		for i := range n.children {
			if !n.children[i].match(r) {
				return false
			}
		}
		return true
	case nodeOr:
		for i := range n.children {
			if n.children[i].match(r) {
				return true
			}
		}
		return false
	case nodeNot:
		return !n.children[0].match(r)
	case nodeHeader:
		return n.header.match(r)
	case nodeURLPath:
		return r.HTTP && n.str.match(urlPath(r.Path))
	case nodeSNI:
		return n.str.match(r.SNI)
	case nodeAuthenticated:
		if r.Principal == "" {
			return false
		}
		return n.str == nil || n.str.match(r.Principal)
	case nodePeerCluster:
		// A filter state object that is not there does not match.
		return r.PeerCluster != "" && n.str.match(r.PeerCluster)
	}
	return false
}

// anyMatch reports whether one of ns matches.
func anyMatch(ns []node, r *Request) bool {
	for i := range ns {
		if ns[i].match(r) {
			return true
		}
	}
	return false
}
