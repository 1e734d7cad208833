package catalog

import (
	"net/netip"
	"slices"
	"time"

	"github.com/fedmesh/fedmesh/topology"
)

// View is the federation-wide catalog as one control plane sees it: every
// service exported by any live or remembered cluster, merged by the MCS
// rules, with each endpoint's health. It is what xDS and, in Kubernetes
// mode, ServiceImports are built from. A View is immutable once published;
// build a new one to change it.
type View struct {
	// Revision increases with every change to the view.
	Revision uint64 `json:"revision"`
	// Local is the name of the cluster this view belongs to.
	Local string `json:"local"`
	// Clusters describes every cluster the view knows, by name.
	Clusters map[string]ClusterInfo `json:"clusters"`
	// Services are sorted by namespace, then name.
	Services []ImportedService `json:"services"`
}

// ClusterInfo is what the view knows of one cluster of the federation.
type ClusterInfo struct {
	Name     string            `json:"name"`
	Locality topology.Locality `json:"locality"`
	// GatewayAddress is host:port of the cluster's east-west gateway;
	// sidecars in other clusters send traffic for its endpoints there.
	GatewayAddress string `json:"gatewayAddress,omitempty"`
	// RTT is the estimated round trip time from the local cluster, from
	// serf's network coordinates; zero when unknown.
	RTT time.Duration `json:"rtt,omitempty"`
	// Fenced is true when the cluster's endpoints are marked unhealthy
	// because the cluster is unreachable; FenceReason says why.
	Fenced      bool   `json:"fenced,omitempty"`
	FenceReason string `json:"fenceReason,omitempty"`
	// CIDRs are the address ranges the cluster declares its workloads
	// and nodes send from (its control plane's --cluster-cidrs, gossiped);
	// gateways label connections from them with the cluster's name.
	CIDRs []netip.Prefix `json:"cidrs,omitempty"`
}

// Equal reports whether c and o are the same.
func (c ClusterInfo) Equal(o ClusterInfo) bool {
	return c.Name == o.Name && c.Locality == o.Locality && c.GatewayAddress == o.GatewayAddress &&
		c.RTT == o.RTT && c.Fenced == o.Fenced && c.FenceReason == o.FenceReason &&
		slices.Equal(c.CIDRs, o.CIDRs)
}

// ImportedService is one service of the merged federation view.
type ImportedService struct {
	Namespace string      `json:"namespace"`
	Name      string      `json:"name"`
	Type      ServiceType `json:"type"`
	// Ports are those of the winning (oldest) export.
	Ports []Port `json:"ports"`
	// Clusters lists the clusters whose exports are merged in, sorted.
	Clusters []string `json:"clusters"`
	// Conditions records conflicts between exports (MCS v1beta1 reasons).
	Conditions []Condition `json:"conditions,omitempty"`
	// Endpoints of every merged export, sorted by cluster then address.
	Endpoints []ViewEndpoint `json:"endpoints"`
	// Policies are the producer routes and policies in force for the
	// service: those of the oldest export that carries any; nil when no
	// export does. PoliciesCluster is the cluster they came from.
	Policies        *Policies `json:"policies,omitempty"`
	PoliciesCluster string    `json:"policiesCluster,omitempty"`
	// Quotas are the quota records of every merged export, sorted by
	// quota, then cluster.
	Quotas []ClusterQuota `json:"quotas,omitempty"`
	// LocalClusterIPs are the local cluster's own virtual addresses of
	// the service (Service.ClusterIPs of its export, when it exports the
	// service and the export is merged in); sidecars of the local cluster
	// mesh traffic sent to them as they do traffic to the ClusterSetIP.
	LocalClusterIPs []string `json:"localClusterIPs,omitempty"`
}

// Key returns the service's namespace/name.
func (s *ImportedService) Key() ServiceKey {
	return ServiceKey{Namespace: s.Namespace, Name: s.Name}
}

// ViewEndpoint is an endpoint as the merged view sees it.
type ViewEndpoint struct {
	Endpoint
	// Healthy is false when the endpoint is not ready, or its cluster is
	// fenced; HealthReason says why.
	Healthy      bool   `json:"healthy"`
	HealthReason string `json:"healthReason,omitempty"`
}

// Condition types and reasons, following the MCS API (v1beta1).
const (
	ConditionValid    = "Valid"
	ConditionConflict = "Conflict"

	ReasonPortConflict = "PortConflict"
	ReasonTypeConflict = "TypeConflict"
	ReasonNoConflicts  = "NoConflicts"
	// ReasonPolicyConflict: clusters publish different producer routes
	// or policies for the service; the oldest export's are in force.
	ReasonPolicyConflict       = "PolicyConflict"
	ReasonInvalidServiceType   = "InvalidServiceType"
	ReasonSessionAffinity      = "SessionAffinityConflict"
	ReasonPortProtocolConflict = "PortProtocolConflict"
	ReasonAppProtocolConflict  = "AppProtocolConflict"
)

// Condition is a status condition of an export within the merged view.
type Condition struct {
	// Type is Valid or Conflict.
	Type string `json:"type"`
	// Status is "True", "False" or "Unknown".
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Cluster is the cluster whose export the condition is about.
	Cluster string `json:"cluster"`
}
