package kube

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	mcsclient "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned"
)

// Clients are the API clients fedmesh's Kubernetes parts use: the core
// clientset, the Multi-Cluster Services clientset and a dynamic client
// (for fedmesh's own AuthorizationPolicy CRD), for one cluster.
type Clients struct {
	// Kube reads Services, EndpointSlices, Pods and Nodes, and writes
	// EndpointSlices, Leases and TokenReviews.
	Kube kubernetes.Interface
	// MCS reads ServiceExports and writes their status, and ServiceImports.
	MCS mcsclient.Interface
	// Dynamic reads AuthorizationPolicies (fedmesh.io) and writes their
	// status. Required by the Source, and by a Sink that writes policy
	// status.
	Dynamic dynamic.Interface
}

// NewClients builds the clients from one REST configuration (from a
// kubeconfig, or rest.InClusterConfig in a pod).
func NewClients(cfg *rest.Config) (Clients, error) {
	k, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("kubernetes client: %w", err)
	}
	m, err := mcsclient.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("multicluster client: %w", err)
	}
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("dynamic client: %w", err)
	}
	return Clients{Kube: k, MCS: m, Dynamic: d}, nil
}

func (c Clients) validate() error {
	if c.Kube == nil {
		return fmt.Errorf("%w: no Kubernetes client", ErrConfig)
	}
	if c.MCS == nil {
		return fmt.Errorf("%w: no multicluster client", ErrConfig)
	}
	return nil
}
