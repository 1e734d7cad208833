// Package replicate copies one peer cluster's exported catalog into this
// control plane.
//
// A Replicator follows the prefix /fedmesh/v1/clusters/<peer>/exports/ in
// the peer's etcd with go.etcd.io/etcd/client/v3, over mTLS with this
// control plane's own certificate (the peer's etcd grants it a read-only
// role on that prefix and nothing else). It resumes after the last revision
// it was given (what the caller persisted), requires a leader, and lists the
// prefix again when the history it needs was compacted, so that no change
// is lost or applied twice; a lost connection is retried with a jittered,
// capped exponential backoff (cenkalti/backoff/v4).
//
// Every change is delivered to Config.OnExports as a Snapshot: the peer's
// complete export set at one revision, sorted, so the consumer never sees
// half a transaction and needs no diffing. A bad key or value from the peer
// is refused, counted with a reason, and the last good export under that
// key is kept.
//
// Besides the watch, the connection's state tells whether the peer
// answers (State.Connected, State.Since: the input of fencing): the
// connection pings the peer every 10 s, and leaving Ready (closed,
// refused, or a ping unanswered for ProbeTimeout) marks the peer down at
// once. A probe reads the prefix's count when the session starts, when
// the connection comes back and every ProbeInterval (30 s): it tells the
// peer's current revision (State.PeerRevision, for the import lag),
// notices a peer without a leader, and one whose etcd was recreated with
// a shorter history, which forces a full list. Idle, a peer costs one
// ping every 10 s rather than a read every 2 s.
//
//	r, err := replicate.New(replicate.Config{
//		Local: "east-1", Peer: "west-1",
//		Endpoints: []string{"https://127.0.0.13:2379"}, TLS: tlsConf,
//		FromRevision: persisted.State.Revision, Initial: persisted.Exports,
//		OnExports: func(s replicate.Snapshot) { ... },
//		OnState:   func(s replicate.State) { ... },
//	})
//	r.Start()
//	defer r.Close()
package replicate
