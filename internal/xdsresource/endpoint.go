package xdsresource

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// Endpoint is one LbEndpoint: an address, its health, and the metadata a
// sidecar needs (docs/xds.md, section 3).
type Endpoint struct {
	Host    string
	Port    uint32
	Healthy bool
	// Weight is the endpoint's load balancing weight; 0 leaves it unset.
	Weight uint32
	// Cluster is the cluster the endpoint belongs to.
	Cluster string
	// Identity is the SPIFFE ID the endpoint presents.
	Identity string
	// SNI is set when the address is another cluster's gateway.
	SNI string
	// Workload is the endpoint's workload name, sent as
	// Endpoint.hostname; "" leaves it unset (a gateway standing for
	// endpoints of several workloads).
	Workload string
}

// ClusterLoadAssignment is EDS resource name with the given localities
// and Envoy's overprovisioning factor (percent).
func ClusterLoadAssignment(name string, overprovisioning uint32, localities []*endpointv3.LocalityLbEndpoints) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints:   localities,
		Policy: &endpointv3.ClusterLoadAssignment_Policy{
			OverprovisioningFactor: wrapperspb.UInt32(overprovisioning),
		},
	}
}

// Locality is one locality's endpoints at one priority, with a load
// balancing weight. The sub-zone is the endpoints' cluster.
func Locality(priority uint32, region, zone, subZone string, weight uint32, eps []*endpointv3.LbEndpoint) *endpointv3.LocalityLbEndpoints {
	return &endpointv3.LocalityLbEndpoints{
		Locality:            &corev3.Locality{Region: region, Zone: zone, SubZone: subZone},
		Priority:            priority,
		LoadBalancingWeight: wrapperspb.UInt32(weight),
		LbEndpoints:         eps,
	}
}

// LbEndpoint is one endpoint with its health, weight and metadata.
func LbEndpoint(e *Endpoint) *endpointv3.LbEndpoint {
	lb := &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address:  SocketAddress(e.Host, e.Port),
			Hostname: e.Workload,
		}},
		HealthStatus: corev3.HealthStatus_UNHEALTHY,
		Metadata:     endpointMetadata(e),
	}
	if e.Healthy {
		lb.HealthStatus = corev3.HealthStatus_HEALTHY
	}
	if e.Weight > 0 {
		lb.LoadBalancingWeight = wrapperspb.UInt32(e.Weight)
	}
	return lb
}

func endpointMetadata(e *Endpoint) *corev3.Metadata {
	f := map[string]*structpb.Value{
		naming.EndpointCluster:  structpb.NewStringValue(e.Cluster),
		naming.EndpointIdentity: structpb.NewStringValue(e.Identity),
	}
	if e.SNI != "" {
		f[naming.EndpointSNI] = structpb.NewStringValue(e.SNI)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		naming.MetadataNamespace: {Fields: f},
	}}
}
