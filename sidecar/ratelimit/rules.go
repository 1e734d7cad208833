package ratelimit

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Rules are the limits of one inbound port, compiled from its local rate
// limit filter. They are immutable once built.
type Rules struct {
	// Limits are checked in order.
	Limits []Limit `json:"limits"`
	// XRateLimitHeaders adds Envoy's X-RateLimit-Limit, -Remaining and
	// -Reset headers (enable_x_ratelimit_headers DRAFT_VERSION_03) to
	// every response of a request a limit applied to.
	XRateLimitHeaders bool `json:"xRateLimitHeaders,omitempty"`
	// ResourceExhausted refuses gRPC calls with RESOURCE_EXHAUSTED
	// (rate_limited_as_resource_exhausted); otherwise a refused call gets
	// UNAVAILABLE, the gRPC mapping of HTTP 429.
	ResourceExhausted bool `json:"resourceExhausted,omitempty"`
	// RetryAfter adds Retry-After to refusals (enable_retry_after_header).
	RetryAfter bool `json:"retryAfter,omitempty"`
}

// KeyType is what a keyed limit splits its bucket by.
type KeyType uint8

// Key types.
const (
	// KeyNone: one bucket for the limit.
	KeyNone KeyType = iota
	// KeyPrincipal: the caller's verified SPIFFE ID.
	KeyPrincipal
	// KeyNamespace: the NS of the caller's SPIFFE ID spiffe://TD/ns/NS/sa/SA.
	KeyNamespace
	// KeyCluster: the caller's cluster, from its verified chain.
	KeyCluster
	// KeyHeader: the value of a request header.
	KeyHeader
)

// Bucket is a token bucket's size and refill: it holds at most Max
// tokens, and PerFill tokens are added every Interval.
type Bucket struct {
	Max      int64         `json:"max"`
	PerFill  int64         `json:"perFill"`
	Interval time.Duration `json:"interval"`
}

// Validate reports a bucket Envoy would refuse.
func (b Bucket) Validate() error {
	switch {
	case b.Max < 1:
		return fmt.Errorf("max_tokens %d: must be at least 1", b.Max)
	case b.PerFill < 1:
		return fmt.Errorf("tokens_per_fill %d: must be at least 1", b.PerFill)
	case b.Interval <= 0:
		return fmt.Errorf("fill_interval %v: must be positive", b.Interval)
	}
	return nil
}

// DefaultMaxKeys bounds the buckets of a keyed limit when its
// configuration names no bound.
const DefaultMaxKeys = 1024

// Limit is one token bucket (or one per key) and the requests it counts.
type Limit struct {
	// ID names the limit: "NAMESPACE/POLICY/NAME" for a local limit or a
	// quota (Quota set), "NAMESPACE/POLICY:tcp" for a TCP connection
	// limit. Buckets and counters belong to the ID: two ports whose rules
	// name the same ID share them.
	ID string `json:"id"`
	// Quota marks a clusterset quota's share; QuotaDemand reports it.
	Quota bool `json:"quota,omitempty"`
	// Match are conditions that must all hold for the limit to count a
	// request; none: every request.
	Match []HeaderMatch `json:"match,omitempty"`
	// Key splits the bucket; Header names the header of KeyHeader
	// (canonical form).
	Key    KeyType `json:"key,omitempty"`
	Header string  `json:"header,omitempty"`
	// Bucket is the size and refill of the limit's (every key's) bucket.
	Bucket Bucket `json:"bucket"`
	// MaxKeys bounds a keyed limit's buckets; zero means DefaultMaxKeys.
	MaxKeys int `json:"maxKeys,omitempty"`
}

// MatchKind is how a HeaderMatch compares a value.
type MatchKind uint8

// Match kinds of Envoy's HeaderMatcher string_match; MatchRegex is RE2
// matching the whole value.
const (
	MatchExact MatchKind = iota
	MatchPrefix
	MatchSuffix
	MatchRegex
	MatchPresent
)

// HeaderMatch is one condition on a request header or pseudo-header
// (":method", ":path" with its query, ":authority"), as Envoy's
// HeaderMatcher: an absent header never matches, whatever Invert says
// (Envoy's treat_missing_header_as_empty is false).
type HeaderMatch struct {
	name   string // canonical header name or pseudo-header
	kind   MatchKind
	value  string
	invert bool
	re     *regexp.Regexp
}

// NewHeaderMatch compiles a condition on header name ("" is invalid).
func NewHeaderMatch(name string, kind MatchKind, value string, invert bool) (HeaderMatch, error) {
	if name == "" {
		return HeaderMatch{}, fmt.Errorf("header matcher: empty name")
	}
	m := HeaderMatch{name: name, kind: kind, value: value, invert: invert}
	if !strings.HasPrefix(name, ":") {
		m.name = CanonicalHeader(name)
	}
	if kind == MatchRegex {
		re, err := regexp.Compile(`^(?:` + value + `)$`)
		if err != nil {
			return HeaderMatch{}, fmt.Errorf("header matcher %q: %w", name, err)
		}
		m.re = re
	}
	return m, nil
}

