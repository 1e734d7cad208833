// Package identity holds fedmesh's SPIFFE identity rules and the TLS
// plumbing built on them: what an identity looks like, how a peer's
// certificate chain is checked, the tls.Config builders used by the
// sidecar, the gateway's neighbours, the xDS server and the etcd
// replication, and the Rotator that keeps a node's certificate fresh.
//
// # Identities
//
// One federation has one trust domain TD. fedmesh issues two kinds of
// X.509 SVIDs, each with exactly one URI SAN:
//
//	spiffe://TD/ns/NAMESPACE/sa/SERVICE-ACCOUNT   a workload (WorkloadID)
//	spiffe://TD/fedmesh/cluster/CLUSTER           a control plane (ControlPlaneID)
//
// Namespaces and cluster names are DNS-1123 labels, service accounts
// DNS-1123 subdomains, as in Kubernetes. The two path shapes cannot be
// mistaken for one another (AuthorizeWorkloads, AuthorizeControlPlanes).
//
// # Verification
//
// VerifyPeer checks what a TLS peer presented: at least one certificate;
// a leaf with exactly one URI SAN holding a SPIFFE ID in the bundle's trust
// domain; a leaf that is not a CA; a leaf valid at the given time; a chain
// through the presented intermediates to an authority of the bundle
// (go-spiffe's x509svid.Verify). Each refusal wraps one sentinel
// (ErrNoCertificate, ErrBadCertificate, ErrSANCount, ErrNotSPIFFE,
// ErrForeignTrustDomain, ErrExpired, ErrNotYetValid, ErrUntrusted; and
// ErrUnauthorized for an Authorizer's refusal), and Reason(err) gives the
// metric label, so callers count refusals by reason:
//
//	refused := prometheus.NewCounterVec(..., []string{"reason"})
//	cfg := identity.OnRefuse(identity.ServerConfig(rot, rot, identity.AuthorizeWorkloads()),
//		func(err error) { refused.WithLabelValues(identity.Reason(err)).Inc() })
//
// VerifyControlPlane adds what a control plane's etcd needs of a peer:
// the ID is a control plane ID, and the leaf was signed by the cluster CA
// of the very cluster the ID names (IssuingCluster reads the cluster from
// the CA's Subject OU), directly under the root. Every cluster CA chains
// to the same root, so without this east-2's CA could sign east-1's
// identity; ErrIssuerMismatch refuses that. ControlPlaneCN is the Common
// Name of a control plane SVID, its etcd user in peers' etcd.
//
// # TLS configs
//
// All configs require TLS 1.3 and read the certificate and bundle through
// CertSource and BundleSource at each handshake, so a rotation needs no new
// config.
//
//   - ServerConfig: mutual TLS; a client without a certificate is refused
//     with ErrNoCertificate (the sidecar's inbound listener; the control
//     plane's etcd client port runs VerifyControlPlane in its own config,
//     see package store).
//   - ClientConfig: presents our certificate (certs may be nil) and accepts
//     the server only if its SVID verifies and expect accepts the ID. The
//     host name is not checked (InsecureSkipVerify with the SPIFFE check in
//     VerifyConnection, as go-spiffe's tlsconfig does), because ServerName
//     carries the SNI that east-west gateways route on.
//   - ServerConfigOptionalClient: like ServerConfig but lets clients without
//     a certificate through, for the xDS server, which authenticates a new
//     sidecar by its bootstrap token and then hands it its first SVID. The
//     sidecar dials with ClientConfig(nil, rootBundle,
//     identity.AuthorizeIDs(controlPlaneID)).
//
// PeerID reads the verified identity from a finished handshake.
//
// FileCert is a CertSource for a key pair that comes from outside fedmesh
// as files (the injection webhook's serving certificate from
// cert-manager): it reloads the pair when the certificate file changes
// and keeps the last good one while a rotation is half written.
//
// # Rotation
//
// A Rotator holds the current certificate and bundle behind atomic
// pointers and is itself a CertSource and a BundleSource. Run renews the
// certificate at half its lifetime (RenewalTime) through the Renew
// function, retrying failures with exponential backoff and keeping the
// current certificate meanwhile. New handshakes pick up the new
// certificate; established connections are not touched. Subscribe tells
// interested parties (an SDS stream, a file writer) about changes.
//
//	rot, err := identity.NewRotator(identity.RotatorConfig{Renew: fetchSVID, Logger: log})
//	rot.SetBundle(rootBundle)
//	g.Go(func() error { return rot.Run(ctx) })
//	ln := tls.NewListener(raw, identity.ServerConfig(rot, rot, nil))
package identity
