// Package jointoken creates and verifies fedmesh join tokens: the one
// secret a new cluster's control plane needs to join a federation.
//
// A token carries the federation's gossip keyring, its root CA bundle,
// seed gossip addresses and an expiry (Payload), signed by the issuing
// control plane's key, whose certificate chain (leaf and cluster
// intermediate) travels in the token. Format:
//
//	fmjt1.<base64url(JSON{p: payload bytes, c: [DER certificates], s: signature})>
//
// The signature covers the exact payload bytes, prefixed by a context
// string. The token is a bearer secret (it holds the gossip key): keep its
// lifetime short, one hour by default.
//
// Verify accepts a token only when
//   - its certificate chain leads to a root the joining cluster already
//     trusts (else ErrTokenForeign: a token of another federation);
//   - the signature matches the payload (else ErrTokenSignature: altered);
//   - the signing certificate is the control plane SVID of the issuer
//     cluster the payload names (spiffe://TD/fedmesh/cluster/ISSUER),
//     not a workload's (else ErrTokenSigner);
//   - its root bundle holds only trusted roots (else ErrTokenForeign);
//   - it has not expired (else ErrTokenExpired).
//
// Anything that does not parse is ErrTokenMalformed. Reason turns an error
// into a metric label.
//
//	tok, err := jointoken.Create(jointoken.Payload{
//		TrustDomain: "fedmesh.local", Issuer: "east-1",
//		GossipKeys: keys, RootBundle: rootPEM, Seeds: []string{"127.0.0.11:7946"},
//		Expiry: time.Now().Add(time.Hour),
//	}, clusterKey, []*x509.Certificate{leaf, intermediate})
//
//	p, err := jointoken.Verify(tok, trustedRoots, time.Now())
package jointoken
