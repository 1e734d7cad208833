package xdsresource

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	localrlnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// This file renders inbound rate limits (docs/ratelimit.md): Envoy's
// local rate limit filters, HTTP (envoy.filters.http.local_ratelimit,
// one descriptor and one rate_limits entry per limit) and network
// (envoy.filters.network.local_ratelimit, one per connection limit).

// Filter names of the local rate limit filters.
const (
	HTTPLocalRateLimitName    = "envoy.filters.http.local_ratelimit"
	NetworkLocalRateLimitName = "envoy.filters.network.local_ratelimit"
)

// Descriptor entry keys of the HTTP local rate limit filter. A limit's
// descriptor is its ID under DescriptorLimit (a local limit) or
// DescriptorQuota (a quota's share), then DescriptorMatch when it has
// conditions, then its key's entry, whose empty value makes one bucket
// per value (Envoy's dynamic descriptors).
const (
	DescriptorLimit           = "fedmesh.limit"
	DescriptorQuota           = "fedmesh.quota"
	DescriptorMatch           = "fedmesh.match"
	DescriptorPrincipal       = "principal"
	DescriptorSourceNamespace = "source_namespace"
	DescriptorSourceCluster   = "source_cluster"
	DescriptorHeader          = "header"
)

// Where keyed limits read the caller: the header and the dynamic
// metadata the server sidecar sets from the verified peer.
const (
	ClientIDHeader = "x-fedmesh-client-id"
	PeerMetadata   = "io.fedmesh.peer"
)

// RateLimitKey is what a keyed limit splits its bucket by; "" is no key.
type RateLimitKey string

// Rate limit keys.
const (
	KeyPrincipal       RateLimitKey = "principal"
	KeySourceNamespace RateLimitKey = "source_namespace"
	KeySourceCluster   RateLimitKey = "source_cluster"
	KeyHeader          RateLimitKey = "header"
)

// RateLimit is what one inbound chain limits.
type RateLimit struct {
	// Limits of an HTTP chain, checked in order.
	Limits []RateLimitRule
	// Connections of a TCP chain.
	Connections []ConnectionLimit
	// MaxKeys bounds each keyed limit's buckets
	// (max_dynamic_descriptors).
	MaxKeys uint32
}

// RateLimitRule is one token bucket of an HTTP chain.
type RateLimitRule struct {
	// ID is NAMESPACE/POLICY/NAME; Quota says it is a quota's share.
	ID    string
	Quota bool
	// Conditions must all match.
	Conditions []RateLimitCondition
	// Key splits the bucket; Header names the header of KeyHeader.
	Key    RateLimitKey
	Header string
	Bucket TokenBucket
}

// RateLimitCondition is one HeaderMatcher: Present, or Match; Invert
// negates it.
type RateLimitCondition struct {
	Header  string
	Match   StringMatch
	Present bool
	Invert  bool
}

// TokenBucket is a type.v3.TokenBucket.
type TokenBucket struct {
	MaxTokens     uint32
	TokensPerFill uint32
	FillInterval  time.Duration
}

// ConnectionLimit is one network local rate limit; ID is its
// stat_prefix.
type ConnectionLimit struct {
	ID     string
	Bucket TokenBucket
}

func tokenBucket(b TokenBucket) *typev3.TokenBucket {
	return &typev3.TokenBucket{
		MaxTokens:     b.MaxTokens,
		TokensPerFill: wrapperspb.UInt32(b.TokensPerFill),
		FillInterval:  durationpb.New(b.FillInterval),
	}
}

// always is a runtime fraction of 100% (filter_enabled and
// filter_enforced default to 0%).
func always(key string) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{
		DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED},
		RuntimeKey:   key,
	}
}

