// Package topology is fedmesh's pure locality engine: it decides which
// endpoints a client should prefer and how much traffic each preference
// level gets. It does no I/O and starts no goroutines; every function is
// deterministic for equal inputs, so the control plane and the sidecar
// compute the same answers.
//
// # Priorities
//
// A Policy ranks endpoints relative to a client. Both are described by a
// Node: a Locality (region, zone, cluster) and optional labels. The
// default order is
//
//  0. same cluster and zone
//  1. same zone in another cluster
//  2. same region (any other zone or cluster)
//  3. other regions, each region its own level: first the regions named by
//     the Failover rules for the client's region (in rule order), then by
//     lower measured RTT (Policy.RTT, keyed by cluster or region), then
//     regions without a measurement by name.
//
// Policy.FailoverPriority, like Istio's localityLbSetting.failoverPriority,
// is a list of label keys that ranks above locality: an endpoint whose
// labels equal the client's on the first N keys ranks ahead of one that
// matches on fewer leading keys; locality then orders endpoints with the
// same match length. Policy.Failover, like Istio's localityLbSetting.failover
// (from: us-east, to: eu-west), overrides the RTT order of other regions.
//
// Prioritize groups endpoints with equal rank into one level and numbers
// the levels densely from 0. Each Rank carries a short reason ("same
// cluster and zone", "same region us-east", "other region us-west, rtt
// 12ms") for the control plane's debug pages.
//
//	ranks := topology.Policy{RTT: rtts}.Prioritize(
//		topology.Node{Locality: topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"}},
//		endpoints)
//	// ranks[i].Priority is endpoint i's level, ranks[i].Reason says why.
//
// # Load between priorities
//
// ComputeLoad follows Envoy's documented priority-level semantics exactly
// (the "Priority levels", "Degraded endpoints" and "Panic threshold" pages
// of Envoy's load balancing overview), in whole percents as Envoy does:
//
//   - a level's health is min(100, OverprovisioningFactor% * healthy/hosts),
//     its degraded availability the same over degraded hosts, both in
//     integer percent (the default factor is 140, i.e. 1.4);
//   - the normalized total availability is min(100, sum of health + sum of
//     degraded availability);
//   - load goes first to healthy hosts, level by level, each getting
//     health*100/normalized total until 100 is used up, then in the same
//     way to degraded hosts, and any rounding remainder to the first level
//     that has healthy hosts (or else degraded ones);
//   - a level is in panic when normalized total availability is below 100
//     and (healthy+degraded)/hosts of the level is below PanicThreshold
//     (default 50%): the picker then uses all of that level's hosts
//     regardless of health; when every level is in panic, load is spread
//     over levels in proportion to their host counts instead (fedmesh also
//     does this in the one case Envoy leaves undefined: availability that
//     rounds to 0 with a tiny overprovisioning factor);
//   - with panic mode off and nothing available, Envoy sends everything to
//     P=0; fedmesh sends it to the first level that has hosts, so that no
//     load ever goes to an empty level.
//
// Shares are integer percents: when any level has a host, Healthy and
// Degraded together sum to exactly 100 and a level with no hosts gets 0.
// With no hosts at all every share is 0. Load.Choose maps a uniform number
// in [0, 100) to a level, without allocating.
//
//	load := topology.ComputeLoad([]topology.Level{
//		{Hosts: 2, Healthy: 1}, // P0: 50% healthy -> 70% of traffic
//		{Hosts: 2, Healthy: 2}, // P1: takes the other 30%
//	}, topology.LoadConfig{})
//	p, degraded := load.Choose(rng.Uint32N(100))
package topology
