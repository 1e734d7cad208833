// Package federation runs one control plane's part of the federation: it
// follows this cluster's own exports and, through package replicate, every
// peer's; merges them with package merge into the federation-wide
// catalog.View; fences peers that are gone; and reports its state for
// `fedmesh status`.
//
// # Data flow
//
//	own etcd exports --watch--+
//	peer A etcd exports --replicate.Replicator--+--> merge.Merge --> View --> subscribers (xDS, ServiceImports)
//	peer B etcd exports --replicate.Replicator--+          ^
//	membership (serf): alive/failed, locality, gateway, catalog address, RTT
//	                   (of members that proved their identity, see Trust)
//
// One goroutine (Run) owns all state. Replicators and membership only wake
// it; their news is coalesced, so a burst of changes makes one view, after
// Config.Debounce.
//
// # Static stability
//
// Every peer's snapshot is persisted into the local store (SetImports: the
// exports and the revision they are at). Run starts by loading what was
// persisted and publishing it at once, before any peer answers, and each
// replicator resumes its watch after the persisted revision.
//
// # Producer policies
//
// An export may carry its cluster's producer routes and policies of the
// service (catalog.Export.Policies); they are replicated, persisted and
// resumed with it, nothing apart. Before any cluster's snapshot (or
// persisted imports) reaches the merge, each export's policies are
// checked with merge.CheckPolicies: policies that do not decode, are not
// the service's own, or whose digest is wrong are refused: the export is
// merged as if it carried none, the refusal is logged and counted once
// per cluster, service and digest
// (fedmesh_federation_policies_refused_total) and listed in
// Status.RefusedPolicies. The merge puts the oldest export's policies in
// force and reports a PolicyConflict (see package merge).
//
// # Fencing
//
// Whether a peer's endpoints are fenced is decided by package fence, a
// pure state machine, from the control plane's evidence (serf status,
// whether the peer's catalog answers and since when, when its state was
// last confirmed) and, with Config.ProbeBundle, the data plane's: a
// package gwprobe prober owned by Run probes every peer's gateway through
// the mTLS path (an exported service's server name, answered by a peer
// sidecar) every Config.GatewayProbeInterval. A peer whose control plane
// is gone (serf reports it failed, or its catalog has not answered for
// Config.FencePeriod, default 15s) keeps its endpoints while its gateway
// answers probes, up to Config.StaleAfter (default 1h) after its state
// was last confirmed; it is fenced when its gateway leaves
// Config.GatewayProbeFailures probes in a row unanswered, or when its
// control plane is gone and a probe fails. Without probes (or with
// nothing to probe a peer with) a peer is fenced when its control plane
// is gone, as before. A fenced peer's endpoints stay in the view, marked
// unhealthy with the reason ("cluster west-1 fenced: serf reports the
// control plane failed and its gateway probe failed"), and become
// healthy again as soon as the evidence does. Status gives, for every
// peer, the rule that decided and why (MemberStatus.FenceRule,
// FenceDecision) and how its gateway probes are doing
// (MemberStatus.GatewayProbe). A failed peer's replicator keeps retrying
// with backoff.
//
// # Peers that leave
//
// A peer that left the federation on purpose (serf status left, after
// membership.Membership.Leave) is removed, as a member that leaves is
// removed from Consul: its replicator stops, its exports leave the view
// and its persisted imports are deleted from the local store. A failed
// peer stays, fenced, until it returns or is forgotten for good with
// membership.Membership.ForceLeave (`fedmesh members forget NAME`), which
// every member sees as left; a peer forgotten here that gossip no longer
// knows (Membership.Forgotten) is removed as well. Removals are counted in
// fedmesh_federation_peers_removed_total{reason}.
//
// # Replicas: one peer, several members
//
// A cluster may run several control plane replicas, each a gossip member
// CLUSTER.REPLICA (membership.Config.Replica) with its own catalog (its
// own etcd, written with the same exports). The federation treats the
// members of one cluster as one peer: each member proves the cluster's
// control plane identity on its own; the peer follows one proven replica
// (alive first, the one replicated now first among equals) and takes its
// status, so it is alive while any proven replica is; it is removed when
// every replica has left. A peer that moves to another replica's catalog
// lists it from scratch: revisions of one store mean nothing to another.
// See docs/replicas.md.
//
// # Trust: membership needs proof
//
// The gossip key lets a node into serf, and a stock `serf agent` can
// carry fedmesh-shaped tags; neither makes it a member. A gossip member
// is trusted only after it proves, through Config.Prover (package proof),
// the control plane identity of the cluster it names: its catalog address
// must present, over TLS, the SVID spiffe://TD/fedmesh/cluster/NAME for
// NAME its cluster tag, chained to the federation's root through NAME's
// own cluster CA. Until then the member is a candidate: it is not granted
// read access, not replicated, not a cluster of the view, not a member
// in the Status (it is listed under Status.Untrusted with the reason),
// and its gossip state (status, locality, gateway, RTT) fences or
// unfences nothing. A proof loop per candidate retries with a jittered
// exponential backoff (Config.MinBackoff to Config.MaxProofBackoff)
// until the member proves itself, changes, or leaves gossip.
//
// A proof is good for one instance of a member (its instance id), at one
// gossip address, with one catalog address. A member that restarts or
// moves proves itself again; meanwhile its replicator is stopped and its
// last exports stay, fenced after FencePeriod. A proven member that then
// presents another identity is dropped: not trusted, not replicated,
// logged as a drop. The replicator's TLS is pinned to the proven
// identity (Prover.PeerTLS), so a catalog that starts presenting another
// certificate is refused on its next connection, and the member is
// dropped and proven again. A left status removes a trusted peer (or one
// known only from persisted imports); from an instance that never proved
// itself it removes nothing.
//
// Counted in fedmesh_federation_untrusted_members_total{reason} (once per
// member instance and reason), fedmesh_federation_members_pending_proof
// {reason} (now; "proving" before the first answer) and
// fedmesh_federation_member_proofs_total{result} (every attempt).
//
// The proof binds a cluster name to the catalog address that serves its
// identity, which is what is granted and read. Gossip itself stays as
// strong as its key: a key holder can still claim the name of a cluster
// whose control plane is down (serf lets a failed name be reclaimed) and
// announce a gateway address, or spread its failure or departure; its
// catalog can only be the real one, and traffic through a false gateway
// still needs the end-to-end mTLS of the real workloads.
//
// # Access to our exports
//
// With Config.GrantPeerRead, every peer that proved its identity is
// granted read-only access to this cluster's exports prefix under its etcd
// user, "fedmesh-cp-<peer>" (the common name of its control plane
// certificate).
//
// # Example
//
//	fed, err := federation.New(federation.Config{
//		Cluster:        "east-1",
//		Locality:       topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"},
//		GatewayAddress: "127.0.0.11:15443",
//		Store:          st,         // *store.Store
//		Membership:     members,    // *membership.Membership
//		Prover:         prover,     // *proof.Prover: the federation's bundle, this control plane's SVID
//		PeerTLS:        clientTLS,  // this control plane's SVID, federation roots
//		GrantPeerRead:  true,
//		Logger:         logger,
//		Registerer:     registry,
//	})
//	go fed.Run(ctx)
//	views, cancel := fed.Subscribe()
//	defer cancel()
//	for v := range views { ... build xDS from v ... }
//	mux.Handle("/federation/", fed.Handler())
//	mux.Handle("/debug/view", fed.Handler())
package federation
