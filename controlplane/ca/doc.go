// Package ca is fedmesh's certificate authority: the federation's root,
// one intermediate per cluster, the X.509 SVIDs a cluster's control plane
// signs for its workloads and for itself, and the bootstrap tokens with
// which a local-mode workload proves who it is before it has a
// certificate.
//
// # Hierarchy
//
//	root (InitRoot; ECDSA P-256, 10 years, URI SAN spiffe://TD, kept offline)
//	└── cluster CA (IssueClusterCA; MaxPathLen 0, URI name constraint TD,
//	    │           OU = cluster name, 1 year by default)
//	    ├── workload SVID  spiffe://TD/ns/NS/sa/SA        (SignWorkload, 24 h)
//	    ├── control plane  spiffe://TD/fedmesh/cluster/C  (SignControlPlane)
//	    │                  CN fedmesh-cp-C, IP/DNS SANs for its etcd and xDS ports
//	    ├── etcd root      same URI, CN root, client auth (SignEtcdRoot)
//	    └── operator       spiffe://TD/fedmesh/operator/NAME (IssueOperator, 12 h,
//	                       client auth, no CN): this cluster's admin API
//	root ── operator       the same, signed by the root (Root.IssueOperator):
//	                       every cluster's admin API
//
// Every leaf has exactly one URI SAN and is valid from a minute before it
// is signed (clock skew) to its TTL, never past its CA. etcd maps a
// client certificate's CN to an etcd user: "root" for the control plane's
// own client, "fedmesh-cp-C" for peer C's replicator (given a read-only
// role by the federation); workload leaves carry no CN.
//
// # Files
//
//	root dir:    root.crt (0644)  root.key (0600)
//	cluster dir: ca.crt (0644)    ca.key (0600)   bundle.crt (0644, the root)
//	             token.key (0600, 32 random bytes: the bootstrap token secret)
//	workload dir: token (0600, written by WriteBootstrapToken)
//	operator dir: operator.crt (0644) operator.key (0600) bundle.crt (0644),
//	              written by WriteOperator, replaced on re-issue
//
// InitRoot and IssueClusterCA never overwrite: they fail with ErrExists.
// LoadAuthority refuses secret files readable by others. Only a rotation
// replaces files, each atomically (rename), and records itself in
// rotation.json, with the certificates (never the keys) of replaced
// intermediates in retired/.
//
// # Rotation
//
// RotateIntermediate signs a new intermediate for a cluster under a root
// of its bundle and puts it in place of ca.crt and ca.key (the token
// secret stays); the old one is retired for a window. RotateRoot runs one
// phase of a root rotation, each in every cluster before the next:
//
//	add     bundle.crt = old roots + new root    (every cluster trusts both)
//	switch  ca.crt under the new root            (new leaves chain to it)
//	remove  bundle.crt = new root, after the window since switch
//
// Check holds the rules (which step fits which state) as a pure function.
// A running control plane follows its directory (Authority.Reload): a
// changed intermediate or bundle is swapped in whole, a directory caught
// half written is read again later.
//
// # Bootstrap tokens (local mode)
//
// IssueBootstrapToken signs fmb1.PAYLOAD.MAC: base64url JSON {cluster,
// namespace, service account, workload, issued at, expiry} and an
// HMAC-SHA256 over "fmb1.PAYLOAD" with the cluster's secret. The xDS server
// checks it with VerifyBootstrapToken (constant-time MAC compare first,
// then payload, cluster and expiry) and issues an SVID for exactly the
// identity the token names, never the one a node claims:
//
//	auth, _ := ca.LoadAuthority("clusters/east-1/ca")
//	tok, _ := auth.IssueBootstrapToken("demo", "echo", "echo-1", 0)
//	_ = ca.WriteBootstrapToken("workloads/echo-1", tok)
//	// control plane:
//	ns, sa, wl, err := auth.VerifyBootstrapToken(tok)
//	chain, err := auth.SignWorkload(ns, sa, nodePublicKey, 0)
//
// Kubernetes mode will verify projected ServiceAccount tokens through
// TokenReview instead; the signing side stays the same.
package ca
