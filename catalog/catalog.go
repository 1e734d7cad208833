package catalog

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/fedmesh/fedmesh/topology"
)

// ServiceType is the type of an exported service, as in the MCS API's
// ServiceImport: one virtual address for the clusterset, or headless.
type ServiceType string

const (
	// ClusterSetIP services get one virtual address across the clusterset.
	ClusterSetIP ServiceType = "ClusterSetIP"
	// Headless services resolve to their endpoints' addresses.
	Headless ServiceType = "Headless"
)

// Protocol is a port's transport protocol, as in Kubernetes.
type Protocol string

// The transport protocols a service port may declare.
const (
	TCP  Protocol = "TCP"
	UDP  Protocol = "UDP"
	SCTP Protocol = "SCTP"
)

// Application protocols fedmesh understands on a port (the Kubernetes
// appProtocol field). An empty AppProtocol means opaque TCP.
const (
	AppHTTP  = "http"
	AppHTTP2 = "http2"
	AppGRPC  = "grpc"
	AppTCP   = "tcp"
)

// ServiceKey names a service across the clusterset: the MCS API's
// "namespace sameness" makes namespace/name the identity of a service.
type ServiceKey struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String renders the key as namespace/name.
func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

// Less orders keys by namespace, then name.
func (k ServiceKey) Less(o ServiceKey) bool {
	if k.Namespace != o.Namespace {
		return k.Namespace < o.Namespace
	}
	return k.Name < o.Name
}

// Port is one port of a service.
type Port struct {
	// Name identifies the port within the service; required when the
	// service has more than one port.
	Name string `json:"name,omitempty"`
	// Protocol is the transport protocol; empty means TCP.
	Protocol Protocol `json:"protocol,omitempty"`
	// AppProtocol is the application protocol (http, http2, grpc, tcp);
	// empty means opaque TCP.
	AppProtocol string `json:"appProtocol,omitempty"`
	// Port is the service port number clients use.
	Port int32 `json:"port"`
}

// Service is an exported service as its source cluster sees it.
type Service struct {
	Namespace string      `json:"namespace"`
	Name      string      `json:"name"`
	Type      ServiceType `json:"type"`
	Ports     []Port      `json:"ports"`
	// ExportCreated is when the export was created (the ServiceExport's
	// creation time); the oldest export wins a conflict.
	ExportCreated time.Time `json:"exportCreated"`
	// Cluster is the name of the cluster that exports the service.
	Cluster string `json:"cluster"`
	// ClusterIPs are the exporting cluster's own virtual addresses of the
	// Service (a Kubernetes Service's spec.clusterIPs), in netip.Addr text
	// form: at most MaxClusterIPs, none for a Headless service. They mean
	// something only inside that cluster: the merge keeps the local
	// cluster's as ImportedService.LocalClusterIPs, so that its sidecars
	// mesh traffic sent to them, and ignores those of peers (their
	// Service ranges may overlap).
	ClusterIPs []string `json:"clusterIPs,omitempty"`
}

// MaxClusterIPs bounds Service.ClusterIPs: one address per IP family, as
// Kubernetes allows.
const MaxClusterIPs = 2

// Key returns the service's namespace/name.
func (s *Service) Key() ServiceKey { return ServiceKey{Namespace: s.Namespace, Name: s.Name} }

// PortByName returns the port with that name.
func (s *Service) PortByName(name string) (Port, bool) {
	for _, p := range s.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

// Endpoint is one address serving one port of a service.
type Endpoint struct {
	// Address is an IPv4 or IPv6 address.
	Address string `json:"address"`
	// Port is where mesh traffic for this endpoint is sent: in local mode
	// the workload sidecar's inbound mTLS listener, in Kubernetes mode the
	// pod's target port (captured by the sidecar).
	Port int32 `json:"port"`
	// PortName is the name of the service port this endpoint serves.
	PortName string `json:"portName,omitempty"`
	// Locality is where the endpoint runs; Cluster is always set.
	Locality topology.Locality `json:"locality"`
	// Ready is true when the endpoint may receive new traffic.
	Ready bool `json:"ready"`
	// Serving is true when the endpoint still answers requests (it may be
	// terminating and so not Ready).
	Serving bool `json:"serving"`
	// ServiceAccount is the endpoint's workload identity within its
	// namespace; the SPIFFE ID is spiffe://TD/ns/NAMESPACE/sa/SERVICEACCOUNT.
	ServiceAccount string `json:"serviceAccount"`
	// Workload names the process or pod behind the endpoint, for humans.
	Workload string `json:"workload,omitempty"`
	// Labels are the workload's labels (a Pod's, a Workload's), which a
	// ResiliencePolicy's failoverPriority compares with the client's.
	// Keys and values follow Kubernetes label syntax; values are never
	// empty and there are at most MaxEndpointLabels (EndpointLabels
	// makes such a set).
	Labels map[string]string `json:"labels,omitempty"`
}

// Export is one cluster's export of one service: what the control plane
// writes to its etcd and what peers replicate.
type Export struct {
	Service   Service    `json:"service"`
	Endpoints []Endpoint `json:"endpoints"`
	// Policies are the producer routes and policies the exporting
	// cluster publishes for the service; nil when it publishes none.
	Policies *Policies `json:"policies,omitempty"`
	// Quotas are the cluster's records of the clusterset quotas that
	// limit the service (quota.go); nil when none does.
	Quotas []QuotaRecord `json:"quotas,omitempty"`
}

// Policies are a cluster's producer routes and policies of one service
// (GAMMA producer routes, and ResiliencePolicies and FaultInjections in
// the service's namespace): they travel with the export, replicated
// exactly as exports are. The catalog keeps them opaque; package policy
// encodes and decodes them.
type Policies struct {
	// Digest identifies Objects: equal digests, equal policies. Two
	// clusters whose exports carry different digests conflict.
	Digest string `json:"digest"`
	// Objects are the policy documents, canonical JSON, in a stable order.
	Objects []json.RawMessage `json:"objects"`
}

// Sort orders the export's ports by number and endpoints by address, port
// name and port, so that equal exports encode to equal bytes.
func (e *Export) Sort() {
	sort.SliceStable(e.Service.Ports, func(i, j int) bool {
		return e.Service.Ports[i].Port < e.Service.Ports[j].Port
	})
	sort.SliceStable(e.Endpoints, func(i, j int) bool {
		a, b := e.Endpoints[i], e.Endpoints[j]
		if a.Address != b.Address {
			return a.Address < b.Address
		}
		if a.PortName != b.PortName {
			return a.PortName < b.PortName
		}
		return a.Port < b.Port
	})
}
