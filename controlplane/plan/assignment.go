package plan

import (
	"fmt"
	"maps"

	"slices"
	"sort"
	"strconv"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/hostport"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/topology"
)

// Assignment is the plan of one service port's endpoints as one node
// receives them (an EDS ClusterLoadAssignment).
type Assignment struct {
	// Name is the EDS resource's name: the outbound cluster for clients,
	// the SNI for gateways.
	Name string
	// Localities are the groups sent, by priority then locality.
	Localities []Locality
	// Report explains every endpoint of the port, sent or not.
	Report *ClusterReport
}

// Locality is the endpoints of one locality at one priority.
type Locality struct {
	Priority int
	Locality topology.Locality
	// Weight is the locality's load balancing weight: its healthy
	// endpoints (a gateway counts the healthy endpoints behind it), at
	// least 1.
	Weight    uint32
	Endpoints []Endpoint
}

// Endpoint is one address a node may send to.
type Endpoint struct {
	Host    string
	Port    uint32
	Healthy bool
	// Weight is set (above 0) for a gateway: the number of healthy
	// endpoints behind it, at least 1.
	Weight uint32
	// Cluster is the cluster that serves the endpoint.
	Cluster string
	// Identity is the SPIFFE ID the server presents.
	Identity string
	// SNI is set when Host:Port is another cluster's gateway: it names
	// the service port the gateway routes to.
	SNI string
	// Workload is the catalog workload name of the endpoint (EDS
	// Endpoint.hostname), or, for a gateway, the name every endpoint
	// behind it shares; "" when they differ or a name is not a DNS-1123
	// subdomain (see workloadName).
	Workload string
}

// entry is an Endpoint being planned, with the indexes of the report
// rows it stands for (a gateway stands for every endpoint behind it).
type entry struct {
	Endpoint
	loc topology.Locality
	// labels are the endpoint's labels; a gateway's are those every
	// endpoint behind it has alike.
	labels  map[string]string
	reports []int
}

// Assign plans service port port of svc for a node of role at loc:
//   - a gateway receives only its own cluster's endpoints;
//   - a sidecar receives its own cluster's endpoints as they are and
//     every other cluster's as that cluster's gateway, weighted by the
//     healthy endpoints behind it;
//   - a proxyless client receives every endpoint as it is;
//
// then every entry is ranked by locality relative to loc (the policy's
// failover order) and grouped by priority and locality.
//
// A ResiliencePolicy's failover of svc replaces the policy's failover
// order for svc (TopologyPolicy).
func (p *Plan) Assign(svc *catalog.ImportedService, port catalog.Port, loc topology.Locality, role string) *Assignment {
	return p.assign(svc, port, topology.Node{Locality: loc}, role, false)
}

// AssignTo is Assign for a client that announced labels: when svc's
// failover has a label priority (FailoverLabels), endpoints whose labels
// equal client.Labels on the first keys rank first. Endpoints reached
// through another cluster's gateway rank by the labels all of that
// cluster's endpoints share, since the gateway picks any of them.
func (p *Plan) AssignTo(svc *catalog.ImportedService, port catalog.Port, client topology.Node, role string) *Assignment {
	return p.assign(svc, port, client, role, false)
}

// AssignLocal plans the local-only subset of service port port of svc
// (the target of a Service backendRef): only the local cluster's
// endpoints, all at priority 0.
func (p *Plan) AssignLocal(svc *catalog.ImportedService, port catalog.Port, loc topology.Locality, role string) *Assignment {
	return p.assign(svc, port, topology.Node{Locality: loc}, role, true)
}

