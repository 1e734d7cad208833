// Package plantest holds the federation that the plan's and the xDS
// renderer's tests share: three clusters in two regions, echo exported
// from all three and store from west-1 only.
package plantest

import (
	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/topology"
)

// TrustDomain is the tests' trust domain.
const TrustDomain = "fedmesh.test"

// The clusters' localities.
var (
	East1 = topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"}
	East2 = topology.Locality{Region: "us-east", Zone: "b", Cluster: "east-2"}
	West1 = topology.Locality{Region: "us-west", Zone: "a", Cluster: "west-1"}
)

// Names of echo's port 8080.
const (
	EchoSNI     = "8080.echo.demo.svc.clusterset.local"
	EchoCluster = "outbound|8080||echo.demo.svc.clusterset.local"
)

// Endpoint is an echo endpoint on addr:15006 (port "http", service
// account echo, workload echo-ADDR), healthy or not for reason why.
func Endpoint(addr string, loc topology.Locality, healthy bool, why string) catalog.ViewEndpoint {
	return catalog.ViewEndpoint{
		Endpoint: catalog.Endpoint{
			Address: addr, Port: 15006, PortName: "http", Locality: loc, Ready: healthy, Serving: healthy,
			ServiceAccount: "echo", Workload: "echo-" + addr,
		},
		Healthy: healthy, HealthReason: why,
	}
}

// View is the federation as cluster local sees it, changed by mutate:
// echo (HTTP, 8080) with two replicas in east-1 (one not ready), one in
// east-2 and two in west-1; store (TCP, 5432) in west-1 only. Each cluster
// has a gateway on 127.0.0.1x:15443.
func View(local string, mutate ...func(*catalog.View)) *catalog.View {
	v := &catalog.View{
		Revision: 1,
		Local:    local,
		Clusters: map[string]catalog.ClusterInfo{
			"east-1": {Name: "east-1", Locality: East1, GatewayAddress: "127.0.0.11:15443"},
			"east-2": {Name: "east-2", Locality: East2, GatewayAddress: "127.0.0.12:15443"},
			"west-1": {Name: "west-1", Locality: West1, GatewayAddress: "127.0.0.13:15443"},
		},
		Services: []catalog.ImportedService{
			{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{{Name: "http", Port: 8080, AppProtocol: catalog.AppHTTP}},
				Clusters: []string{"east-1", "east-2", "west-1"},
				Endpoints: []catalog.ViewEndpoint{
					Endpoint("127.0.1.1", East1, true, ""),
					Endpoint("127.0.1.2", East1, false, "not ready"),
					Endpoint("127.0.2.1", East2, true, ""),
					Endpoint("127.0.3.1", West1, true, ""),
					Endpoint("127.0.3.2", West1, true, ""),
				},
			},
			{
				Namespace: "demo", Name: "store", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{{Name: "tcp", Port: 5432}},
				Clusters: []string{"west-1"},
				Endpoints: []catalog.ViewEndpoint{{
					Endpoint: catalog.Endpoint{Address: "127.0.3.9", Port: 15006, PortName: "tcp", Locality: West1, Ready: true, ServiceAccount: "store"},
					Healthy:  true,
				}},
			},
		},
	}
	for _, m := range mutate {
		m(v)
	}
	return v
}
