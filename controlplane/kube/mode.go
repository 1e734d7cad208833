package kube

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ModeConfig configures the Kubernetes mode of one control plane.
type ModeConfig struct {
	// Kubeconfig names a kubeconfig file; empty uses the pod's
	// ServiceAccount (in-cluster).
	Kubeconfig string
	// Cluster, Region and Zone are the control plane's; Region and Zone
	// are the defaults for endpoints whose node has no topology labels.
	Cluster, Region, Zone string
	// Namespace limits the source and the sink to one namespace; empty
	// means all.
	Namespace string
	// LeaseNamespace and Identity turn on leader election for the sink
	// (the control plane's namespace and pod name). With either empty the
	// sink always writes: run one replica only.
	LeaseNamespace, Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election;
	// zero takes the defaults.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// ClusterSetPrefix is the sink's SinkConfig.ClusterSetPrefix.
	ClusterSetPrefix netip.Prefix
	// TokenAudiences are the audiences a workload token may carry; default
	// DefaultAudience.
	TokenAudiences []string
	// Logger and Registerer are the control plane's.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Mode holds the parts of the Kubernetes mode, built from one client: the
// Source the control plane reads, the Sink that writes the federation's
// views back (with leader election when configured), and the TokenReviewer
// that authenticates workloads.
type Mode struct {
	Clients  Clients
	Source   *Source
	Sink     *Sink
	Elector  *Elector // nil without leader election
	Reviewer *TokenReviewer
}

// NewMode builds every part of the Kubernetes mode. Nothing runs until
// the caller runs Source (through the control plane) and Sink.
func NewMode(cfg ModeConfig) (*Mode, error) {
	rc, err := RESTConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "fedmesh-controlplane/" + cfg.Cluster
	clients, err := NewClients(rc)
	if err != nil {
		return nil, err
	}
	m := &Mode{Clients: clients}
	if m.Source, err = NewSource(SourceConfig{
		Clients: clients, Cluster: cfg.Cluster, Region: cfg.Region, Zone: cfg.Zone, Namespace: cfg.Namespace,
		Logger: cfg.Logger, Registerer: cfg.Registerer,
	}); err != nil {
		return nil, fmt.Errorf("kube source: %w", err)
	}
	if cfg.LeaseNamespace != "" && cfg.Identity != "" {
		if m.Elector, err = NewElector(ElectorConfig{
			Client: clients.Kube, Namespace: cfg.LeaseNamespace, Identity: cfg.Identity,
			LeaseDuration: cfg.LeaseDuration, RenewDeadline: cfg.RenewDeadline, RetryPeriod: cfg.RetryPeriod,
			Logger: cfg.Logger,
		}); err != nil {
			return nil, err
		}
	}
	if m.Sink, err = NewSink(SinkConfig{
		Clients: clients, Cluster: cfg.Cluster, Namespace: cfg.Namespace, Validity: m.Source, Policies: m.Source, Traffic: m.Source, Elector: m.Elector,
		ClusterSetPrefix: cfg.ClusterSetPrefix,
		Logger:           cfg.Logger, Registerer: cfg.Registerer,
	}); err != nil {
		return nil, fmt.Errorf("kube sink: %w", err)
	}
	if m.Reviewer, err = NewTokenReviewer(clients.Kube, cfg.TokenAudiences...); err != nil {
		return nil, err
	}
	return m, nil
}
