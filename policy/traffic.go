package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// API groups, versions and kinds of the traffic objects: Gateway API
// routes in their mesh form (GAMMA) and fedmesh's own policies.
const (
	GatewayGroup      = "gateway.networking.k8s.io"
	GatewayAPIVersion = GatewayGroup + "/v1"
	KindHTTPRoute     = "HTTPRoute"
	KindGRPCRoute     = "GRPCRoute"

	// MCSGroup is the Multi-Cluster Services API group of ServiceImport.
	MCSGroup          = "multicluster.x-k8s.io"
	KindService       = "Service"
	KindServiceImport = "ServiceImport"

	KindResiliencePolicy = "ResiliencePolicy"
	KindFaultInjection   = "FaultInjection"
)

// Traffic is the set of traffic objects of one origin (a cluster's
// source, or a producer's export): routes and the policies they use.
// Every object is valid; each list is sorted by namespace/name.
type Traffic struct {
	HTTPRoutes []gatewayv1.HTTPRoute `json:"httpRoutes,omitempty"`
	GRPCRoutes []gatewayv1.GRPCRoute `json:"grpcRoutes,omitempty"`
	Resilience []ResiliencePolicy    `json:"resiliencePolicies,omitempty"`
	Faults     []FaultInjection      `json:"faultInjections,omitempty"`
	// Telemetry is local to its cluster: never a producer policy
	// (ProducerOf and EncodePolicies leave it out).
	Telemetry []TelemetryPolicy `json:"telemetryPolicies,omitempty"`
	// RateLimits are enforced by the servers of their cluster: never a
	// producer policy either.
	RateLimits []RateLimitPolicy `json:"rateLimitPolicies,omitempty"`
}

// Empty reports whether the set holds no object.
func (t *Traffic) Empty() bool {
	return len(t.HTTPRoutes) == 0 && len(t.GRPCRoutes) == 0 && len(t.Resilience) == 0 && len(t.Faults) == 0 && len(t.Telemetry) == 0 && len(t.RateLimits) == 0
}

// ResiliencePolicy (fedmesh.io/v1alpha1) says how callers reach the
// Services or ServiceImports it targets: retries, timeouts, connection
// limits, outlier detection, load balancing and failover order. The
// caller's sidecar enforces it; a policy in the service's own namespace
// (producer side) travels with the service's export to every cluster.
type ResiliencePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ResilienceSpec `json:"spec"`
}

// Key returns "NAMESPACE/NAME".
func (p *ResiliencePolicy) Key() string { return p.Namespace + "/" + p.Name }

// ResilienceSpec is the body of a ResiliencePolicy. Every field is
// optional; what is unset keeps the mesh default.
type ResilienceSpec struct {
	// TargetRefs name Services ("" group) or ServiceImports
	// (multicluster.x-k8s.io) of the policy's namespace; both mean the
	// service across the clusterset. At least one.
	TargetRefs []TargetRef `json:"targetRefs"`
	// Retry is the retry policy of requests to the targets; a route
	// rule's own retry overrides it.
	Retry *Retry `json:"retry,omitempty"`
	// Timeouts bound requests and connections; a route rule's own
	// timeouts override Request.
	Timeouts *Timeouts `json:"timeouts,omitempty"`
	// ConnectionLimits are the circuit breaker thresholds.
	ConnectionLimits *ConnectionLimits `json:"connectionLimits,omitempty"`
	// OutlierDetection ejects failing endpoints.
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	// LoadBalancer picks the algorithm and, for RingHash, the hash key.
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
	// Failover orders the clusters a caller fails over to.
	Failover *Failover `json:"failover,omitempty"`
}

// RetryOn is a condition that allows a retry, in Envoy's x-envoy-retry-on
// and x-envoy-retry-grpc-on vocabulary.
type RetryOn string

// Retry conditions.
const (
	RetryOn5xx                  RetryOn = "5xx"
	RetryOnGatewayError         RetryOn = "gateway-error"
	RetryOnReset                RetryOn = "reset"
	RetryOnConnectFailure       RetryOn = "connect-failure"
	RetryOnRetriableStatusCodes RetryOn = "retriable-status-codes"
	// gRPC status conditions.
	RetryOnCancelled         RetryOn = "cancelled"
	RetryOnDeadlineExceeded  RetryOn = "deadline-exceeded"
	RetryOnInternal          RetryOn = "internal"
	RetryOnResourceExhausted RetryOn = "resource-exhausted"
	RetryOnUnavailable       RetryOn = "unavailable"
)

// Retry is a retry policy.
type Retry struct {
	// Attempts is how many times a failed request is retried (0: never).
	Attempts *int32 `json:"attempts,omitempty"`
	// RetryOn lists the conditions retried; empty: connect-failure, reset,
	// gateway-error and unavailable.
	RetryOn []RetryOn `json:"retryOn,omitempty"`
	// StatusCodes are further retriable HTTP statuses (400-599); they
	// imply retriable-status-codes.
	StatusCodes []int32 `json:"statusCodes,omitempty"`
	// PerTryTimeout bounds each attempt.
	PerTryTimeout *metav1.Duration `json:"perTryTimeout,omitempty"`
	// Backoff spaces the attempts.
	Backoff *Backoff `json:"backoff,omitempty"`
}

