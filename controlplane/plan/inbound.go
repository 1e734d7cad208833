package plan

import (
	"maps"
	"slices"
	"sort"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// Inbound is the plan of a sidecar's server side: one listener per
// address its workload's endpoints serve on, and one cluster per service
// port to the app.
type Inbound struct {
	// Listeners are sorted by address then port.
	Listeners []InboundListener
	// Clusters are in view order.
	Clusters []InboundCluster
}

// InboundListener terminates mTLS on Address:Port and picks a chain by
// SNI.
type InboundListener struct {
	Address string
	Port    int32
	Chains  []InboundChain
}

// InboundChain sends connections for one service port (by SNI) to the
// service port's inbound cluster.
type InboundChain struct {
	SNI     string
	HTTP    bool
	Cluster string
	// Authz is what the chain enforces; nil when no policy applies.
	Authz *Authorization
	// RateLimit is what the chain limits; nil when no RateLimitPolicy
	// applies.
	RateLimit *RateLimit
}

// InboundCluster is where a service port's app listens.
type InboundCluster struct {
	Name    string
	Host    string
	AppPort int32
}

// Inbound plans the server side of the sidecar of workload in namespace:
// the local cluster's endpoints of that workload. appPort says where the
// app listens for a service port. Quota shares are the defaults; see
// InboundNode.
func (p *Plan) Inbound(namespace, workload string, appPort func(catalog.Port) int32) Inbound {
	return p.InboundNode(namespace, workload, "", appPort)
}

// InboundNode is Inbound for the node nodeID (its xDS node.id), whose
// quota shares RateLimitInput.QuotaShares gives.
func (p *Plan) InboundNode(namespace, workload, nodeID string, appPort func(catalog.Port) int32) Inbound {
	var in Inbound
	if workload == "" {
		return in
	}
	type listenerKey struct {
		addr string
		port int32
	}
	listeners := map[listenerKey]*InboundListener{}
	seenSNI := map[listenerKey]map[string]bool{}
	seenCluster := map[string]bool{}
	for _, ref := range p.workloadEndpoints(namespace, workload) {
		svc := &p.view.Services[ref.svc]
		ep := &svc.Endpoints[ref.ep]
		port, ok := (&catalog.Service{Ports: svc.Ports}).PortByName(ep.PortName)
		if !ok {
			continue
		}
		sp := naming.ServicePort{Namespace: svc.Namespace, Name: svc.Name, Port: port.Port}
		k := listenerKey{ep.Address, ep.Port}
		if seenSNI[k] == nil {
			seenSNI[k] = map[string]bool{}
			listeners[k] = &InboundListener{Address: ep.Address, Port: ep.Port}
		}
		if seenSNI[k][sp.SNI()] {
			continue
		}
		seenSNI[k][sp.SNI()] = true
		name := sp.InboundCluster()
		listeners[k].Chains = append(listeners[k].Chains, InboundChain{SNI: sp.SNI(), HTTP: IsHTTP(port), Cluster: name, Authz: p.Authorization(sp, IsHTTP(port)), RateLimit: p.RateLimit(sp, IsHTTP(port), nodeID)})
		if !seenCluster[name] {
			seenCluster[name] = true
			in.Clusters = append(in.Clusters, InboundCluster{Name: name, Host: ep.Address, AppPort: appPort(port)})
		}
	}
	keys := slices.Collect(maps.Keys(listeners))
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].addr != keys[j].addr {
			return keys[i].addr < keys[j].addr
		}
		return keys[i].port < keys[j].port
	})
	for _, k := range keys {
		in.Listeners = append(in.Listeners, *listeners[k])
	}
	return in
}

type workloadKey struct{ namespace, workload string }

// endpointRef points at View.Services[svc].Endpoints[ep].
type endpointRef struct{ svc, ep int }

// workloadEndpoints returns the local-cluster endpoints of one workload,
// in view order; the index is built once per plan.
func (p *Plan) workloadEndpoints(namespace, workload string) []endpointRef {
	p.workloadsOnce.Do(func() {
		p.workloads = make(map[workloadKey][]endpointRef)
		for i := range p.view.Services {
			svc := &p.view.Services[i]
			for j := range svc.Endpoints {
				ep := &svc.Endpoints[j]
				if ep.Workload == "" || ep.Locality.Cluster != p.view.Local {
					continue
				}
				k := workloadKey{svc.Namespace, ep.Workload}
				p.workloads[k] = append(p.workloads[k], endpointRef{i, j})
			}
		}
	})
	return p.workloads[workloadKey{namespace, workload}]
}