func (p *Plan) assign(svc *catalog.ImportedService, port catalog.Port, client topology.Node, role string, localOnly bool) *Assignment {
	loc := client.Locality
	sp := naming.ServicePort{Namespace: svc.Namespace, Name: svc.Name, Port: port.Port}
	name := sp.OutboundCluster()
	switch {
	case role == naming.RoleGateway:
		name = sp.SNI()
	case localOnly:
		name = sp.LocalCluster()
	}
	rep := &ClusterReport{Name: name, Service: svc.Key().String(), Port: port.Port}
	entries := p.entries(svc, port, role, rep)
	if localOnly {
		kept := entries[:0]
		for _, e := range entries {
			if e.Cluster == p.view.Local && e.SNI == "" {
				kept = append(kept, e)
				continue
			}
			for _, ri := range e.reports {
				r := &rep.Endpoints[ri]
				r.Sent, r.SentAs, r.ViaGateway, r.SNI = false, "", false, ""
				r.NotSentReason = "not in the local cluster: the local-only subset holds " + p.view.Local + "'s endpoints"
			}
		}
		entries = kept
	}
	ranks := make([]topology.Rank, len(entries))
	if !localOnly {
		nodes := make([]topology.Node, len(entries))
		for i, e := range entries {
			nodes[i] = topology.Node{Locality: e.loc, Labels: e.labels}
		}
		ranks = p.TopologyPolicy(svc, loc.Region).Prioritize(client, nodes)
	} else {
		for i := range ranks {
			ranks[i].Reason = "local-only subset: every endpoint at priority 0"
		}
	}

	for i, e := range entries {
		for _, ri := range e.reports {
			rep.Endpoints[ri].Priority = ranks[i].Priority
			rep.Endpoints[ri].PriorityReason = ranks[i].Reason
		}
	}
	for i, r := range rep.Endpoints {
		if !r.Sent {
			rep.Endpoints[i].Priority = -1
		}
	}
	return &Assignment{Name: name, Localities: group(entries, ranks), Report: rep}
}

// entries decides which of svc's endpoints serving port the node
// receives and as what, and writes a report row for each.
func (p *Plan) entries(svc *catalog.ImportedService, port catalog.Port, role string, rep *ClusterReport) []*entry {
	sni := naming.ServicePort{Namespace: svc.Namespace, Name: svc.Name, Port: port.Port}.SNI()
	var entries []*entry
	gateways := map[string]*entry{}
	for i := range svc.Endpoints {
		ep := &svc.Endpoints[i]
		r := endpointReport(ep)
		if ep.PortName != port.Name {
			// Another port's endpoint; one whose port name the merged
			// service lacks is explained once, with the first port.
			if _, ok := (&catalog.Service{Ports: svc.Ports}).PortByName(ep.PortName); !ok && port.Port == firstPort(svc) {
				r.NotSentReason = fmt.Sprintf("port name %q is not a port of the merged service", ep.PortName)
				r.Priority = -1
				rep.Endpoints = append(rep.Endpoints, r)
			}
			continue
		}
		local := ep.Locality.Cluster == p.view.Local
		switch {
		case role == naming.RoleGateway && !local:
			continue // a gateway only ever reaches its own cluster
		case local || role == naming.RoleProxyless:
			r.Sent, r.SentAs = true, r.Address
			rep.Endpoints = append(rep.Endpoints, r)
			entries = append(entries, &entry{
				Endpoint: Endpoint{
					Host: ep.Address, Port: uint32(ep.Port), Healthy: ep.Healthy,
					Cluster: ep.Locality.Cluster, Identity: p.SpiffeID(svc.Namespace, ep.ServiceAccount),
					Workload: workloadName(ep.Workload),
				},
				loc: ep.Locality, labels: ep.Labels, reports: []int{len(rep.Endpoints) - 1},
			})
			continue
		}
		ci, known := p.view.Clusters[ep.Locality.Cluster]
		host, gwPort, why := gatewayAddress(ep.Locality.Cluster, ci, known)
		if why != "" {
			r.NotSentReason = why
			rep.Endpoints = append(rep.Endpoints, r)
			continue
		}
		r.Sent, r.SentAs, r.ViaGateway, r.SNI = true, ci.GatewayAddress, true, sni
		rep.Endpoints = append(rep.Endpoints, r)
		e := gateways[ep.Locality.Cluster]
		if e == nil {
			l := ci.Locality
			if l.Cluster == "" {
				l = ep.Locality
			}
			e = &entry{
				Endpoint: Endpoint{
					Host: host, Port: gwPort, Cluster: ep.Locality.Cluster,
					Identity: p.SpiffeID(svc.Namespace, ep.ServiceAccount), SNI: sni,
					Workload: workloadName(ep.Workload),
				},
				loc: l, labels: maps.Clone(ep.Labels),
			}
			gateways[ep.Locality.Cluster] = e
			entries = append(entries, e)
		} else {
			maps.DeleteFunc(e.labels, func(k, v string) bool { return ep.Labels[k] != v })
			// The gateway picks any endpoint behind it: a name holds only
			// when all of them share it (once cleared, it stays "").
			if workloadName(ep.Workload) != e.Workload {
				e.Workload = ""
			}
		}
		if ep.Healthy {
			e.Healthy = true
			e.Weight++
		}
		e.reports = append(e.reports, len(rep.Endpoints)-1)
	}
	for _, e := range gateways {
		healthy := e.Weight
		e.Weight = max(1, e.Weight)
		for _, ri := range e.reports {
			r := &rep.Endpoints[ri]
			r.Weight, r.Healthy = e.Weight, e.Healthy
			r.HealthReason = fmt.Sprintf("%d of %d endpoints behind the gateway healthy (this one: %s)",
				healthy, len(e.reports), r.HealthReason)
		}
	}
	return entries
}

