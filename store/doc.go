// Package store is a control plane's etcd: where it writes its cluster's
// exports for peers to replicate, where it persists what it imported from
// peers so that a restart serves the last known federation at once, and
// where it remembers the members it knows.
//
// # Embedded or external
//
// By default Open starts an embedded single-member etcd
// (go.etcd.io/etcd/server/v3/embed) with its data in Config.DataDir and its
// own client listener (Config.ListenClientURLs; port 0 picks a free port
// and ClientURL tells which). With Config.Endpoints it uses an external etcd
// cluster instead and embeds nothing. Peers replicate from ClientURL over
// mTLS: with Config.ClientCAFile the embedded server requires client
// certificates tied to their cluster (see Peer access), and once
// EnableAuth has run, the certificate's common name is the etcd user.
//
// The embedded etcd's raft peer listener (Config.ListenPeerURL) is on
// 127.0.0.1 with a free port by default: a single-member etcd never hears
// from raft peers, and the listener only exists because etcd needs one.
// An http peer URL off loopback is refused; https needs PeerCertFile,
// PeerKeyFile and a PeerCAFile of its own (mutual TLS). PeerURL tells
// where it listens.
//
// # Key layout (version 1)
//
// Every key is under Root, /fedmesh/v1/, then the name of the cluster that
// owns it, so that several clusters can share one external etcd:
//
//	/fedmesh/v1/clusters/<cluster>/exports/<namespace>/<name>
//	    JSON catalog.Export: the cluster's own export of a service, written
//	    under the control plane's lease. A control plane that dies stops
//	    renewing it, and its exports vanish after Config.LeaseTTL. This is
//	    the only prefix peers may read.
//	/fedmesh/v1/clusters/<cluster>/imports/<peer>/<namespace>/<name>
//	    JSON catalog.Export: peer's export of a service as this cluster
//	    last replicated it. No lease: it outlives restarts.
//	/fedmesh/v1/clusters/<cluster>/importgen/<peer>/<generation>/<namespace>/<name>
//	    The same, for a set written as a numbered generation because it
//	    did not fit one transaction (see Transactions).
//	/fedmesh/v1/clusters/<cluster>/importstate/<peer>
//	    JSON ImportState: the peer revision replicated up to, the time of
//	    the last sync, and the peer's locality and gateway as last seen;
//	    and the generation of the peer's imports ("generation", absent
//	    for 0: the imports/<peer>/ keys).
//	/fedmesh/v1/clusters/<cluster>/members/<member>
//	    JSON Member: a known member's gossip and etcd addresses, to rejoin
//	    it after a partition longer than gossip remembers.
//
// Build and parse keys only with the functions of keys.go (ExportKey,
// ParseExportKey, ImportKey, ...). Cluster, peer, namespace and member names
// are DNS-1123 labels and service names DNS-1035 labels, so no segment holds
// a slash. Values are JSON; an export is stored sorted (EncodeExport) so
// that equal exports are equal bytes. DecodeExport checks a value read from
// anywhere, a peer's etcd included: size, JSON, catalog validity, and that
// it names the service and cluster its key names.
//
// # Transactions
//
// SetExports replaces the cluster's whole export set in one transaction,
// writing only what changed, so a reader or a watcher sees the old set or
// the new one and never a mix. An exports write is never split: peers
// watch the exports, and a watcher would see half of it. The embedded
// etcd is started with a large --max-txn-ops (DefaultEmbeddedMaxTxnOps);
// for an external etcd, Config.MaxTxnOps must tell the server's limit
// (etcd's default is 128), and an exports write that needs more
// operations fails with ErrTooManyOps, leaving etcd as it was. Raise
// --max-txn-ops (and --max-request-bytes) on an external etcd that serves
// clusters with many services.
//
// SetImports and UpdateImports write one peer's imports with its
// ImportState, in one transaction when the change fits one. When it does
// not (a peer with more services than the limit allows), the whole set is
// written in as many transactions as it takes as a new generation, which
// no reader looks at yet; one small transaction then points the import
// state at the new generation and deletes the old one. The only reader of
// imports is ListImports, the restart path, and it reads the state and
// the generation it names at one revision: the old set or the new one,
// never a mix. A write cut off half way leaves the old set in place and
// a partial generation that the next write deletes.
//
// # Lease
//
// Open grants the exports lease and a goroutine keeps it alive until Close.
// If the lease is lost anyway (etcd unreachable for longer than the TTL),
// the store grants a new one and writes the last export set again under
// it. Close revokes the lease, so a clean shutdown withdraws the exports at
// once; Abandon leaves them to expire, as a crash would.
//
// # Watches
//
// WatchPrefix follows a prefix of any etcd (this cluster's, or a peer's
// over mTLS) from a revision, delivering a Resync (the whole prefix) at
// the start or after compaction, then the changes of one revision at a
// time, and restarting with a jittered, capped backoff after errors:
//
//	peerClient, err := store.NewClient([]string{peerEtcdURL}, mtlsConfig, log)
//	...
//	err = store.WatchPrefix(ctx, peerClient, store.ExportsPrefix("west-1"), state.Revision,
//		func(u store.Update) error {
//			if u.Resync {
//				imported = map[string]catalog.Export{}
//			}
//			for _, kv := range u.Puts {
//				e, err := store.DecodeExportKV(kv.Key, kv.Value)
//				...
//			}
//			for _, k := range u.Deletes { ... }
//			return local.UpdateImports(ctx, "west-1", puts, deletes, store.ImportState{Revision: u.Rev, ...})
//		}, store.WatchOptions{Logger: log, Metrics: local.Metrics()})
//
// # Peer access
//
// etcd authenticates a client certificate by its Common Name alone: the
// CN is the user. Every cluster CA of a federation chains to the same
// root, so if etcd trusted the root (as it did before issue 14), any
// cluster's CA could sign "CN=root" and own every peer's etcd. The store
// therefore ties each CN to the identity that may use it, and checks it
// before etcd sees the connection:
//
//   - With Config.ClientCAFile (the federation's bundle), the store does
//     not let etcd open client listeners. It binds ListenClientURLs itself
//     and serves etcd's gRPC API on them (v3rpc.Server over the running
//     etcd server, the same services and keepalive settings etcd's own
//     listener has), with transport credentials whose TLS handshake runs
//     the checks below in VerifyConnection. No other path leads to the
//     etcd server: embed is started with no client URL at all. etcd
//     reads the user from the connection's verified chains, which the
//     credentials set to the chains these checks accepted.
//   - A client must present a control plane SVID of the bundle's trust
//     domain, spiffe://TD/fedmesh/cluster/NAME, signed by NAME's own
//     cluster CA (the intermediate whose Subject OU is NAME), directly
//     under the root (identity.VerifyControlPlane). A certificate whose
//     ID names another cluster than its issuer, a workload SVID, a
//     foreign trust domain or root, or no certificate, is refused.
//   - Its Common Name must be EtcdUser(Cluster, NAME): RootUser for this
//     cluster's own control plane (the certificate controlplane/ca's
//     IssueEtcdRoot makes), PeerUser(NAME) = "fedmesh-cp-NAME" for a
//     peer's control plane SVID. A peer's certificate naming "root" or
//     another cluster is refused (ErrWrongUser).
//
// Each refusal fails the TLS handshake (the client sees "bad
// certificate"), is counted in fedmesh_store_client_refusals_total by
// reason (issuer_mismatch, wrong_user, unauthorized, untrusted,
// foreign_trust_domain, no_certificate, ...) and logged at warn level with
// the remote address, CN, URI SANs and issuer. Open refuses a
// Config.ClientTLS whose certificate the checks would refuse.
//
// The client listeners then speak gRPC only: etcd's HTTP endpoints
// (/health, /metrics, /version, the JSON gateway) are not served there;
// etcdctl and clientv3 are gRPC clients and work as before. etcd's own
// metrics are in the process's default Prometheus registry.
//
// EnableAuth turns etcd authentication on with a password-less root user.
// GrantPeerRead creates a password-less user for a peer (PeerUser(NAME))
// whose only permission is to read ExportsPrefix of this cluster;
// RevokePeer removes it. No peer can write here, or read anything else,
// and only this cluster's own control plane can be root.
//
// # External etcd
//
// With Config.Endpoints none of the above runs: a stock etcd checks a
// client certificate against its --trusted-ca-file and takes the CN as the
// user; it cannot tie a CN to the CA that signed it. So the operator must
// not give it the federation's bundle as --trusted-ca-file (every cluster
// CA could then mint its root). Run it with --client-cert-auth, etcd auth
// enabled, its peer URLs on loopback or with --peer-client-cert-auth and a
// CA of their own, and a --trusted-ca-file that holds only this cluster's
// CA certificate (ca.crt of `fedmesh ca issue-cluster`) or a CA dedicated
// to this etcd. The control plane does not grant peers access to an
// external etcd (controlplane sets no GrantPeerRead with endpoints), and
// with only this cluster's CA trusted, peers' replicators cannot connect
// to it: a cluster whose catalog peers replicate must use the embedded
// etcd, or put a proxy doing the checks above in front of its etcd, which
// fedmesh does not provide today.
//
// # Concurrency
//
// A Store is safe for concurrent use: writes are serialized, reads and
// watches run beside them. WatchPrefix calls its callback from one
// goroutine, the caller's.
package store
