package store

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the store's Prometheus collectors. One Metrics may be shared
// by a Store and by the watches the federation runs against peers
// (WatchOptions.Metrics), so that every watch is counted in one place.
type Metrics struct {
	// Writes counts committed write transactions by kind (exports,
	// imports, members, lease_rewrite, auth).
	Writes *prometheus.CounterVec
	// TxnFailures counts failed write transactions by kind and reason
	// (too_many_ops, lease_not_found, invalid, unavailable, other).
	TxnFailures *prometheus.CounterVec
	// WatchRestarts counts watches started again after an error, by reason
	// (list_error, denied, watch_error, closed, no_leader).
	WatchRestarts *prometheus.CounterVec
	// WatchRelists counts full re-lists after the watched revision was
	// compacted.
	WatchRelists prometheus.Counter
	// LeaseKeepaliveFailures counts losses of the exports lease (the
	// keepalive ended without Close) and failed attempts to grant a new one.
	LeaseKeepaliveFailures prometheus.Counter
	// LeaseKeepaliveResumes counts keepalives that ended while etcd still
	// held the lease (no answer within its TTL: a starved process or
	// etcd), resumed on the same lease without rewriting the exports.
	LeaseKeepaliveResumes prometheus.Counter
	// InvalidValues counts stored values skipped by a List because they
	// do not decode, by kind and reason (key, value).
	InvalidValues *prometheus.CounterVec
	// ClientRefusals counts client certificates the embedded etcd refused
	// in the TLS handshake, by reason (identity.Reason labels such as
	// issuer_mismatch, untrusted, foreign_trust_domain, no_certificate,
	// and wrong_user).
	ClientRefusals *prometheus.CounterVec
}

// NewMetrics builds the collectors and registers them with reg; a nil reg
// leaves them unregistered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fedmesh", Subsystem: "store", Name: "writes_total",
			Help: "Committed etcd write transactions, by kind.",
		}, []string{"kind"}),
		TxnFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fedmesh", Subsystem: "store", Name: "txn_failures_total",
			Help: "Failed etcd write transactions, by kind and reason.",
		}, []string{"kind", "reason"}),
		WatchRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fedmesh", Subsystem: "store", Name: "watch_restarts_total",
			Help: "Watches restarted after an error, by reason.",
		}, []string{"reason"}),
		WatchRelists: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "fedmesh", Subsystem: "store", Name: "watch_relists_total",
			Help: "Full re-lists of a watched prefix after its revision was compacted.",
		}),
		LeaseKeepaliveFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "fedmesh", Subsystem: "store", Name: "lease_keepalive_failures_total",
			Help: "Losses of the exports lease and failed attempts to grant a new one.",
		}),
		LeaseKeepaliveResumes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "fedmesh", Subsystem: "store", Name: "lease_keepalive_resumes_total",
			Help: "Exports lease keepalives that ended while etcd still held the lease, resumed on it without rewriting the exports.",
		}),
		InvalidValues: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fedmesh", Subsystem: "store", Name: "invalid_values_total",
			Help: "Stored keys or values skipped because they do not decode, by kind and reason.",
		}, []string{"kind", "reason"}),
		ClientRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fedmesh", Subsystem: "store", Name: "client_refusals_total",
			Help: "Client certificates the embedded etcd refused in the TLS handshake, by reason.",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.Writes, m.TxnFailures, m.WatchRestarts, m.WatchRelists, m.LeaseKeepaliveFailures, m.LeaseKeepaliveResumes, m.InvalidValues, m.ClientRefusals} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}
