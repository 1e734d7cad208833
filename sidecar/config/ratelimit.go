package config

import (
	"errors"
	"fmt"
	"net/http"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	localrlnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
)

// This file compiles the local rate limit filters of inbound chains
// (docs/ratelimit.md) into ratelimit.Rules: the subset the control plane
// emits, each descriptor a Limit. Anything else is refused with
// ErrRateLimit naming the field, so that a configuration is enforced
// exactly or not at all.

// ErrRateLimit is wrapped by the errors of Apply about a local rate
// limit filter of an inbound chain.
var ErrRateLimit = errors.New("rate limit")

// Descriptor entry keys the control plane emits (internal/xdsresource).
const (
	descLimit           = "fedmesh.limit"
	descQuota           = "fedmesh.quota"
	descMatch           = "fedmesh.match"
	descPrincipal       = "principal"
	descSourceNamespace = "source_namespace"
	descSourceCluster   = "source_cluster"
	descHeader          = "header"
	peerMetadata        = "io.fedmesh.peer"
)

// envoyDefaultMaxKeys is Envoy's max_dynamic_descriptors when unset.
const envoyDefaultMaxKeys = 20

// fullyOn reports whether a runtime fraction is 100%.
func fullyOn(f interface {
	GetDefaultValue() *typev3.FractionalPercent
}) bool {
	v := f.GetDefaultValue()
	if v == nil {
		return false
	}
	switch v.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		return v.GetNumerator() >= 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		return v.GetNumerator() >= 10000
	}
	return v.GetNumerator() >= 1000000
}

// httpRateLimit compiles an envoy.filters.http.local_ratelimit config. A
// filter that is not enabled (filter_enabled below 100%, or unset as
// Envoy defaults it) compiles to nil: it limits nothing.
func httpRateLimit(c *localrlhttpv3.LocalRateLimit) (*ratelimit.Rules, error) {
	switch {
	case c.GetFilterEnabled() == nil && c.GetFilterEnforced() == nil:
		return nil, nil
	case !fullyOn(c.GetFilterEnabled()) || !fullyOn(c.GetFilterEnforced()):
		return nil, errors.New("filter_enabled and filter_enforced: only 100% is supported")
	case c.GetTokenBucket() != nil:
		return nil, errors.New("token_bucket: a default bucket is not supported (every limit is a descriptor)")
	case c.GetStatus() != nil && c.GetStatus().GetCode() != typev3.StatusCode_TooManyRequests:
		return nil, errors.New("status: only 429 is supported")
	case c.GetStage() != 0 || c.GetLocalRateLimitPerDownstreamConnection() || c.GetLocalClusterRateLimit() != nil ||
		len(c.GetResponseHeadersToAdd()) > 0 || len(c.GetRequestHeadersToAddWhenNotEnforced()) > 0 || c.GetAlwaysConsumeDefaultTokenBucket() != nil:
		return nil, errors.New("stage, local_rate_limit_per_downstream_connection, local_cluster_rate_limit, headers to add and always_consume_default_token_bucket are not supported")
	}
	rules := &ratelimit.Rules{
		XRateLimitHeaders: c.GetEnableXRatelimitHeaders() == ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		ResourceExhausted: c.GetRateLimitedAsResourceExhausted(),
		RetryAfter:        c.GetEnableRetryAfterHeader(),
	}
	maxKeys := envoyDefaultMaxKeys
	if m := c.GetMaxDynamicDescriptors(); m != nil {
		maxKeys = int(m.GetValue())
	}
	used := make([]bool, len(c.GetDescriptors()))
	for i, rl := range c.GetRateLimits() {
		lim, entries, err := rateLimitEntry(rl)
		if err != nil {
			return nil, fmt.Errorf("rate_limits[%d]: %w", i, err)
		}
		j := findDescriptor(c.GetDescriptors(), entries)
		if j < 0 {
			return nil, fmt.Errorf("rate_limits[%d]: no descriptor has its entries", i)
		}
		used[j] = true
		d := c.GetDescriptors()[j]
		if d.GetShadowMode() {
			return nil, fmt.Errorf("descriptors[%d]: shadow_mode is not supported", j)
		}
		if lim.Bucket, err = bucket(d.GetTokenBucket()); err != nil {
			return nil, fmt.Errorf("descriptors[%d]: %w", j, err)
		}
		if lim.Key != ratelimit.KeyNone {
			lim.MaxKeys = max(maxKeys, 1)
		}
		rules.Limits = append(rules.Limits, lim)
	}
	for j, u := range used {
		if !u {
			return nil, fmt.Errorf("descriptors[%d]: no rate_limits entry makes it", j)
		}
	}
	if len(rules.Limits) == 0 {
		return nil, nil
	}
	return rules, nil
}

