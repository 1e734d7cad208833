package plan

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
)

// This file plans inbound rate limits (docs/ratelimit.md): which local
// limits and clusterset quotas of RateLimitPolicies apply to each service
// port a sidecar serves, and the size of the token bucket that enforces
// each, as plain data that controlplane/xds renders into Envoy's local
// rate limit filters.

// QuotaShare is one sidecar's share of a clusterset quota: a token
// bucket of Requests tokens refilled every Interval.
type QuotaShare struct {
	Requests int64
	Interval time.Duration
}

// QuotaShares returns the share of quota quotaID ("NAMESPACE/POLICY/QUOTA")
// that node nodeID (the xDS node.id of a sidecar) enforces, and false when
// it has none to give (the plan then uses DefaultQuotaShare, as it does
// for a share of less than one request or a non-positive interval: a
// token bucket holds at least one token). It must be
// safe for concurrent use and must not block: the generator calls it
// while it builds a node's snapshot.
type QuotaShares func(quotaID, nodeID string) (QuotaShare, bool)

// RateLimitInput is what the plan needs besides the view and the
// traffic set to size rate limits.
type RateLimitInput struct {
	// QuotaShares gives each sidecar its share of each quota (the
	// clusterset split). Nil, or an answer of false: the conservative
	// default, DefaultQuotaShare.
	QuotaShares QuotaShares
}

// WithRateLimitInput returns a plan of the same view, topology policy
// and traffic that sizes quota shares from in.
func (p *Plan) WithRateLimitInput(in RateLimitInput) *Plan {
	n := p.clone()
	n.rateLimit = in
	return n
}

// HasQuotas reports whether any RateLimitPolicy of the plan has a
// clusterset quota: only then does a sidecar's inbound side depend on its
// node (its quota shares), not only on its workload.
func (p *Plan) HasQuotas() bool {
	for i := range p.traffic.RateLimits {
		if len(p.traffic.RateLimits[i].Spec.Quotas) > 0 {
			return true
		}
	}
	return false
}

// Headers and metadata the rate limits of a server sidecar read besides
// the request's own headers (docs/ratelimit.md). The server sidecar sets
// them from the caller's verified certificate before its HTTP filters
// run, and drops any copy the caller sent.
const (
	// ClientIDHeader carries the caller's SPIFFE ID.
	ClientIDHeader = "x-fedmesh-client-id"
	// PeerMetadata is the dynamic metadata namespace of the verified
	// caller: keys "namespace" (from its SPIFFE ID) and "cluster" (from
	// its chain, as filter state io.fedmesh.peer_cluster).
	PeerMetadata = "io.fedmesh.peer"
)

// MaxRateLimitKeys bounds the buckets of one keyed limit in one sidecar
// (Envoy's max_dynamic_descriptors): the least recently used key's
// bucket is evicted beyond it.
const MaxRateLimitKeys = 1024

// RateLimit is what one inbound chain (one service port) limits: the
// requests of an HTTP port, or the new connections of an opaque TCP one.
type RateLimit struct {
	// Limits are the local limits and quota shares of an HTTP port, in
	// policy order (namespace/name), local limits before quotas; each is
	// one token bucket (or one per key).
	Limits []RateLimitRule `json:"limits,omitempty"`
	// Connections are the connection limits of an opaque TCP port, one
	// per policy.
	Connections []ConnectionLimit `json:"connections,omitempty"`
}

// RateLimitKeyKind is what a keyed limit splits its bucket by.
type RateLimitKeyKind string

// Key kinds; "" is no key.
const (
	KeyPrincipal       RateLimitKeyKind = "principal"
	KeySourceNamespace RateLimitKeyKind = "source_namespace"
	KeySourceCluster   RateLimitKeyKind = "source_cluster"
	KeyHeader          RateLimitKeyKind = "header"
)

// RateLimitRule is one token bucket: MaxTokens, refilled with
// TokensPerFill every FillInterval (Envoy's TokenBucket).
type RateLimitRule struct {
	// ID is "NAMESPACE/POLICY/NAME" (a local limit) or
	// "NAMESPACE/POLICY/QUOTA" (a quota).
	ID string `json:"id"`
	// Quota marks a clusterset quota's share.
	Quota bool `json:"quota,omitempty"`
	// Conditions must all hold for the rule to count a request.
	Conditions []RateLimitCondition `json:"conditions,omitempty"`
	// Key splits the bucket (Header names the header of KeyHeader); a
	// request without the key's value is not counted, as in Envoy.
	Key    RateLimitKeyKind `json:"key,omitempty"`
	Header string           `json:"header,omitempty"`

	MaxTokens     int64         `json:"maxTokens"`
	TokensPerFill int64         `json:"tokensPerFill"`
	FillInterval  time.Duration `json:"fillInterval"`
	// ShareDefault is true for a quota sized by DefaultQuotaShare.
	ShareDefault bool `json:"shareDefault,omitempty"`
}

