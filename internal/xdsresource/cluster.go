package xdsresource

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Cluster says what an EDS cluster is (docs/xds.md, sections 2, 6, 7).
type Cluster struct {
	// Name is the cluster's (and its EDS resource's) name.
	Name string
	// ConnectTimeout of new upstream connections.
	ConnectTimeout time.Duration
	// LB is the load balancing policy; LEAST_REQUEST gets two choices.
	LB clusterv3.Cluster_LbPolicy
	// TLS, when set, is the upstream mTLS context (sidecars only).
	TLS *UpstreamTLS
	// Outlier, when set, is the outlier detection.
	Outlier *Outlier
	// Limits are the circuit breaker thresholds.
	Limits Limits
	// PanicThreshold is the healthy panic threshold in percent.
	PanicThreshold float64
	// RingHash sizes the ring of a RING_HASH cluster; nil takes the
	// defaults. The hash function is always XX_HASH.
	RingHash *RingHash
	// IdleTimeout, when above 0, closes upstream connections idle that
	// long (HttpProtocolOptions.common_http_protocol_options).
	IdleTimeout time.Duration
}

// RingHash sizes a hash ring; 0 leaves a bound at its default.
type RingHash struct {
	MinimumRingSize, MaximumRingSize uint64
}

// Outlier is a cluster's outlier detection: an endpoint with Consecutive5xx
// 5xx or gateway failures in a row is ejected for BaseEjectionTime, longer
// with each ejection.
type Outlier struct {
	Consecutive5xx uint32
	// ConsecutiveGatewayFailure is the threshold for 502, 503, 504 and
	// connect failures; 0 means Consecutive5xx.
	ConsecutiveGatewayFailure uint32
	Interval                  time.Duration
	BaseEjectionTime          time.Duration
	MaxEjectionPercent        uint32
}

// Limits are a cluster's circuit breaker thresholds (priority DEFAULT).
type Limits struct {
	MaxConnections, MaxPendingRequests, MaxRequests, MaxRetries uint32
}

// EDSCluster builds an EDS cluster whose endpoints come over ADS.
func EDSCluster(c Cluster) *clusterv3.Cluster {
	out := &clusterv3.Cluster{
		Name:                 c.Name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ADS()},
		ConnectTimeout:       durationpb.New(c.ConnectTimeout),
		LbPolicy:             c.LB,
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:           corev3.RoutingPriority_DEFAULT,
			MaxConnections:     wrapperspb.UInt32(c.Limits.MaxConnections),
			MaxPendingRequests: wrapperspb.UInt32(c.Limits.MaxPendingRequests),
			MaxRequests:        wrapperspb.UInt32(c.Limits.MaxRequests),
			MaxRetries:         wrapperspb.UInt32(c.Limits.MaxRetries),
		}}},
		CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{
			HealthyPanicThreshold: &typev3.Percent{Value: c.PanicThreshold},
		},
	}
	if c.LB == clusterv3.Cluster_LEAST_REQUEST {
		out.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
			ChoiceCount: wrapperspb.UInt32(2),
		}}
	}
	if c.LB == clusterv3.Cluster_RING_HASH {
		rh := &clusterv3.Cluster_RingHashLbConfig{HashFunction: clusterv3.Cluster_RingHashLbConfig_XX_HASH}
		if r := c.RingHash; r != nil {
			if r.MinimumRingSize > 0 {
				rh.MinimumRingSize = wrapperspb.UInt64(r.MinimumRingSize)
			}
			if r.MaximumRingSize > 0 {
				rh.MaximumRingSize = wrapperspb.UInt64(r.MaximumRingSize)
			}
		}
		out.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: rh}
	}
	if c.IdleTimeout > 0 {
		out.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			HTTPProtocolOptionsKey: Any(&upstreamhttpv3.HttpProtocolOptions{
				CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(c.IdleTimeout)},
				UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_AutoConfig{AutoConfig: &upstreamhttpv3.HttpProtocolOptions_AutoHttpConfig{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				}},
			}),
		}
	}
	if o := c.Outlier; o != nil {
		gw := o.ConsecutiveGatewayFailure
		if gw == 0 {
			gw = o.Consecutive5xx
		}
		out.OutlierDetection = &clusterv3.OutlierDetection{
			Consecutive_5Xx:                    wrapperspb.UInt32(o.Consecutive5xx),
			ConsecutiveGatewayFailure:          wrapperspb.UInt32(gw),
			EnforcingConsecutive_5Xx:           wrapperspb.UInt32(100),
			EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
			Interval:                           durationpb.New(o.Interval),
			BaseEjectionTime:                   durationpb.New(o.BaseEjectionTime),
			MaxEjectionPercent:                 wrapperspb.UInt32(o.MaxEjectionPercent),
		}
	}
	if c.TLS != nil {
		out.TransportSocket = c.TLS.socket()
	}
	return out
}

// StaticCluster builds a cluster of one fixed address: a sidecar's
// inbound cluster to its app. With h2 the sidecar speaks HTTP/2 without
// TLS (h2c) to the app.
func StaticCluster(name, host string, port uint32, connectTimeout time.Duration, h2 bool) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: SocketAddress(host, port)}},
				}},
			}},
		},
	}
	if h2 {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			HTTPProtocolOptionsKey: Any(&upstreamhttpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				}},
			}),
		}
	}
	return c
}

// HTTPProtocolOptionsKey is the typed_extension_protocol_options key of
// upstream HTTP protocol options.
const HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