func bucket(tb *typev3.TokenBucket) (ratelimit.Bucket, error) {
	if tb == nil {
		return ratelimit.Bucket{}, errors.New("token_bucket: missing")
	}
	b := ratelimit.Bucket{Max: int64(tb.GetMaxTokens()), PerFill: 1, Interval: tb.GetFillInterval().AsDuration()}
	if tb.GetTokensPerFill() != nil {
		b.PerFill = int64(tb.GetTokensPerFill().GetValue())
	}
	if err := b.Validate(); err != nil {
		return ratelimit.Bucket{}, fmt.Errorf("token_bucket: %w", err)
	}
	return b, nil
}

// findDescriptor returns the index of the descriptor whose entries are
// exactly want (an empty value: a dynamic entry), or -1.
func findDescriptor(ds []*ratelimitv3.LocalRateLimitDescriptor, want []*ratelimitv3.RateLimitDescriptor_Entry) int {
next:
	for i, d := range ds {
		if len(d.GetEntries()) != len(want) {
			continue
		}
		for k, e := range d.GetEntries() {
			if e.GetKey() != want[k].GetKey() || e.GetValue() != want[k].GetValue() {
				continue next
			}
		}
		return i
	}
	return -1
}

// rateLimitEntry compiles one rate_limits entry: generic_key naming the
// limit, then optionally header_value_match (its conditions), then
// optionally the action of its key. It returns the limit (without its
// bucket) and the descriptor entries the actions make.
func rateLimitEntry(rl *routev3.RateLimit) (ratelimit.Limit, []*ratelimitv3.RateLimitDescriptor_Entry, error) {
	var (
		lim     ratelimit.Limit
		entries []*ratelimitv3.RateLimitDescriptor_Entry
	)
	if rl.GetStage() != nil || rl.GetDisableKey() != "" || rl.GetLimit() != nil || rl.GetHitsAddend() != nil || rl.GetApplyOnStreamDone() {
		return lim, nil, errors.New("stage, disable_key, limit, hits_addend and apply_on_stream_done are not supported")
	}
	acts := rl.GetActions()
	if len(acts) == 0 {
		return lim, nil, errors.New("actions: empty")
	}
	gk := acts[0].GetGenericKey()
	if gk == nil || (gk.GetDescriptorKey() != descLimit && gk.GetDescriptorKey() != descQuota) || gk.GetDescriptorValue() == "" {
		return lim, nil, fmt.Errorf("actions[0]: must be generic_key %s or %s with the limit's ID", descLimit, descQuota)
	}
	lim.ID, lim.Quota = gk.GetDescriptorValue(), gk.GetDescriptorKey() == descQuota
	entries = append(entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: gk.GetDescriptorKey(), Value: gk.GetDescriptorValue()})
	acts = acts[1:]
	if len(acts) > 0 {
		if hv := acts[0].GetHeaderValueMatch(); hv != nil {
			if hv.GetExpectMatch() != nil && !hv.GetExpectMatch().GetValue() {
				return lim, nil, errors.New("header_value_match: expect_match false is not supported")
			}
			if hv.GetDescriptorKey() != descMatch {
				return lim, nil, fmt.Errorf("header_value_match: descriptor_key must be %s", descMatch)
			}
			for i, h := range hv.GetHeaders() {
				m, err := conditionOf(h)
				if err != nil {
					return lim, nil, fmt.Errorf("header_value_match.headers[%d]: %w", i, err)
				}
				lim.Match = append(lim.Match, m)
			}
			entries = append(entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: descMatch, Value: hv.GetDescriptorValue()})
			acts = acts[1:]
		}
	}
	if len(acts) > 0 {
		key, err := keyOf(acts[0])
		if err != nil {
			return lim, nil, err
		}
		lim.Key, lim.Header = key.typ, key.header
		entries = append(entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: key.entry})
		acts = acts[1:]
	}
	if len(acts) > 0 {
		return lim, nil, errors.New("actions: more than generic_key, header_value_match and one key action")
	}
	return lim, entries, nil
}

type keyAction struct {
	typ    ratelimit.KeyType
	header string
	entry  string
}

