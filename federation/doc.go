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
// # Fencing
//
// A peer is fenced when serf reports it failed or leaving, or when its
// catalog has not answered for longer than Config.FencePeriod (default
// 15s). A fenced peer's endpoints stay in the view, marked unhealthy with
// the reason ("cluster west-1 fenced: serf reports the control plane
// failed"), and become healthy again as soon as the peer answers. A failed
// peer's replicator keeps retrying with backoff.
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
// # Access to our exports
//
// With Config.GrantPeerRead, every peer seen in gossip is granted read-only
// access to this cluster's exports prefix under its etcd user,
// "fedmesh-cp-<peer>" (the common name of its control plane certificate).
//
// # Example
//
//	fed, err := federation.New(federation.Config{
//		Cluster:        "east-1",
//		Locality:       topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"},
//		GatewayAddress: "127.0.0.11:15443",
//		Store:          st,         // *store.Store
//		Membership:     members,    // *membership.Membership
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
