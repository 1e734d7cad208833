package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KindRateLimitPolicy is the kind of a RateLimitPolicy.
const KindRateLimitPolicy = "RateLimitPolicy"

// RateLimitPolicy limits the requests and connections a service's
// workloads accept. The server's sidecar enforces it (inbound): local
// limits are token buckets in each sidecar; a quota is one limit for the
// whole clusterset, split into per-sidecar shares by the control planes
// (no central rate-limit service).
type RateLimitPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RateLimitSpec `json:"spec"`
}

// Key returns "NAMESPACE/NAME".
func (p *RateLimitPolicy) Key() string { return p.Namespace + "/" + p.Name }

// RateLimitSpec is the body of a RateLimitPolicy.
type RateLimitSpec struct {
	// TargetRefs name Services ("" group, kind Service) of the policy's
	// namespace: the limits apply to the inbound traffic of the
	// workloads whose endpoints serve them. Empty: every workload of the
	// namespace.
	TargetRefs []TargetRef `json:"targetRefs,omitempty"`
	// Local are token buckets kept by each server sidecar on its own.
	Local []LocalRateLimit `json:"local,omitempty"`
	// Quotas are limits across the whole clusterset.
	Quotas []Quota `json:"quotas,omitempty"`
	// TCP limits new connections to opaque TCP ports.
	TCP *ConnectionRateLimit `json:"tcp,omitempty"`
}

// LocalRateLimit is one token bucket per sidecar (per key, when Key is
// set): Requests tokens every Interval, up to Burst.
type LocalRateLimit struct {
	// Name identifies the limit within the policy (DNS label); it names
	// the limit in metrics, headers and status.
	Name string `json:"name"`
	// Match selects the requests counted; nil: every request.
	Match *RateLimitMatch `json:"match,omitempty"`
	// Key splits the bucket: one bucket per value of the key. Nil: one
	// bucket for the sidecar.
	Key *RateLimitKey `json:"key,omitempty"`
	// Requests is the number of tokens added every Interval (>= 1).
	Requests int64 `json:"requests"`
	// Interval is the refill period (>= 50ms, Envoy's shortest
	// fill_interval; <= 24h).
	Interval metav1.Duration `json:"interval"`
	// Burst is the bucket size; 0 means Requests.
	Burst int64 `json:"burst,omitempty"`
}

// RateLimitMatch selects requests by what they ask for, with the fields
// and semantics of an AuthorizationPolicy operation (every set field must
// match), plus header conditions.
type RateLimitMatch struct {
	Operation `json:",inline"`
	// Headers are request header conditions (key "request.headers[NAME]"
	// is written here as the header name).
	Headers []HeaderCondition `json:"headers,omitempty"`
}

// HeaderCondition matches one request header against values (globs as
// in AuthorizationPolicy paths).
type HeaderCondition struct {
	Name   string   `json:"name"`
	Values []string `json:"values,omitempty"`
}

// RateLimitKeyType is what a keyed bucket is split by.
type RateLimitKeyType string

// Key types.
const (
	// KeyPrincipal: the caller's SPIFFE ID (every inbound connection is
	// mutual TLS, so every caller has one).
	KeyPrincipal RateLimitKeyType = "Principal"
	// KeySourceNamespace: the caller's namespace, from its SPIFFE ID.
	KeySourceNamespace RateLimitKeyType = "SourceNamespace"
	// KeySourceCluster: the caller's cluster.
	KeySourceCluster RateLimitKeyType = "SourceCluster"
	// KeyHeader: the value of the request header named in Header.
	KeyHeader RateLimitKeyType = "Header"
)

// RateLimitKey splits a bucket by a property of the request. A request
// without a value for the key (no such header) is not counted by the
// limit, as in Envoy. A sidecar keeps at most 1024 keys per limit, the
// least recently used evicted (docs/ratelimit.md).
type RateLimitKey struct {
	Type RateLimitKeyType `json:"type"`
	// Header names the header when Type is Header.
	Header string `json:"header,omitempty"`
}

// Quota is a limit for the whole clusterset: Requests per Interval
// admitted by all the server sidecars of the target services together.
type Quota struct {
	// Name identifies the quota within the policy (DNS label).
	Name string `json:"name"`
	// Match selects the requests counted; nil: every request.
	Match *RateLimitMatch `json:"match,omitempty"`
	// Principals are the callers (SPIFFE IDs, globs as in
	// AuthorizationPolicy) the quota counts, together; empty: anyone.
	// Calls from other principals are not counted nor limited by it.
	Principals []string `json:"principals,omitempty"`
	// Requests is the number of requests admitted per Interval across
	// the clusterset (>= 1).
	Requests int64 `json:"requests"`
	// Interval is the quota's period (>= 1s, <= 24h).
	Interval metav1.Duration `json:"interval"`
}

// ConnectionRateLimit limits new connections to opaque TCP ports.
type ConnectionRateLimit struct {
	// Ports limited; empty: every opaque TCP port of the target.
	Ports []Port `json:"ports,omitempty"`
	// ConnectionsPerSecond is the refill rate (>= 1).
	ConnectionsPerSecond int64 `json:"connectionsPerSecond"`
	// Burst is the bucket size; 0 means ConnectionsPerSecond.
	Burst int64 `json:"burst,omitempty"`
}
