package config

import (
	"net/http"
	"regexp"
	"time"
)

// FaultFilterName is the HTTP filter (and typed_per_filter_config key) of
// fault injection.
const FaultFilterName = "envoy.filters.http.fault"

// MissingBackendCluster is the weighted cluster name the control plane
// gives a backend whose service does not exist: its share is answered 500.
const MissingBackendCluster = "fedmesh-missing-backend"

// maxRegexLen bounds a regular expression's source, so a hostile resource
// cannot make the sidecar compile megabytes of pattern.
const maxRegexLen = 4096

// VirtualHost is the compiled route table of one service port's virtual
// host: the first rule whose match accepts a request decides what happens
// to it; a request no rule accepts is answered 404 (Gateway API
// semantics). It is immutable.
type VirtualHost struct {
	// Name is the virtual host's name.
	Name string
	// Rules are the virtual host's routes, in order.
	Rules []*Rule
}

// ActionKind says what a rule does with a request it matches.
type ActionKind uint8

// Rule actions.
const (
	// ActionRoute forwards to a (weighted) backend.
	ActionRoute ActionKind = iota
	// ActionRedirect answers a 3xx redirect.
	ActionRedirect
	// ActionDirect answers a fixed response.
	ActionDirect
)

// Rule is one Envoy Route, compiled.
type Rule struct {
	// Name is the route's name ("NS/ROUTE/rule-I"), for logs and explain.
	Name string
	// Match decides whether the rule takes a request.
	Match RouteMatch
	// Kind says which of Route, Redirect and Direct is set.
	Kind ActionKind
	// Route forwards (Kind ActionRoute).
	Route *RouteAction
	// Redirect answers a redirect (Kind ActionRedirect).
	Redirect *Redirect
	// Direct answers a fixed response (Kind ActionDirect).
	Direct *DirectResponse
	// RequestHeaders modify the request before it is forwarded.
	RequestHeaders HeaderMods
	// ResponseHeaders modify the response before the client sees it.
	ResponseHeaders HeaderMods
	// Fault is the route's fault injection (nil: none).
	Fault *Fault
}

// PathKind is how a RouteMatch compares the path.
type PathKind uint8

// Path match kinds (Envoy's RouteMatch path_specifier).
const (
	// PathPrefix matches paths starting with Path.
	PathPrefix PathKind = iota
	// PathSeparatedPrefix matches Path itself and Path followed by "/".
	PathSeparatedPrefix
	// PathExact matches Path only.
	PathExact
	// PathRegex matches paths the whole of which Regex matches.
	PathRegex
)

// RouteMatch is Envoy's RouteMatch, compiled. All its parts must match.
type RouteMatch struct {
	// PathKind says how to compare the path.
	PathKind PathKind
	// Path is the prefix or exact path (PathPrefix, PathSeparatedPrefix,
	// PathExact).
	Path string
	// Regex matches the whole path (PathRegex).
	Regex *regexp.Regexp
	// IgnoreCase compares Path without regard to ASCII case
	// (case_sensitive false).
	IgnoreCase bool
	// Headers must all match.
	Headers []HeaderMatch
	// Query must all match.
	Query []QueryMatch
}

// StringKind is how a StringMatch compares a value.
type StringKind uint8

// String match kinds.
const (
	StringExact StringKind = iota
	StringPrefix
	StringSuffix
	StringContains
	StringRegex
	// StringPresent matches when the header or parameter is there (or,
	// with Value "absent", when it is not).
	StringPresent
)

// StringMatch is Envoy's StringMatcher, compiled.
type StringMatch struct {
	// Kind says how to compare.
	Kind StringKind
	// Value is compared with (Exact, Prefix, Suffix, Contains).
	Value string
	// Regex matches the whole value (StringRegex).
	Regex *regexp.Regexp
	// IgnoreCase compares without regard to ASCII case.
	IgnoreCase bool
	// Absent inverts StringPresent: match when missing.
	Absent bool
}

// HeaderMatch is Envoy's HeaderMatcher, compiled.
type HeaderMatch struct {
	// Name is the header name in canonical form, or a pseudo-header
	// (":method", ":authority", ":path", ":scheme").
	Name string
	// String compares the header's value (values joined with ",").
	String StringMatch
	// Invert negates the result.
	Invert bool
}

// QueryMatch is Envoy's QueryParameterMatcher, compiled: it compares the
// first value of the named parameter, decoded.
type QueryMatch struct {
	// Name is the parameter name.
	Name string
	// String compares the value.
	String StringMatch
}

// Header is one header to add or set.
type Header struct {
	// Name is the header name in canonical form.
	Name string
	// Value is its value.
	Value string
}

// HeaderMods add, set and remove headers (Envoy's *_headers_to_add and
// *_headers_to_remove). Remove comes first, then Set, then Add.
type HeaderMods struct {
	// Set replaces the header's values (OVERWRITE_IF_EXISTS_OR_ADD).
	Set []Header
	// Add appends a value (APPEND_IF_EXISTS_OR_ADD).
	Add []Header
	// AddIfAbsent adds only when the header is missing (ADD_IF_ABSENT).
	AddIfAbsent []Header
	// Remove deletes these headers (canonical names).
	Remove []string
}

