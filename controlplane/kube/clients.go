package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	mcsclient "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned"
)

// Clients are the API clients fedmesh's Kubernetes parts use: the core
// clientset and the Multi-Cluster Services clientset, for one cluster.
type Clients struct {
	// Kube reads Services, EndpointSlices, Pods and Nodes, and writes
	// EndpointSlices, Leases and TokenReviews.
	Kube kubernetes.Interface
	// MCS reads ServiceExports and writes their status, and ServiceImports.
	MCS mcsclient.Interface
}

// NewClients builds both clientsets from one REST configuration (from a
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
	return Clients{Kube: k, MCS: m}, nil
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