// keyOf compiles the action that fills a keyed descriptor's entry.
func keyOf(a *routev3.RateLimit_Action) (keyAction, error) {
	if rh := a.GetRequestHeaders(); rh != nil {
		name := http.CanonicalHeaderKey(rh.GetHeaderName())
		switch {
		case rh.GetSkipIfAbsent():
			return keyAction{}, errors.New("request_headers: skip_if_absent is not supported")
		case rh.GetDescriptorKey() == descPrincipal && name == ratelimit.ClientIDHeader:
			return keyAction{ratelimit.KeyPrincipal, "", descPrincipal}, nil
		case rh.GetDescriptorKey() == descHeader && name != "" && name[0] != ':':
			return keyAction{ratelimit.KeyHeader, name, descHeader}, nil
		}
		return keyAction{}, fmt.Errorf("request_headers %q as %q: want %s as %s, or a header as %s", rh.GetHeaderName(), rh.GetDescriptorKey(), ratelimit.ClientIDHeader, descPrincipal, descHeader)
	}
	if md := a.GetMetadata(); md != nil {
		path := md.GetMetadataKey().GetPath()
		if md.GetSource() == routev3.RateLimit_Action_MetaData_DYNAMIC && md.GetMetadataKey().GetKey() == peerMetadata && len(path) == 1 && md.GetDefaultValue() == "" && !md.GetSkipIfAbsent() {
			switch {
			case md.GetDescriptorKey() == descSourceNamespace && path[0].GetKey() == "namespace":
				return keyAction{ratelimit.KeyNamespace, "", descSourceNamespace}, nil
			case md.GetDescriptorKey() == descSourceCluster && path[0].GetKey() == "cluster":
				return keyAction{ratelimit.KeyCluster, "", descSourceCluster}, nil
			}
		}
		return keyAction{}, fmt.Errorf("metadata: only dynamic %s namespace as %s and cluster as %s are supported", peerMetadata, descSourceNamespace, descSourceCluster)
	}
	return keyAction{}, fmt.Errorf("action %T is not supported", a.GetActionSpecifier())
}

// conditionOf compiles a HeaderMatcher: string_match (exact, prefix,
// suffix, safe_regex) or present_match, optionally inverted.
func conditionOf(h *routev3.HeaderMatcher) (ratelimit.HeaderMatch, error) {
	if h.GetTreatMissingHeaderAsEmpty() {
		return ratelimit.HeaderMatch{}, errors.New("treat_missing_header_as_empty is not supported")
	}
	if h.GetPresentMatch() {
		return ratelimit.NewHeaderMatch(h.GetName(), ratelimit.MatchPresent, "", h.GetInvertMatch())
	}
	sm := h.GetStringMatch()
	if sm == nil {
		return ratelimit.HeaderMatch{}, errors.New("only string_match and present_match are supported")
	}
	if sm.GetIgnoreCase() {
		return ratelimit.HeaderMatch{}, errors.New("string_match: ignore_case is not supported")
	}
	var (
		kind  ratelimit.MatchKind
		value string
	)
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		kind, value = ratelimit.MatchExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		kind, value = ratelimit.MatchPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		kind, value = ratelimit.MatchSuffix, p.Suffix
	case *matcherv3.StringMatcher_SafeRegex:
		kind, value = ratelimit.MatchRegex, p.SafeRegex.GetRegex()
	default:
		return ratelimit.HeaderMatch{}, fmt.Errorf("string_match: %T is not supported", p)
	}
	return ratelimit.NewHeaderMatch(h.GetName(), kind, value, h.GetInvertMatch())
}

// connectionLimit compiles an envoy.filters.network.local_ratelimit
// config: one Limit of new connections, named by its stat_prefix.
func connectionLimit(c *localrlnetv3.LocalRateLimit) (ratelimit.Limit, error) {
	if c.GetShareKey() != "" {
		return ratelimit.Limit{}, errors.New("share_key is not supported")
	}
	if re := c.GetRuntimeEnabled(); re != nil && (re.GetDefaultValue() != nil && !re.GetDefaultValue().GetValue()) {
		return ratelimit.Limit{}, errors.New("runtime_enabled: a disabled filter is not supported")
	}
	b, err := bucket(c.GetTokenBucket())
	if err != nil {
		return ratelimit.Limit{}, err
	}
	if c.GetStatPrefix() == "" {
		return ratelimit.Limit{}, errors.New("stat_prefix: missing")
	}
	return ratelimit.Limit{ID: c.GetStatPrefix(), Bucket: b}, nil
}
