package federation

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/federation/replicate"
)

// metrics are the federation's Prometheus collectors.
type metrics struct {
	fencedPeers  prometheus.Gauge
	viewRevision prometheus.Gauge
	conflicts    prometheus.Gauge
	replicators  prometheus.Gauge
	publishes    prometheus.Counter
	fenceChanges *prometheus.CounterVec
	ioErrors     *prometheus.CounterVec
	removed      *prometheus.CounterVec
	propagation  prometheus.Histogram
	untrusted    *prometheus.CounterVec
	pending      *prometheus.GaugeVec
	proofs       *prometheus.CounterVec
	// policiesRefused counts exports whose producer policies were
	// refused (once per cluster, service and digest).
	policiesRefused prometheus.Counter
	replicate       *replicate.Metrics
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	rm, err := replicate.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &metrics{
		replicate: rm,
		fencedPeers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_federation_fenced_peers",
			Help: "Peers whose endpoints are fenced (marked unhealthy).",
		}),
		viewRevision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_federation_view_revision",
			Help: "Revision of the last published federation view.",
		}),
		conflicts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_federation_conflicts",
			Help: "Exports in conflict in the last published view.",
		}),
		replicators: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_federation_replicators",
			Help: "Peer replicators running.",
		}),
		publishes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_federation_view_publishes_total",
			Help: "Federation views published.",
		}),
		fenceChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_fence_changes_total",
			Help: "Peers fenced or unfenced, by direction.",
		}, []string{"direction"}),
		ioErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_store_errors_total",
			Help: "Failed writes to the local store, by operation.",
		}, []string{"op"}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_peers_removed_total",
			Help: "Peers removed from the federation with their exports and persisted imports, by reason (left, forgotten).",
		}, []string{"reason"}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fedmesh_federation_propagation_seconds",
			Help:    "Time from a peer change arriving from its etcd to the view that contains it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		untrusted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_untrusted_members_total",
			Help: "Gossip members refused trust because they did not prove a control plane identity of the federation (counted once per member instance and reason), by reason.",
		}, []string{"reason"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_federation_members_pending_proof",
			Help: "Gossip members not trusted now, by the reason of their last proof (proving: no answer yet).",
		}, []string{"reason"}),
		policiesRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_federation_policies_refused_total",
			Help: "Exports whose producer policies were refused (malformed, invalid, not the service's own, or a wrong digest) and merged as if they carried none; once per cluster, service and digest.",
		}),
		proofs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_member_proofs_total",
			Help: "Attempts to prove a gossip member's control plane identity, by result (ok or the reason of the refusal).",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.fencedPeers, m.viewRevision, m.conflicts, m.replicators,
			m.publishes, m.fenceChanges, m.ioErrors, m.removed, m.propagation, m.untrusted, m.pending, m.proofs, m.policiesRefused} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
