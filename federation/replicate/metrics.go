package replicate

import "github.com/prometheus/client_golang/prometheus"

// Reasons of Metrics.BadValues.
const (
	ReasonBadKey   = "bad_key"
	ReasonBadValue = "bad_value"
	ReasonInvalid  = "invalid"
)

// Reasons of Metrics.Restarts.
const (
	RestartDisconnected = "disconnected"
	RestartHistoryReset = "history_reset"
	RestartClientError  = "client_error"
)

// Metrics are the replicators' Prometheus collectors, labelled by peer.
type Metrics struct {
	// Updates counts snapshots delivered.
	Updates *prometheus.CounterVec
	// Resyncs counts full lists of a peer's prefix (first sync, compaction,
	// history reset).
	Resyncs *prometheus.CounterVec
	// Restarts counts interruptions of replication, by reason.
	Restarts *prometheus.CounterVec
	// BadValues counts keys and values refused from a peer, by reason.
	BadValues *prometheus.CounterVec
	// ProbeFailures counts probes of a peer that failed.
	ProbeFailures *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg, unless
// reg is nil.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_replicate_updates_total",
			Help: "Export snapshots delivered from a peer's watch.",
		}, []string{"peer"}),
		Resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_replicate_resyncs_total",
			Help: "Full lists of a peer's exports (first sync, compaction, history reset).",
		}, []string{"peer"}),
		Restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_replicate_restarts_total",
			Help: "Interruptions of replication from a peer, by reason.",
		}, []string{"peer", "reason"}),
		BadValues: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_replicate_bad_values_total",
			Help: "Keys and values refused from a peer, by reason.",
		}, []string{"peer", "reason"}),
		ProbeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_replicate_probe_failures_total",
			Help: "Failed probes of a peer's etcd.",
		}, []string{"peer"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Updates, m.Resyncs, m.Restarts, m.BadValues, m.ProbeFailures} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// counterVec is the part of *prometheus.CounterVec the replicator uses; a
// nil one counts nothing.
type counterVec interface {
	WithLabelValues(...string) prometheus.Counter
}

func (m *Metrics) restarts() counterVec {
	if m == nil {
		return nil
	}
	return m.Restarts
}
