package webview

import (
	"math"
	"sort"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation"
)

// Graph is what GraphPath answers: the clusterset as one control plane
// sees it, and the traffic of its own cluster's sidecars.
type Graph struct {
	// Cluster is the cluster whose control plane answers.
	Cluster string `json:"cluster"`
	// Time is when the graph was built.
	Time time.Time `json:"time"`
	// WindowSeconds is the span the rates are computed over (0 before
	// the collector has two ticks).
	WindowSeconds float64 `json:"windowSeconds"`
	// ViewRevision is the federation view's revision.
	ViewRevision uint64 `json:"viewRevision"`
	// Clusters are the federation's members, this cluster first.
	Clusters []ClusterNode `json:"clusters"`
	// Edges carry traffic, sorted by source then destination; an edge
	// from a cluster to itself is traffic served locally.
	Edges []Edge `json:"edges"`
	// Services are the view's services, with the clusters that serve.
	Services []Service `json:"services"`
	// Proxies are this cluster's connected sidecars, whose endpoint
	// choices /debug/endpoints explains.
	Proxies []ProxyNode `json:"proxies"`
	// Targets is the collector's last read of each target.
	Targets []TargetState `json:"targets"`
}

// ClusterNode is one cluster of the federation.
type ClusterNode struct {
	Name   string `json:"name"`
	Local  bool   `json:"local,omitempty"`
	Region string `json:"region,omitempty"`
	Zone   string `json:"zone,omitempty"`
	// State is the gossip state (alive, failed, left, ...).
	State string `json:"state"`
	// Connected is true while its catalog answers.
	Connected bool `json:"connected"`
	// Fenced and FenceReason: its endpoints are marked unhealthy.
	Fenced      bool   `json:"fenced,omitempty"`
	FenceReason string `json:"fenceReason,omitempty"`
	// RTTSeconds is the estimated round trip from this cluster.
	RTTSeconds float64 `json:"rttSeconds,omitempty"`
	// Exports counts its exported services.
	Exports int `json:"exports"`
	// Gateway is its east-west gateway.
	Gateway Gateway `json:"gateway"`
	// Failover says where the cluster's own clients' requests went over
	// the window; known for this cluster only.
	Failover *Failover `json:"failover,omitempty"`
}

// Gateway is a cluster's east-west gateway.
type Gateway struct {
	Address string `json:"address,omitempty"`
	// Observed is true for this cluster's gateway when the collector
	// reads it; Up is whether it answered.
	Observed bool `json:"observed,omitempty"`
	Up       bool `json:"up,omitempty"`
	// ActiveConnections and ConnectionRate, when observed.
	ActiveConnections float64 `json:"activeConnections,omitempty"`
	ConnectionRate    float64 `json:"connectionRate,omitempty"`
}

// Failover states of a cluster's outbound traffic.
const (
	FailoverIdle    = "idle"        // no requests in the window
	FailoverLocal   = "local"       // served by the cluster itself
	FailoverActive  = "failed-over" // served elsewhere, in part or all
	localShareFloor = 0.99
)

// Failover is where a cluster's clients' requests were served.
type Failover struct {
	State string `json:"state"`
	// LocalShare is the share served in the cluster itself.
	LocalShare float64 `json:"localShare"`
	// ServedBy lists every serving cluster's share, largest first.
	ServedBy []Share `json:"servedBy,omitempty"`
}

// Share is a cluster's share of requests.
type Share struct {
	Cluster string  `json:"cluster"`
	Share   float64 `json:"share"`
}

// Edge is the traffic from one cluster to another over the window.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Requests in the window; RequestRate per second.
	Requests    float64 `json:"requests"`
	RequestRate float64 `json:"requestRate"`
	// ErrorRate is failed (5xx) requests per second, ErrorRatio their
	// share.
	ErrorRate  float64 `json:"errorRate"`
	ErrorRatio float64 `json:"errorRatio"`
	// P99Seconds is the 99th percentile latency; omitted when unknown.
	P99Seconds *float64 `json:"p99Seconds,omitempty"`
}

// Service is one service of the view.
type Service struct {
	// Name is NAMESPACE/NAME.
	Name string `json:"name"`
	// Clusters export it; Healthy counts its healthy endpoints per
	// cluster (ready, and the cluster not fenced).
	Clusters []string       `json:"clusters"`
	Healthy  map[string]int `json:"healthy"`
}

