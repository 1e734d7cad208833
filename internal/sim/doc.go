// Package sim is the federation simulator behind `fedmesh sim`: it runs
// N control planes of the real code on one machine and measures how the
// federation behaves as N grows.
//
// Each simulated cluster is what controlplane.Server wires in mesh mode,
// minus the listeners no peer uses: its own cluster CA (signed by one
// federation root, as `fedmesh ca issue-cluster` does), an embedded etcd
// serving mTLS with auth on and read grants for proven peers
// (package store), serf membership on the cluster's own loopback
// address (package membership), the federation with its proofs,
// replicators, merge and fencing (package federation), and the xDS
// server planning every published view (controlplane/xds). Only the
// source is synthetic: every cluster exports the same S services with E
// endpoints each, so every service of the merged view has N*E
// endpoints. Peers reach a cluster's etcd through a byte-counting relay
// on the cluster's address (TLS passes through it end to end); gossip is
// counted by a wrapper of serf's transport.
//
// # Why one embedded etcd per cluster
//
// A few shared etcd servers holding every cluster's prefix would save
// memory, but the design binds a cluster's identity to its catalog
// address: a member is trusted only when its catalog presents its own
// cluster's control plane certificate (package proof), and peers read
// it as users named after their certificates. A shared server presents
// one certificate, so the proofs, grants and pinned replicator TLS under
// test would be bypassed. An embedded etcd costs about 10 MiB resident
// before any peer is known (measured: Result.PerControlPlane.RSSStarted),
// so 200 clusters fit in a few GiB. The embedded etcds do not fsync
// (store.Config.UnsafeNoFsync): N of them share one disk here, and a
// forming federation's grants and imports writes waited for that disk's
// fsync rate (about 100 per second), not for the control planes.
//
// # Phases
//
// Run drives hosts (this process, or `fedmesh sim worker` processes
// when Config.Workers > 1) through: start every control plane; join all
// to the same three seeds and wait until every member sees every member
// alive and every view holds every cluster's endpoints; measure a window
// at rest; make Config.Changes endpoint changes at Config.ChurnRate, each
// followed until every other cluster's view has it; kill one cluster
// (no gossip leave, its catalog connections cut) and wait until every
// other fences it. Every wait is bounded by Config.PhaseTimeout.
//
//	res, err := sim.Run(ctx, sim.Config{Clusters: 50, Services: 100, Progress: os.Stderr})
//	if err != nil { ... }
//	res.WriteText(os.Stdout)
//
// Addresses: the run holds one loopback /16 (package addrlock, shared
// with the end-to-end tests) and binds port 0 on each cluster's address.
package sim