// Empty reports whether m changes nothing.
func (m *HeaderMods) Empty() bool {
	return len(m.Set) == 0 && len(m.Add) == 0 && len(m.AddIfAbsent) == 0 && len(m.Remove) == 0
}

// Apply modifies h.
func (m *HeaderMods) Apply(h http.Header) {
	for _, k := range m.Remove {
		delete(h, k)
	}
	for _, kv := range m.Set {
		h[kv.Name] = []string{kv.Value}
	}
	for _, kv := range m.Add {
		h[kv.Name] = append(h[kv.Name], kv.Value)
	}
	for _, kv := range m.AddIfAbsent {
		if len(h[kv.Name]) == 0 {
			h[kv.Name] = []string{kv.Value}
		}
	}
}

// RouteAction forwards a request to one of its backends.
type RouteAction struct {
	// Backends are the weighted clusters (one for a plain cluster).
	Backends []Backend
	// TotalWeight is the sum of the backends' weights.
	TotalWeight uint64
	// Timeout bounds the whole request, retries included (0: none).
	Timeout time.Duration
	// Retry is the retry policy (no retries when the route has none).
	Retry RetryPolicy
	// Hash are the hash policies of a ring-hash cluster, in order.
	Hash []HashPolicy
	// PrefixRewrite replaces the matched prefix (or the exact path).
	PrefixRewrite string
	// RegexRewrite, when set, rewrites the path: every match of it is
	// replaced by RegexSubstitution (Go regexp expansion syntax).
	RegexRewrite *regexp.Regexp
	// RegexSubstitution is RegexRewrite's replacement.
	RegexSubstitution string
	// HostRewrite, when set, replaces the Host header.
	HostRewrite string
	// Mirrors receive a copy of sampled requests.
	Mirrors []Mirror
}

// Pick returns the backend for a random number r in [0, TotalWeight).
func (a *RouteAction) Pick(r uint64) *Backend {
	for i := range a.Backends {
		b := &a.Backends[i]
		if r < uint64(b.Weight) {
			return b
		}
		r -= uint64(b.Weight)
	}
	return &a.Backends[len(a.Backends)-1]
}

// Backend is one weighted cluster of a route.
type Backend struct {
	// Cluster is the cluster name.
	Cluster string
	// Weight is its share of TotalWeight (at least 1).
	Weight uint32
	// Service is the cluster's configuration; nil when the cluster is
	// missing (MissingBackendCluster, or not in CDS): answered 500.
	Service *Service
	// RequestHeaders modify requests sent to this backend.
	RequestHeaders HeaderMods
	// ResponseHeaders modify responses from this backend.
	ResponseHeaders HeaderMods
}

// Mirror is a request mirror policy.
type Mirror struct {
	// Cluster is the mirror's cluster name.
	Cluster string
	// Service is its configuration; nil when it is not in CDS (then
	// nothing is mirrored).
	Service *Service
	// PerMillion is the share of requests mirrored, in parts per million.
	PerMillion uint32
}

// HashKind says where a hash policy takes its key.
type HashKind uint8

// Hash policy kinds.
const (
	HashHeader HashKind = iota
	HashCookie
	HashQuery
	HashSourceIP
)

// HashPolicy is Envoy's RouteAction.HashPolicy.
type HashPolicy struct {
	// Kind says where the key comes from.
	Kind HashKind
	// Name is the header (canonical), cookie or query parameter name.
	Name string
	// Terminal stops at this policy when it yields a key.
	Terminal bool
}

// Redirect is Envoy's RedirectAction.
type Redirect struct {
	// Scheme replaces the scheme ("" keeps it).
	Scheme string
	// Host replaces the host ("" keeps it).
	Host string
	// Port replaces the port (0 keeps it).
	Port uint32
	// Path replaces the whole path when HasPath.
	Path    string
	HasPath bool
	// PrefixRewrite replaces the matched prefix when HasPrefix.
	PrefixRewrite string
	HasPrefix     bool
	// Code is the status, 301 by default.
	Code int
	// StripQuery drops the query.
	StripQuery bool
}

// DirectResponse is Envoy's DirectResponseAction.
type DirectResponse struct {
	// Status is the HTTP status.
	Status int
	// Body is the response body.
	Body string
}

// Fault is envoy.filters.http.fault's HTTPFault on one route.
type Fault struct {
	// Delay is the fixed delay (0: no delay fault).
	Delay time.Duration
	// DelayPerMillion is the share of requests delayed, per million.
	DelayPerMillion uint32
	// AbortHTTP is the HTTP status of an abort (0: none).
	AbortHTTP int
	// AbortGRPC is the gRPC status of an abort (-1: none); a gRPC request
	// gets a trailers-only response with this grpc-status.
	AbortGRPC int
	// AbortPerMillion is the share of requests aborted, per million.
	AbortPerMillion uint32
	// Headers must all match for the fault to apply.
	Headers []HeaderMatch
}

// HasAbort reports whether the fault aborts requests.
func (f *Fault) HasAbort() bool { return f.AbortHTTP != 0 || f.AbortGRPC >= 0 }
