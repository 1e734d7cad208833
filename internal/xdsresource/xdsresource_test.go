package xdsresource

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// Every builder makes a resource that passes Envoy's own validation rules
// (protoc-gen-validate), typed configs inside it included.
func TestResourcesValidate(t *testing.T) {
	sp := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	tests := []struct {
		name string
		r    Resource
	}{
		{"eds cluster with tls", EDSCluster(Cluster{
			Name: sp.OutboundCluster(), ConnectTimeout: 5 * time.Second, LB: clusterv3.Cluster_LEAST_REQUEST,
			TLS:     &UpstreamTLS{SNI: sp.SNI(), SANs: []string{"spiffe://td/ns/demo/sa/echo"}, ALPN: ALPN(true)},
			Outlier: &Outlier{Consecutive5xx: 5, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 100},
			Limits:  Limits{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1, MaxRetries: 1}, PanicThreshold: 50,
		})},
		{"static h2 cluster", StaticCluster(sp.InboundCluster(), "127.0.0.1", 9080, time.Second, true)},
		{"assignment", ClusterLoadAssignment(sp.OutboundCluster(), 140, []*endpointv3.LocalityLbEndpoints{
			Locality(1, "r", "z", "c", 2, []*endpointv3.LbEndpoint{
				LbEndpoint(&Endpoint{Host: "127.0.0.1", Port: 15443, Healthy: true, Weight: 2, Cluster: "c", Identity: "spiffe://td/ns/demo/sa/echo", SNI: sp.SNI()}),
			}),
		})},
		{"outbound http listener", OutboundListener(sp.OutboundCluster(), 8080, HTTPConnectionManager(sp.OutboundCluster(), "8080"))},
		{"outbound tcp listener", OutboundListener(sp.OutboundCluster(), 8080, TCPProxy(sp.OutboundCluster()))},
		{"api listener", APIListener(sp.Host(), VirtualHost(sp, Route{Timeout: time.Second}))},
		{"inbound listener", InboundListener("127.0.0.1", 15006, []InboundChain{{SNI: sp.SNI(), ALPN: ALPN(true), Cluster: sp.InboundCluster()}})},
		{"gateway listener", GatewayListener("0.0.0.0", 15443, []string{sp.SNI()})},
		{"routes", RouteConfiguration("8080", nil)},
		{"secret", Secrets([]byte("c"), []byte("k"), []byte("b"))[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateDeep(tt.r); err != nil {
				t.Error(err)
			}
		})
	}
}
