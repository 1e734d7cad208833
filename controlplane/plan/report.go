package plan

// ClusterReport explains one EDS cluster to a human: every endpoint of
// the service port, whether the node receives it, as what, at which
// priority, and why. /debug/endpoints serves it.
type ClusterReport struct {
	Name      string           `json:"name"`
	Service   string           `json:"service"`
	Port      int32            `json:"port"`
	Endpoints []EndpointReport `json:"endpoints"`
}

// EndpointReport explains one catalog endpoint as one node receives it.
type EndpointReport struct {
	// Address is the endpoint's own address:port.
	Address  string `json:"address"`
	Cluster  string `json:"cluster"`
	Workload string `json:"workload,omitempty"`
	Locality string `json:"locality"`
	// Sent is false when the node does not receive the endpoint;
	// NotSentReason says why.
	Sent          bool   `json:"sent"`
	NotSentReason string `json:"notSentReason,omitempty"`
	// SentAs is the address the node receives: the endpoint's own, or
	// the gateway of its cluster (ViaGateway).
	SentAs         string `json:"sentAs,omitempty"`
	ViaGateway     bool   `json:"viaGateway,omitempty"`
	SNI            string `json:"sni,omitempty"`
	Priority       int    `json:"priority"`
	PriorityReason string `json:"priorityReason,omitempty"`
	Healthy        bool   `json:"healthy"`
	HealthReason   string `json:"healthReason"`
	// Weight is the load balancing weight of the LbEndpoint sent.
	Weight uint32 `json:"weight,omitempty"`
}
