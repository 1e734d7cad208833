package membership

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the membership's Prometheus collectors.
type metrics struct {
	membersIgnored *prometheus.CounterVec
	tagsIgnored    *prometheus.CounterVec
	joinRefused    *prometheus.CounterVec
	rejoins        *prometheus.CounterVec
	forced         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		membersIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_members_ignored_total",
			Help: "Serf member events ignored because the member's tags are missing, invalid or of an unknown protocol version, by reason.",
		}, []string{"reason"}),
		tagsIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_tags_ignored_total",
			Help: "Optional member tags ignored because they are malformed (the member itself is kept), by reason (bad_cidrs).",
		}, []string{"reason"}),
		joinRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_join_refused_total",
			Help: "Merges of gossip state refused, by reason (duplicate_name: a second member claims an existing cluster name).",
		}, []string{"reason"}),
		rejoins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_rejoin_attempts_total",
			Help: "Attempts of the rejoin loop to join known members that are not alive, by result.",
		}, []string{"result"}),
		forced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_federation_members_forgotten_total",
			Help: "Members forgotten by ForceLeave (fedmesh members forget) on this control plane.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.membersIgnored, m.tagsIgnored, m.joinRefused, m.rejoins, m.forced} {
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

// membersCollector reports the valid members by status at scrape time.
// It reads serf's member list, which the event loop must never do: serf
// sends events while holding its member lock.
type membersCollector struct {
	m    *Membership
	desc *prometheus.Desc
}

func newMembersCollector(m *Membership) *membersCollector {
	return &membersCollector{m: m, desc: prometheus.NewDesc("fedmesh_federation_members",
		"Valid federation members (this one included), by status.", []string{"status"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[Status]int{StatusAlive: 0, StatusLeaving: 0, StatusLeft: 0, StatusFailed: 0}
	for _, mem := range c.m.Members() {
		counts[mem.Status]++
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(s))
	}
}