// RateLimitCondition matches one request header (or pseudo-header
// ":method", ":path"): Present, or Match; Invert negates it. An absent
// header never matches.
type RateLimitCondition struct {
	Header  string      `json:"header"`
	Match   StringMatch `json:"match"`
	Present bool        `json:"present,omitempty"`
	Invert  bool        `json:"invert,omitempty"`
}

// ConnectionLimit is one policy's bucket of new connections.
type ConnectionLimit struct {
	// ID is "NAMESPACE/POLICY:tcp".
	ID            string        `json:"id"`
	MaxTokens     int64         `json:"maxTokens"`
	TokensPerFill int64         `json:"tokensPerFill"`
	FillInterval  time.Duration `json:"fillInterval"`
}

// QuotaID names quota q of policy ns/name: "NAMESPACE/POLICY/QUOTA".
func QuotaID(ns, policyName, quota string) string { return ns + "/" + policyName + "/" + quota }

// DefaultQuotaShare is a node's share of a quota when QuotaShares gives
// none (no split computed yet, or no split at all): the quota divided by
// the number of clusters whose exports serve the target (at least one),
// rounded down but at least one request per interval. Each sidecar of a
// cluster gets that share: it is conservative across clusters, not
// within one: a cluster running k sidecars of the target can admit up to
// k times its share until the split gives each sidecar its own.
func DefaultQuotaShare(q policy.Quota, clusters int) QuotaShare {
	if clusters < 1 {
		clusters = 1
	}
	return QuotaShare{Requests: max(q.Requests/int64(clusters), 1), Interval: q.Interval.Duration}
}

// RateLimit plans what service port sp limits on node nodeID (xDS
// node.id); http says whether the port is HTTP. It is nil when no
// RateLimitPolicy of the plan's traffic applies to the port.
func (p *Plan) RateLimit(sp naming.ServicePort, http bool, nodeID string) *RateLimit {
	rl := &RateLimit{}
	for i := range p.traffic.RateLimits {
		rp := &p.traffic.RateLimits[i]
		if rp.Namespace != sp.Namespace || len(rp.Spec.TargetRefs) > 0 && !policy.Targets(rp.Spec.TargetRefs, rp.Namespace, sp.Namespace, sp.Name) {
			continue
		}
		if !http {
			if t := rp.Spec.TCP; t != nil && (len(t.Ports) == 0 || slices.Contains(t.Ports, policy.Port(sp.Port))) {
				rl.Connections = append(rl.Connections, ConnectionLimit{
					ID: rp.Key() + ":tcp", MaxTokens: burst(t.Burst, t.ConnectionsPerSecond),
					TokensPerFill: t.ConnectionsPerSecond, FillInterval: time.Second,
				})
			}
			continue
		}
		for j := range rp.Spec.Local {
			l := &rp.Spec.Local[j]
			conds, ok := matchConditions(l.Match, sp.Port)
			if !ok {
				continue
			}
			r := RateLimitRule{
				ID: rp.Key() + "/" + l.Name, Conditions: conds,
				MaxTokens: burst(l.Burst, l.Requests), TokensPerFill: l.Requests, FillInterval: l.Interval.Duration,
			}
			if k := l.Key; k != nil {
				r.Key, r.Header = keyKind(k.Type), strings.ToLower(k.Header)
			}
			rl.Limits = append(rl.Limits, r)
		}
		for j := range rp.Spec.Quotas {
			q := &rp.Spec.Quotas[j]
			conds, ok := matchConditions(q.Match, sp.Port)
			if !ok {
				continue
			}
			if len(q.Principals) > 0 {
				conds = append(conds, RateLimitCondition{Header: ClientIDHeader, Match: globsRegex(q.Principals, "")})
			}
			id := QuotaID(rp.Namespace, rp.Name, q.Name)
			var share QuotaShare
			ok = false
			if f := p.rateLimit.QuotaShares; f != nil {
				share, ok = f(id, nodeID)
				ok = ok && share.Requests >= 1 && share.Interval > 0
			}
			if !ok {
				share = DefaultQuotaShare(*q, p.servingClusters(sp))
			}
			rl.Limits = append(rl.Limits, RateLimitRule{
				ID: id, Quota: true, Conditions: conds,
				MaxTokens: share.Requests, TokensPerFill: share.Requests, FillInterval: share.Interval,
				ShareDefault: !ok,
			})
		}
	}
	if len(rl.Limits) == 0 && len(rl.Connections) == 0 {
		return nil
	}
	return rl
}

