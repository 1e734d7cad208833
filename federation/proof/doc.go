// Package proof checks that a serf member is what its tags say it is: the
// control plane of the cluster it names. The gossip key lets anyone into
// serf, and a stock `serf agent` can carry fedmesh-shaped tags; the
// federation trusts a member (grants it read access to our exports,
// replicates from it, shows it as a member, lets its gossip state fence or
// unfence its endpoints) only after a Prover has checked it.
//
// # The proof
//
// A member announces its catalog (etcd client) URL in its tags. Prove
// dials that address over TLS and requires the server to present the
// member's control plane SVID:
//
//   - a chain to the federation's root (identity.VerifyPeerCertificates),
//   - exactly the ID spiffe://TD/fedmesh/cluster/NAME where NAME is the
//     member's cluster tag (and serf name),
//   - signed by NAME's own cluster CA, the intermediate whose one
//     organizational unit is NAME, so that no other cluster's CA can mint
//     it (identity.VerifyControlPlane),
//
// and the TLS handshake proves the server holds the certificate's key.
// The control plane's etcd serves exactly that certificate, so a real
// member proves itself with what it already runs; nothing is added to the
// tags, which memberlist limits to 512 bytes. A member with an http
// catalog cannot prove anything (ReasonNotTLS). A control plane on an
// external etcd (--etcd-endpoints) proves itself only if that etcd
// serves the control plane's certificate.
//
// What the proof binds is the name and the catalog address: the address
// the federation would replicate from presents the identity of the named
// cluster. PeerTLS pins the replicator's TLS to that identity as well, so
// a catalog that later presents another certificate is refused on the
// next connection, and the refusal is reported.
//
// # Reasons
//
// A failed proof is an *Error with a Reason, the label the federation
// counts it under: catalog_not_tls, bad_catalog_address, unreachable,
// handshake_failed, not_control_plane, wrong_cluster, wrong_issuer, or a
// certificate problem named by identity.Reason (no_certificate,
// untrusted, foreign_trust_domain, expired, ...). Error.IdentityRefused
// tells a refused identity from a member that could not be reached.
//
// # Example
//
//	p, err := proof.New(proof.Config{Bundle: identity.StaticBundle(rootBundle), Certs: cpRotator})
//	id, err := p.Prove(ctx, m.Cluster, m.CatalogAddr)
//	if err != nil {
//		log.Warn("member not trusted", "member", m.Name, "reason", proof.ReasonOf(err), "err", err)
//	}
package proof
