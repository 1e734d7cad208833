package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
)

// Bounds of a RateLimitPolicy.
const (
	// MaxRateLimits is the most local limits, and the most quotas, one
	// policy may hold.
	MaxRateLimits = 64
	// MaxRateLimitTokens bounds requests, burst and connectionsPerSecond:
	// Envoy's token buckets count in 32 bits.
	MaxRateLimitTokens = 1<<32 - 1
	// MinLocalInterval is the shortest refill interval of a local limit,
	// Envoy's shortest fill_interval.
	MinLocalInterval = 50 * time.Millisecond
	// MinQuotaInterval is the shortest period of a quota: shares are
	// rebalanced every few seconds, so a shorter period could not follow
	// demand.
	MinQuotaInterval = time.Second
	// MaxRateLimitInterval is the longest interval of a limit or quota.
	MaxRateLimitInterval = 24 * time.Hour
)

func validateRateLimit(fe *fieldErrors, p *RateLimitPolicy) {
	if p.APIVersion != "" && p.APIVersion != APIVersion {
		fe.add("apiVersion", p.APIVersion, "must be "+APIVersion)
	}
	if p.Kind != "" && p.Kind != KindRateLimitPolicy {
		fe.add("kind", p.Kind, "must be "+KindRateLimitPolicy)
	}
	s := &p.Spec
	serviceTargetRefs(fe, "spec.targetRefs", s.TargetRefs)
	if len(s.Local) == 0 && len(s.Quotas) == 0 && s.TCP == nil {
		fe.add("spec", "", "local, quotas or tcp must be set")
	}
	names := map[string]string{}
	name := func(f, n string) {
		if why := catalog.IsDNS1123Label(n); why != "" {
			fe.add(f+".name", short(n), why)
			return
		}
		if first, dup := names[n]; dup {
			fe.add(f+".name", n, "the same name as "+first+": names are unique within the policy (local limits and quotas together)")
			return
		}
		names[n] = f
	}
	if len(s.Local) > MaxRateLimits {
		fe.add("spec.local", "", fmt.Sprintf("%d limits, at most %d", len(s.Local), MaxRateLimits))
	} else {
		for i := range s.Local {
			l := &s.Local[i]
			f := fmt.Sprintf("spec.local[%d]", i)
			name(f, l.Name)
			rateLimitMatch(fe, f+".match", l.Match)
			if k := l.Key; k != nil {
				rateLimitKey(fe, f+".key", k)
			}
			tokens(fe, f+".requests", l.Requests, 1)
			interval(fe, f+".interval", l.Interval.Duration, MinLocalInterval)
			tokens(fe, f+".burst", l.Burst, 0)
		}
	}
	if len(s.Quotas) > MaxRateLimits {
		fe.add("spec.quotas", "", fmt.Sprintf("%d quotas, at most %d", len(s.Quotas), MaxRateLimits))
	} else {
		for i := range s.Quotas {
			q := &s.Quotas[i]
			f := fmt.Sprintf("spec.quotas[%d]", i)
			name(f, q.Name)
			rateLimitMatch(fe, f+".match", q.Match)
			globs(fe, f+".principals", q.Principals, principalGlob)
			tokens(fe, f+".requests", q.Requests, 1)
			interval(fe, f+".interval", q.Interval.Duration, MinQuotaInterval)
		}
	}
	if t := s.TCP; t != nil {
		ports(fe, "spec.tcp.ports", t.Ports)
		seen := map[Port]int{}
		for i, p := range t.Ports {
			if first, dup := seen[p]; dup {
				fe.add(fmt.Sprintf("spec.tcp.ports[%d]", i), fmt.Sprint(p), fmt.Sprintf("the same port as ports[%d]", first))
			} else {
				seen[p] = i
			}
		}
		tokens(fe, "spec.tcp.connectionsPerSecond", t.ConnectionsPerSecond, 1)
		tokens(fe, "spec.tcp.burst", t.Burst, 0)
	}
}

func tokens(fe *fieldErrors, f string, n, min int64) {
	switch {
	case n < min:
		fe.add(f, fmt.Sprint(n), fmt.Sprintf("must be at least %d", min))
	case n > MaxRateLimitTokens:
		fe.add(f, fmt.Sprint(n), fmt.Sprintf("must be at most %d", int64(MaxRateLimitTokens)))
	}
}

func interval(fe *fieldErrors, f string, d, min time.Duration) {
	if d < min || d > MaxRateLimitInterval {
		fe.add(f, d.String(), fmt.Sprintf("must be between %v and %v", min, MaxRateLimitInterval))
	}
}

// rateLimitMatch checks a match as an AuthorizationPolicy operation, plus
// its header conditions.
func rateLimitMatch(fe *fieldErrors, f string, m *RateLimitMatch) {
	if m == nil {
		return
	}
	operation(fe, f, &m.Operation)
	if len(m.Headers) > MaxValues {
		fe.add(f+".headers", "", fmt.Sprintf("%d conditions, at most %d", len(m.Headers), MaxValues))
		return
	}
	for i := range m.Headers {
		h := &m.Headers[i]
		hf := fmt.Sprintf("%s.headers[%d]", f, i)
		rateLimitHeader(fe, hf+".name", h.Name)
		globs(fe, hf+".values", h.Values, headerGlob)
	}
}

// operation checks an operation's fields, as validateRule does for an
// AuthorizationPolicy's to[].operation.
func operation(fe *fieldErrors, f string, op *Operation) {
	ports(fe, f+".ports", op.Ports)
	ports(fe, f+".notPorts", op.NotPorts)
	globs(fe, f+".methods", op.Methods, method)
	globs(fe, f+".notMethods", op.NotMethods, method)
	globs(fe, f+".paths", op.Paths, pathGlob)
	globs(fe, f+".notPaths", op.NotPaths, pathGlob)
	if g := op.GRPC; g != nil {
		if !grpcServiceRE.MatchString(g.Service) {
			fe.add(f+".grpc.service", short(g.Service), "must be a fully qualified gRPC service name such as pkg.v1.Greeter")
		}
		if g.Method != "" && !grpcMethodRE.MatchString(g.Method) {
			fe.add(f+".grpc.method", short(g.Method), "must be a gRPC method name such as SayHello")
		}
	}
}

func rateLimitKey(fe *fieldErrors, f string, k *RateLimitKey) {
	switch k.Type {
	case KeyPrincipal, KeySourceNamespace, KeySourceCluster:
		if k.Header != "" {
			fe.add(f+".header", short(k.Header), "only a key of type Header names a header")
		}
	case KeyHeader:
		rateLimitHeader(fe, f+".header", k.Header)
	default:
		fe.add(f+".type", short(string(k.Type)), "must be Principal, SourceNamespace, SourceCluster or Header")
	}
}

// rateLimitHeader checks a request header name (any case; compared
// lower case).
func rateLimitHeader(fe *fieldErrors, f, name string) {
	if strings.HasPrefix(name, ":") {
		fe.add(f, short(name), "pseudo-headers are matched with the operation fields (methods, paths, grpc)")
		return
	}
	if why := headerName(name); why != "" {
		fe.add(f, short(name), why)
	}
}