// ClientIDHeader is the header that carries the caller's verified SPIFFE
// ID on a server sidecar: a condition on it matches Request.Principal,
// never a header the caller sent.
const ClientIDHeader = "X-Fedmesh-Client-Id"

// Request is what a limit looks at.
type Request struct {
	// Principal is the caller's verified SPIFFE ID; "" when plaintext. It
	// is the value of ClientIDHeader.
	Principal string
	// Cluster is the caller's cluster from its verified chain; "" when
	// unknown.
	Cluster string
	// Method, Path (with its query) and Authority are the request's
	// pseudo-headers.
	Method, Path, Authority string
	// Headers are the request headers, keyed canonically (an
	// http.Header); only read.
	Headers map[string][]string
}

// Namespace returns the NS of a SPIFFE ID spiffe://TD/ns/NS/sa/SA, or "".
func Namespace(principal string) string {
	rest, ok := strings.CutPrefix(principal, "spiffe://")
	if !ok {
		return ""
	}
	_, rest, ok = strings.Cut(rest, "/ns/")
	if !ok {
		return ""
	}
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}

func (r *Request) header(name string) (string, bool) {
	switch name {
	case ":method":
		return r.Method, r.Method != ""
	case ":path":
		return r.Path, r.Path != ""
	case ":authority":
		return r.Authority, r.Authority != ""
	case ClientIDHeader:
		return r.Principal, r.Principal != ""
	}
	vs := r.Headers[name]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

func (m *HeaderMatch) matches(r *Request) bool {
	v, ok := r.header(m.name)
	if !ok {
		return false
	}
	var hit bool
	switch m.kind {
	case MatchExact:
		hit = v == m.value
	case MatchPrefix:
		hit = strings.HasPrefix(v, m.value)
	case MatchSuffix:
		hit = strings.HasSuffix(v, m.value)
	case MatchRegex:
		hit = m.re.MatchString(v)
	case MatchPresent:
		hit = true
	}
	return hit != m.invert
}

// key returns the request's value of the limit's key; false when the
// request has none (Envoy then makes no descriptor: the limit does not
// count the request).
func (l *Limit) key(r *Request) (string, bool) {
	var v string
	switch l.Key {
	case KeyNone:
		return "", true
	case KeyPrincipal:
		v = r.Principal
	case KeyNamespace:
		v = Namespace(r.Principal)
	case KeyCluster:
		v = r.Cluster
	case KeyHeader:
		v, _ = r.header(l.Header)
	}
	return v, v != ""
}

// Applies reports whether the limit counts request r: every condition
// holds and the request has a value for the limit's key.
func (l *Limit) Applies(r *Request) bool {
	for i := range l.Match {
		if !l.Match[i].matches(r) {
			return false
		}
	}
	_, ok := l.key(r)
	return ok
}

// CanonicalHeader returns name in the canonical form net/http keys
// headers by ("x-tenant" is "X-Tenant"). A name holding a byte that is
// not a token character is returned as it is, as net/http does.
func CanonicalHeader(name string) string {
	upper := true
	b := []byte(name)
	for i, c := range b {
		if !isToken(c) {
			return name
		}
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return string(b)
}

// isToken reports whether c may appear in an HTTP header name (RFC 9110
// tchar).
func isToken(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

var keyNames = [...]string{KeyNone: "", KeyPrincipal: "principal", KeyNamespace: "namespace", KeyCluster: "cluster", KeyHeader: "header"}

// MarshalText names the key type, for configuration dumps.
func (k KeyType) MarshalText() ([]byte, error) {
	if int(k) < len(keyNames) {
		return []byte(keyNames[k]), nil
	}
	return nil, fmt.Errorf("key type %d", k)
}

var matchNames = [...]string{MatchExact: "exact", MatchPrefix: "prefix", MatchSuffix: "suffix", MatchRegex: "regex", MatchPresent: "present"}

// MarshalJSON writes the condition, for configuration dumps.
func (m HeaderMatch) MarshalJSON() ([]byte, error) {
	kind := "unknown"
	if int(m.kind) < len(matchNames) {
		kind = matchNames[m.kind]
	}
	return json.Marshal(struct {
		Header string `json:"header"`
		Kind   string `json:"kind"`
		Value  string `json:"value,omitempty"`
		Invert bool   `json:"invert,omitempty"`
	}{m.name, kind, m.value, m.invert})
}
