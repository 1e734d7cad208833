package quota

import (
	"slices"
	"time"
)

// Def is a quota as the local policy defines it.
type Def struct {
	// ID is NAMESPACE/POLICY/QUOTA.
	ID string
	// Requests is admitted per Interval across the clusterset.
	Requests int64
	// Interval is the quota's period.
	Interval time.Duration
}

// Record is what a cluster publishes for one quota beside its exports,
// and what every control plane splits the quota from.
type Record struct {
	// Requests and Interval are the quota as the cluster defines it.
	Requests int64
	Interval time.Duration
	// Rate is the cluster's recent demand per Interval.
	Rate Rate
	// Share is the share the cluster holds now.
	Share int64
}

// Peer is another cluster's record, as replicated.
type Peer struct {
	Cluster string
	Record  Record
	// Fenced is set when the cluster is unreachable past its fencing
	// period: it leaves the split.
	Fenced bool
}

// State is what a control plane keeps of one quota between rounds.
type State struct {
	// Published is the record this cluster published last; the split
	// uses it for this cluster, as peers do.
	Published Record
	// Applied is the share in force for this cluster.
	Applied int64
	// Started is false before the first round.
	Started bool
	// MajorityShare is the share computed in the last round in which a
	// majority of the quota's clusters was live.
	MajorityShare int64
	// RaiseSince is when the split first gave more than Applied, while
	// the raise waits for RoundConfig.Hold; zero when none waits.
	RaiseSince time.Time
}

// Input is one round of one quota on one control plane.
type Input struct {
	Def Def
	// Local is this cluster's name.
	Local string
	// LocalRate is this cluster's demand measured since the last round
	// (the sum of its sidecars'); published for the next round.
	LocalRate Rate
	// Peers are the other clusters' records of this quota, one per
	// cluster.
	Peers []Peer
	// Nodes is the recent demand of each of this cluster's sidecars that
	// enforce the quota, by node ID.
	Nodes map[string]Rate
	// Now is the round's time.
	Now time.Time
	// Hold is how long a raise of this cluster's share waits before it
	// is applied (cuts are applied at once), so that peers have seen the
	// demand that made it and cut their own shares first. At least the
	// replication lag between control planes; a round period is the
	// default.
	Hold time.Duration
}

// Result is the outcome of a round.
type Result struct {
	// Total is the quota split, per Def.Interval (the smallest of the
	// live clusters' definitions, scaled to Def.Interval).
	Total int64
	// Clusters is the split among the live clusters, sorted.
	Clusters []Share
	// Share is this cluster's share in force: the split's, held back
	// while a raise waits, frozen while in a minority.
	Share int64
	// Nodes is Share split among this cluster's sidecars, sorted.
	Nodes []Share
	// Minority is set when no more than half of the quota's clusters
	// are live from here: this cluster keeps at most the share it had.
	Minority bool
	// Mismatch lists peers that define the quota differently.
	Mismatch []string
	// State is the state for the next round.
	State State
}

// Run computes one round. It is pure: the same input and state give the
// same result on every control plane.
//
// The split (Split) is among this cluster and every peer that is not
// fenced, with the demand each published (this cluster's too, so that
// every control plane splits the same numbers). Peers whose definition
// differs are counted with their demand scaled to Def.Interval, and the
// total is the smallest definition (every control plane then agrees on
// it). When no more than half of the clusters that publish the quota are
// live (this one is on the minority side of a partition, or too many
// peers died), this cluster's share is frozen at most at the share it
// last had with a majority: the majority side redistributes the fenced
// clusters' shares, and the minority does not grow.
func Run(in Input, prev State) Result {
	iv := in.Def.Interval
	total := in.Def.Requests
	self := prev.Published
	if !prev.Started {
		self = Record{Requests: in.Def.Requests, Interval: iv, Rate: in.LocalRate}
	}
	demands := []Demand{{ID: in.Local, Requests: self.Rate.Demand()}}
	var res Result
	known, live := 1, 1
	for _, p := range in.Peers {
		if p.Cluster == in.Local {
			continue
		}
		known++
		if p.Fenced {
			continue
		}
		live++
		r := p.Record
		d := r.Rate.Demand()
		if r.Interval != iv || r.Requests != in.Def.Requests {
			res.Mismatch = append(res.Mismatch, p.Cluster)
			d = scale(d, r.Interval, iv)
			total = min(total, scale(r.Requests, r.Interval, iv))
		}
		demands = append(demands, Demand{ID: p.Cluster, Requests: d})
	}
	slices.Sort(res.Mismatch)
	res.Total = total
	res.Clusters = Split(total, demands)
	share, _ := Of(res.Clusters, in.Local)

	st := prev
	st.Started = true
	res.Minority = 2*live <= known && known > 1
	if res.Minority {
		share = min(share, prev.MajorityShare)
	} else {
		st.MajorityShare = share
	}
	switch {
	case share <= prev.Applied || !prev.Started && in.Hold <= 0:
		st.Applied, st.RaiseSince = share, time.Time{}
	case st.RaiseSince.IsZero():
		st.RaiseSince = in.Now
	}
	if share > st.Applied && !st.RaiseSince.IsZero() && in.Now.Sub(st.RaiseSince) >= in.Hold {
		st.Applied, st.RaiseSince = share, time.Time{}
	}
	res.Share = st.Applied

	nodes := make([]Demand, 0, len(in.Nodes))
	for id, r := range in.Nodes {
		nodes = append(nodes, Demand{ID: id, Requests: r.Demand()})
	}
	res.Nodes = Split(res.Share, nodes)

	st.Published = Record{Requests: in.Def.Requests, Interval: iv, Rate: in.LocalRate, Share: res.Share}
	res.State = st
	return res
}

// scale converts n per from to n per to, rounding down.
func scale(n int64, from, to time.Duration) int64 {
	if from <= 0 || n <= 0 {
		return 0
	}
	v := float64(n) * float64(to) / float64(from)
	if v >= MaxDemand {
		return MaxDemand
	}
	return int64(v)
}