// Backoff is an exponential backoff with jitter between retries.
type Backoff struct {
	BaseInterval *metav1.Duration `json:"baseInterval,omitempty"`
	MaxInterval  *metav1.Duration `json:"maxInterval,omitempty"`
}

// Timeouts bound a request and the connections that carry it.
type Timeouts struct {
	// Request bounds a whole request, retries included.
	Request *metav1.Duration `json:"request,omitempty"`
	// Idle closes an upstream connection idle that long.
	Idle *metav1.Duration `json:"idle,omitempty"`
	// Connect bounds each dial and TLS handshake.
	Connect *metav1.Duration `json:"connect,omitempty"`
}

// ConnectionLimits are circuit breaker thresholds per caller sidecar.
type ConnectionLimits struct {
	MaxConnections     *int32 `json:"maxConnections,omitempty"`
	MaxPendingRequests *int32 `json:"maxPendingRequests,omitempty"`
	MaxRequests        *int32 `json:"maxRequests,omitempty"`
	MaxRetries         *int32 `json:"maxRetries,omitempty"`
}

// OutlierDetection ejects an endpoint after consecutive failures, for a
// time that grows with each ejection.
type OutlierDetection struct {
	Consecutive5xx           *int32           `json:"consecutive5xx,omitempty"`
	ConsecutiveGatewayErrors *int32           `json:"consecutiveGatewayErrors,omitempty"`
	Interval                 *metav1.Duration `json:"interval,omitempty"`
	BaseEjectionTime         *metav1.Duration `json:"baseEjectionTime,omitempty"`
	MaxEjectionPercent       *int32           `json:"maxEjectionPercent,omitempty"`
}

// LBAlgorithm is a load-balancing algorithm.
type LBAlgorithm string

// Load-balancing algorithms.
const (
	LBLeastRequest LBAlgorithm = "LeastRequest"
	LBRoundRobin   LBAlgorithm = "RoundRobin"
	LBRingHash     LBAlgorithm = "RingHash"
)

// LoadBalancer picks how endpoints are chosen within a priority.
type LoadBalancer struct {
	// Algorithm is LeastRequest (the default), RoundRobin or RingHash.
	Algorithm LBAlgorithm `json:"algorithm,omitempty"`
	// RingHash sizes the ring (RingHash only).
	RingHash *RingHash `json:"ringHash,omitempty"`
	// HashKey is what requests hash on (RingHash only, required there):
	// the same key reaches the same endpoint while it is healthy.
	HashKey *HashKey `json:"hashKey,omitempty"`
}

// RingHash sizes a hash ring.
type RingHash struct {
	MinimumRingSize *int64 `json:"minimumRingSize,omitempty"`
	MaximumRingSize *int64 `json:"maximumRingSize,omitempty"`
}

// HashKey is one request property to hash on; exactly one is set.
type HashKey struct {
	Header         string `json:"header,omitempty"`
	Cookie         string `json:"cookie,omitempty"`
	QueryParameter string `json:"queryParameter,omitempty"`
	SourceIP       bool   `json:"sourceIP,omitempty"`
}

// Failover orders where a caller's requests go when its own locality has
// no healthy endpoint: the topology policy, per service.
type Failover struct {
	// Regions are tried in order after the caller's own region, ahead of
	// every other region (which follow by RTT).
	Regions []string `json:"regions,omitempty"`
	// FailoverPriority lists endpoint label keys, most significant first,
	// as Istio's failoverPriority.
	FailoverPriority []string `json:"failoverPriority,omitempty"`
}

// FaultInjection (fedmesh.io/v1alpha1) delays or aborts a share of
// requests at the caller's sidecar, to test how callers cope. An
// HTTPRoute or GRPCRoute rule uses it as an ExtensionRef filter (group
// fedmesh.io, kind FaultInjection, a name in the route's namespace).
type FaultInjection struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              FaultInjectionSpec `json:"spec"`
}

// Key returns "NAMESPACE/NAME".
func (f *FaultInjection) Key() string { return f.Namespace + "/" + f.Name }

// FaultInjectionSpec is the body of a FaultInjection: a delay, an abort
// or both.
type FaultInjectionSpec struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
	// Headers, when set, limit the fault to requests matching all of them.
	Headers []gatewayv1.HTTPHeaderMatch `json:"headers,omitempty"`
}

// FaultDelay delays Percentage percent of requests by Fixed.
type FaultDelay struct {
	Fixed      metav1.Duration `json:"fixed"`
	Percentage Percent         `json:"percentage"`
}

// FaultAbort answers Percentage percent of requests itself, with an HTTP
// status (HTTP routes) or a gRPC status (gRPC routes); exactly one.
type FaultAbort struct {
	HTTPStatus *int32  `json:"httpStatus,omitempty"`
	GRPCStatus *int32  `json:"grpcStatus,omitempty"`
	Percentage Percent `json:"percentage"`
}

// Percent is a share in percent, 0 to 100, with up to 4 decimals.
type Percent float64