// ProxyNode is a connected sidecar or gateway of this cluster.
type ProxyNode struct {
	ID       string `json:"id"`
	Role     string `json:"role"`
	Workload string `json:"workload,omitempty"`
	// Namespace of the workload.
	Namespace string `json:"namespace,omitempty"`
}

// Input is what Build draws from.
type Input struct {
	Now time.Time
	// Status is the federation's status (members, fencing).
	Status federation.Status
	// View is the merged view; nil before the first.
	View *catalog.View
	// Traffic is the collector's last tick.
	Traffic Traffic
	// Proxies are the connected xDS nodes.
	Proxies []ProxyNode
}

// Build assembles the graph. It is pure.
func Build(in Input) Graph {
	g := Graph{
		Cluster: in.Status.Cluster, Time: in.Now, WindowSeconds: in.Traffic.WindowSeconds,
		Clusters: []ClusterNode{}, Edges: []Edge{}, Services: []Service{}, Proxies: []ProxyNode{}, Targets: []TargetState{},
	}
	var info map[string]catalog.ClusterInfo
	if in.View != nil {
		g.ViewRevision = in.View.Revision
		info = in.View.Clusters
	}
	for _, m := range in.Status.Members {
		n := ClusterNode{
			Name: m.Name, Local: m.Local, Region: m.Region, Zone: m.Zone, State: m.State,
			Connected: m.Connected, Fenced: m.Fenced, FenceReason: m.FenceReason,
			RTTSeconds: time.Duration(m.RTT).Seconds(), Exports: m.Exports,
		}
		if ci, ok := info[m.Name]; ok {
			n.Gateway.Address = ci.GatewayAddress
		}
		if m.Local {
			gw := in.Traffic.Gateway
			n.Gateway.Observed = gw.Targets > 0
			n.Gateway.Up = gw.Up > 0
			n.Gateway.ActiveConnections = gw.Active
			n.Gateway.ConnectionRate = gw.ConnectionRate
		}
		g.Clusters = append(g.Clusters, n)
	}
	for _, e := range in.Traffic.Edges {
		ge := Edge{From: e.From, To: e.To, Requests: e.Requests, RequestRate: e.RequestRate, ErrorRate: e.ErrorRate, ErrorRatio: e.ErrorRatio}
		if !math.IsNaN(e.P99) {
			p := e.P99
			ge.P99Seconds = &p
		}
		g.Edges = append(g.Edges, ge)
	}
	sort.Slice(g.Edges, func(i, j int) bool {
		if g.Edges[i].From != g.Edges[j].From {
			return g.Edges[i].From < g.Edges[j].From
		}
		return g.Edges[i].To < g.Edges[j].To
	})
	for i := range g.Clusters {
		if g.Clusters[i].Local {
			g.Clusters[i].Failover = failover(g.Clusters[i].Name, g.Edges)
		}
	}
	if in.View != nil {
		for _, s := range in.View.Services {
			svc := Service{Name: s.Key().String(), Clusters: append([]string{}, s.Clusters...), Healthy: map[string]int{}}
			for _, c := range s.Clusters {
				svc.Healthy[c] = 0
			}
			for _, ep := range s.Endpoints {
				if ep.Healthy {
					svc.Healthy[ep.Locality.Cluster]++
				}
			}
			g.Services = append(g.Services, svc)
		}
	}
	g.Proxies = append(g.Proxies, in.Proxies...)
	g.Targets = append(g.Targets, in.Traffic.Targets...)
	return g
}

// failover says where cluster's requests went, from the edges leaving it.
func failover(cluster string, edges []Edge) *Failover {
	var total, local float64
	var shares []Share
	for _, e := range edges {
		if e.From != cluster {
			continue
		}
		total += e.Requests
		if e.To == cluster {
			local += e.Requests
		}
		shares = append(shares, Share{Cluster: e.To, Share: e.Requests})
	}
	if total == 0 {
		return &Failover{State: FailoverIdle}
	}
	for i := range shares {
		shares[i].Share /= total
	}
	sort.SliceStable(shares, func(i, j int) bool { return shares[i].Share > shares[j].Share })
	f := &Failover{LocalShare: local / total, ServedBy: shares, State: FailoverLocal}
	if f.LocalShare < localShareFloor {
		f.State = FailoverActive
	}
	return f
}