// workloadName is the workload name sent for a catalog endpoint: the
// catalog's name when it is a DNS-1123 subdomain (at most 253
// characters), else "". Sidecars label metrics with it, so only a bounded,
// well-formed name travels; the catalog does not check the field of a
// peer's export, and a sidecar refuses an EDS hostname that is not one.
func workloadName(name string) string {
	if catalog.IsDNS1123Subdomain(name) != "" {
		return ""
	}
	return name
}

// endpointReport starts the report row of ep: where it is and whether it
// is healthy.
func endpointReport(ep *catalog.ViewEndpoint) EndpointReport {
	r := EndpointReport{
		Address:  hostport.Join(ep.Address, strconv.Itoa(int(ep.Port))),
		Cluster:  ep.Locality.Cluster,
		Workload: ep.Workload,
		Locality: ep.Locality.String(),
		Healthy:  ep.Healthy,
	}
	switch {
	case ep.Healthy:
		r.HealthReason = "ready"
	case ep.HealthReason != "":
		r.HealthReason = ep.HealthReason
	default:
		r.HealthReason = "not ready"
	}
	return r
}

// gatewayAddress splits the gateway address of cluster; why says what is
// wrong with it when it cannot be used.
func gatewayAddress(cluster string, ci catalog.ClusterInfo, known bool) (host string, port uint32, why string) {
	if !known || ci.GatewayAddress == "" {
		return "", 0, "cluster " + cluster + " has no gateway address"
	}
	host, portStr, err := hostport.Split(ci.GatewayAddress)
	n, perr := strconv.ParseUint(portStr, 10, 16)
	if err != nil || perr != nil || n == 0 {
		return "", 0, fmt.Sprintf("cluster %s gateway address %q is not host:port", cluster, ci.GatewayAddress)
	}
	return host, uint32(n), ""
}

// group puts ranked entries into localities, sorted by priority then
// locality, each weighted by its healthy endpoints (at least 1).
func group(entries []*entry, ranks []topology.Rank) []Locality {
	type groupKey struct {
		prio int
		loc  topology.Locality
	}
	groups := map[groupKey]*Locality{}
	for i, e := range entries {
		k := groupKey{ranks[i].Priority, e.loc}
		g := groups[k]
		if g == nil {
			g = &Locality{Priority: k.prio, Locality: e.loc}
			groups[k] = g
		}
		if e.Healthy {
			if e.SNI != "" {
				g.Weight += e.Weight
			} else {
				g.Weight++
			}
		}
		g.Endpoints = append(g.Endpoints, e.Endpoint)
	}
	keys := slices.Collect(maps.Keys(groups))
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].prio != keys[j].prio {
			return keys[i].prio < keys[j].prio
		}
		return keys[i].loc.String() < keys[j].loc.String()
	})
	out := make([]Locality, len(keys))
	for i, k := range keys {
		out[i] = *groups[k]
		out[i].Weight = max(1, out[i].Weight)
	}
	return out
}
