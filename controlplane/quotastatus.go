package controlplane

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/quota"
)

// QuotaPath serves the quota report (QuotaPage) on the admin listener;
// `fedmesh get quotas` reads it.
const QuotaPath = "/debug/quotas"

// QuotaPage is the quota report of one control plane: every clusterset
// quota of its policies, how it is split among the clusters and among
// this cluster's sidecars, and the recent demand.
type QuotaPage struct {
	Cluster string        `json:"cluster"`
	Quotas  []QuotaStatus `json:"quotas"`
}

// QuotaStatus is one quota's split as of the last round.
type QuotaStatus struct {
	// Quota is NAMESPACE/POLICY/QUOTA.
	Quota string `json:"quota"`
	// Requests per Interval is the quota as this cluster defines it;
	// Total is what is split (the smallest definition of the live
	// clusters).
	Requests int64    `json:"requests"`
	Interval Duration `json:"interval"`
	Total    int64    `json:"total"`
	// Minority is set while no more than half of the quota's clusters
	// are live from here: this cluster keeps at most the share it had.
	Minority bool `json:"minority,omitempty"`
	// Mismatch lists clusters that define the quota differently.
	Mismatch []string `json:"mismatch,omitempty"`
	// Clusters are every cluster taking part, this one included.
	Clusters []QuotaClusterStatus `json:"clusters"`
	// Sidecars are this cluster's sidecars that enforce the quota.
	Sidecars []QuotaSidecarStatus `json:"sidecars"`
	// Updated is when the split was computed.
	Updated time.Time `json:"updated"`
}

// QuotaClusterStatus is one cluster's part of a quota.
type QuotaClusterStatus struct {
	Cluster string `json:"cluster"`
	// Admitted and Refused are the cluster's recent demand per interval,
	// as it published it (this cluster: as measured now).
	Admitted int64 `json:"admitted"`
	Refused  int64 `json:"refused"`
	// Share is the cluster's share in the split (this cluster: the share
	// in force); Published is the share the cluster says it holds.
	Share     int64 `json:"share"`
	Published int64 `json:"published"`
	// Fenced clusters take no part in the split.
	Fenced bool `json:"fenced,omitempty"`
	Local  bool `json:"local,omitempty"`
}

// QuotaSidecarStatus is one sidecar's part of its cluster's share.
type QuotaSidecarStatus struct {
	Node     string `json:"node"`
	Admitted int64  `json:"admitted"`
	Refused  int64  `json:"refused"`
	Share    int64  `json:"share"`
}

// Duration is a time.Duration that reads and writes as a string ("1m0s").
type Duration time.Duration

// MarshalText writes d as time.Duration's String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads what MarshalText writes.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

func (b *quotaBalancer) statusOf(d *quotaDef, in quota.Input, res quota.Result, fenced map[string]bool, now time.Time) QuotaStatus {
	st := QuotaStatus{Quota: d.ID, Requests: d.Requests, Interval: Duration(d.Interval), Total: res.Total,
		Minority: res.Minority, Mismatch: res.Mismatch, Updated: now}
	st.Clusters = append(st.Clusters, QuotaClusterStatus{Cluster: in.Local, Local: true,
		Admitted: in.LocalRate.Admitted, Refused: in.LocalRate.Refused, Share: res.Share, Published: res.State.Published.Share})
	for _, p := range in.Peers {
		share, _ := quota.Of(res.Clusters, p.Cluster)
		st.Clusters = append(st.Clusters, QuotaClusterStatus{Cluster: p.Cluster, Fenced: fenced[p.Cluster],
			Admitted: p.Record.Rate.Admitted, Refused: p.Record.Rate.Refused, Share: share, Published: p.Record.Share})
	}
	slices.SortFunc(st.Clusters, func(a, b QuotaClusterStatus) int { return strings.Compare(a.Cluster, b.Cluster) })
	for _, node := range slices.Sorted(maps.Keys(in.Nodes)) {
		r := in.Nodes[node]
		share, _ := quota.Of(res.Nodes, node)
		st.Sidecars = append(st.Sidecars, QuotaSidecarStatus{Node: node, Admitted: r.Admitted, Refused: r.Refused, Share: share})
	}
	return st
}
