package source

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The compact local kind for processes on this machine.
const (
	// WorkloadGroup is the API group of fedmesh's own kinds.
	WorkloadGroup = "fedmesh.io"
	// WorkloadAPIVersion is the apiVersion of a Workload.
	WorkloadAPIVersion = WorkloadGroup + "/v1alpha1"
	// WorkloadKind is the kind of a Workload.
	WorkloadKind = "Workload"
)

// AnnotationServiceAccount on an EndpointSlice names the service account
// its endpoints run as (Kubernetes EndpointSlices do not carry one).
const AnnotationServiceAccount = "fedmesh.io/service-account"

// DefaultServiceAccount is the service account of endpoints that name none,
// as in Kubernetes.
const DefaultServiceAccount = "default"

// DefaultNamespace is the namespace of objects whose metadata has none, as
// kubectl assumes.
const DefaultNamespace = "default"

// Workload is one process on this machine that serves services: the local
// counterpart of a Pod with its sidecar. Services select Workloads by
// label, as they select Pods.
type Workload struct {
	metav1.TypeMeta `json:",inline"`
	// ObjectMeta: name, namespace and labels are used.
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WorkloadSpec `json:"spec"`
}

// WorkloadSpec is where a Workload is reached and as whom it runs.
type WorkloadSpec struct {
	// Address is the IP address of the workload's sidecar, which receives
	// mesh traffic (inbound mTLS) for it.
	Address string `json:"address"`
	// Ports maps a service port name to the port mesh traffic for that
	// service port is sent to (the sidecar's inbound listener). A service
	// port whose name is not a key is not served by this workload; the key
	// "" serves a service's single unnamed port, and so does the only
	// entry of a one-entry map.
	Ports map[string]int32 `json:"ports"`
	// ServiceAccount is the workload's identity within its namespace;
	// "default" when empty.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Zone overrides the source's default zone.
	Zone string `json:"zone,omitempty"`
	// Ready is false to take the workload out of rotation; default true.
	Ready *bool `json:"ready,omitempty"`
}