// HTTPLocalRateLimit is the envoy.filters.http.local_ratelimit filter of
// an inbound chain counting under statPrefix: no default bucket (a
// request no limit counts passes), one descriptor per limit, X-RateLimit
// (draft 03) and Retry-After headers, and RESOURCE_EXHAUSTED for gRPC.
func HTTPLocalRateLimit(statPrefix string, rl *RateLimit) *hcmv3.HttpFilter {
	cfg := &localrlhttpv3.LocalRateLimit{
		StatPrefix:                     statPrefix,
		FilterEnabled:                  always("fedmesh.ratelimit.enabled"),
		FilterEnforced:                 always("fedmesh.ratelimit.enforced"),
		EnableXRatelimitHeaders:        ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		RateLimitedAsResourceExhausted: true,
		EnableRetryAfterHeader:         true,
	}
	keyed := false
	for i := range rl.Limits {
		r := &rl.Limits[i]
		id := DescriptorLimit
		if r.Quota {
			id = DescriptorQuota
		}
		entries := []*ratelimitv3.RateLimitDescriptor_Entry{{Key: id, Value: r.ID}}
		actions := []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
			GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: id, DescriptorValue: r.ID},
		}}}
		if len(r.Conditions) > 0 {
			hs := make([]*routev3.HeaderMatcher, len(r.Conditions))
			for j := range r.Conditions {
				hs[j] = conditionMatcher(&r.Conditions[j])
			}
			entries = append(entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: DescriptorMatch, Value: "true"})
			actions = append(actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{
				HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
					DescriptorKey: DescriptorMatch, DescriptorValue: "true", ExpectMatch: wrapperspb.Bool(true), Headers: hs,
				},
			}})
		}
		if r.Key != "" {
			keyed = true
			entries = append(entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: string(r.Key)})
			actions = append(actions, keyAction(r.Key, r.Header))
		}
		cfg.Descriptors = append(cfg.Descriptors, &ratelimitv3.LocalRateLimitDescriptor{Entries: entries, TokenBucket: tokenBucket(r.Bucket)})
		cfg.RateLimits = append(cfg.RateLimits, &routev3.RateLimit{Actions: actions})
	}
	if keyed {
		cfg.MaxDynamicDescriptors = wrapperspb.UInt32(rl.MaxKeys)
	}
	return &hcmv3.HttpFilter{
		Name:       HTTPLocalRateLimitName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: Any(cfg)},
	}
}

func conditionMatcher(c *RateLimitCondition) *routev3.HeaderMatcher {
	h := &routev3.HeaderMatcher{Name: c.Header, InvertMatch: c.Invert}
	if c.Present {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	} else {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: StringMatcher(c.Match)}
	}
	return h
}

// keyAction is the rate_limits action that fills a keyed descriptor's
// entry: the client ID header for the principal, the verified peer's
// dynamic metadata for its namespace and cluster, a request header.
func keyAction(k RateLimitKey, header string) *routev3.RateLimit_Action {
	switch k {
	case KeySourceNamespace, KeySourceCluster:
		path := "namespace"
		if k == KeySourceCluster {
			path = "cluster"
		}
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Metadata{Metadata: &routev3.RateLimit_Action_MetaData{
			DescriptorKey: string(k),
			MetadataKey: &metadatav3.MetadataKey{Key: PeerMetadata, Path: []*metadatav3.MetadataKey_PathSegment{{
				Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: path},
			}}},
			Source: routev3.RateLimit_Action_MetaData_DYNAMIC,
		}}}
	case KeyPrincipal:
		header = ClientIDHeader
	}
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
		RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: header, DescriptorKey: string(k)},
	}}
}

// NetworkLocalRateLimit is the envoy.filters.network.local_ratelimit
// filter of connection limit c: new connections beyond its bucket are
// closed.
func NetworkLocalRateLimit(c ConnectionLimit) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: NetworkLocalRateLimitName,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: Any(&localrlnetv3.LocalRateLimit{
			StatPrefix:  c.ID,
			TokenBucket: tokenBucket(c.Bucket),
		})},
	}
}