// servingClusters counts the clusters whose exports serve sp's service.
func (p *Plan) servingClusters(sp naming.ServicePort) int {
	for i := range p.view.Services {
		s := &p.view.Services[i]
		if s.Namespace == sp.Namespace && s.Name == sp.Name {
			return len(s.Clusters)
		}
	}
	return 1
}

func burst(b, requests int64) int64 {
	if b > 0 {
		return b
	}
	return requests
}

func keyKind(t policy.RateLimitKeyType) RateLimitKeyKind {
	switch t {
	case policy.KeyPrincipal:
		return KeyPrincipal
	case policy.KeySourceNamespace:
		return KeySourceNamespace
	case policy.KeySourceCluster:
		return KeySourceCluster
	}
	return KeyHeader
}

// matchConditions translates a match into conditions that must all hold
// on service port port; false when the match's ports leave the port out.
func matchConditions(m *policy.RateLimitMatch, port int32) ([]RateLimitCondition, bool) {
	if m == nil {
		return nil, true
	}
	op := &m.Operation
	if len(op.Ports) > 0 && !slices.Contains(op.Ports, policy.Port(port)) || slices.Contains(op.NotPorts, policy.Port(port)) {
		return nil, false
	}
	var cs []RateLimitCondition
	if len(op.Methods) > 0 {
		cs = append(cs, RateLimitCondition{Header: ":method", Match: literalsRegex(op.Methods)})
	}
	if len(op.NotMethods) > 0 {
		cs = append(cs, RateLimitCondition{Header: ":method", Match: literalsRegex(op.NotMethods), Invert: true})
	}
	// :path carries the query; paths match without it.
	const query = `(\?.*)?`
	if len(op.Paths) > 0 {
		cs = append(cs, RateLimitCondition{Header: ":path", Match: globsRegex(op.Paths, query)})
	}
	if len(op.NotPaths) > 0 {
		cs = append(cs, RateLimitCondition{Header: ":path", Match: globsRegex(op.NotPaths, query), Invert: true})
	}
	if g := op.GRPC; g != nil {
		if g.Method != "" {
			cs = append(cs, RateLimitCondition{Header: ":path", Match: StringMatch{Kind: MatchExact, Value: "/" + g.Service + "/" + g.Method}})
		} else {
			cs = append(cs, RateLimitCondition{Header: ":path", Match: StringMatch{Kind: MatchPrefix, Value: "/" + g.Service + "/"}})
		}
	}
	for _, h := range m.Headers {
		c := RateLimitCondition{Header: strings.ToLower(h.Name)}
		if len(h.Values) == 0 {
			c.Present = true
		} else {
			c.Match = globsRegex(h.Values, "")
		}
		cs = append(cs, c)
	}
	return cs, true
}

// literalsRegex matches any of values exactly (one value: an exact
// match).
func literalsRegex(values []string) StringMatch {
	if len(values) == 1 {
		return StringMatch{Kind: MatchExact, Value: values[0]}
	}
	alts := make([]string, len(values))
	for i, v := range values {
		alts[i] = regexp.QuoteMeta(v)
	}
	return StringMatch{Kind: MatchRegex, Value: "(" + strings.Join(alts, "|") + ")"}
}

// globsRegex matches any of globs (each valid, policy.ParseGlob), followed
// by the RE2 tail; one glob without a tail is a plain string match.
func globsRegex(globs []string, tail string) StringMatch {
	if len(globs) == 1 && tail == "" {
		g, _ := policy.ParseGlob(globs[0])
		switch g.Kind {
		case policy.GlobExact:
			return StringMatch{Kind: MatchExact, Value: g.Value}
		case policy.GlobPrefix:
			return StringMatch{Kind: MatchPrefix, Value: g.Value}
		case policy.GlobSuffix:
			return StringMatch{Kind: MatchSuffix, Value: g.Value}
		}
	}
	alts := make([]string, len(globs))
	for i, s := range globs {
		g, _ := policy.ParseGlob(s)
		v := regexp.QuoteMeta(g.Value)
		switch g.Kind {
		case policy.GlobPrefix:
			v += ".*"
		case policy.GlobSuffix:
			v = ".*" + v
		case policy.GlobAny:
			v = ".+"
		}
		alts[i] = v
	}
	return StringMatch{Kind: MatchRegex, Value: "(" + strings.Join(alts, "|") + ")" + tail}
}
