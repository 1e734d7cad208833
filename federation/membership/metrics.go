package membership

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the membership's Prometheus collectors.
type metrics struct {
	membersIgnored *prometheus.CounterVec
	joinRefused    *prometheus.CounterVec
	rejoins        *prometheus.CounterVec
	members        *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		membersIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_members_ignored_total",
			Help: "Serf member events ignored because the member's tags are missing, invalid or of an unknown protocol version, by reason.",
		}, []string{"reason"}),
		joinRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_join_refused_total",
			Help: "Merges of gossip state refused, by reason (duplicate_name: a second member claims an existing cluster name).",
		}, []string{"reason"}),
		rejoins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_rejoin_attempts_total",
			Help: "Attempts of the rejoin loop to join known members that are not alive, by result.",
		}, []string{"result"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_federation_members",
			Help: "Valid federation members (this one included), by status.",
		}, []string{"status"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.membersIgnored, m.joinRefused, m.rejoins, m.members} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("membership metrics already registered: use one registry per membership")
			}
			return nil, err
		}
	}
	return m, nil
}
