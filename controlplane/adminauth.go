package controlplane

import (
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/internal/identity"
)

// operatorAuth is the AdminAuth of a control plane with a CA. The admin
// listener's TLS handshake has already verified any client certificate
// as an X.509 SVID of the federation (identity.ServerConfigOptionalClient);
// this decides who may use the protected routes:
//
//   - an operator, spiffe://TD/fedmesh/operator/NAME, whose certificate
//     this cluster's CA signed, or the root directly (a federation-wide
//     operator); one signed by another cluster's CA is refused, since that
//     cluster administers itself, not this one;
//   - this control plane itself, spiffe://TD/fedmesh/cluster/SELF signed
//     by this cluster's CA (tools beside it using its certificate).
//
// Peers' control planes and workloads are refused: joining goes through
// gossip with a token, never through a peer's admin API.
func operatorAuth(auth *ca.Authority) AdminAuth {
	self := auth.ControlPlaneID()
	return func(r *http.Request) (string, error) {
		if r.TLS == nil {
			return "", fmt.Errorf("%w: the admin API needs TLS with an operator certificate", ErrUnauthenticated)
		}
		return authorizeOperator(auth, self.String(), r.TLS)
	}
}

func authorizeOperator(auth *ca.Authority, self string, cs *tls.ConnectionState) (string, error) {
	id, err := identity.PeerID(*cs)
	if err != nil {
		return "", fmt.Errorf("%w: this endpoint needs an operator client certificate (mTLS; 'fedmesh ca issue-operator'): %w", ErrUnauthenticated, err)
	}
	leaf := cs.PeerCertificates[0]
	issuer := auth.LeafIssuer(leaf)
	if name, err := ca.ParseOperatorID(id); err == nil {
		switch issuer {
		case ca.IssuerCluster:
			return "operator " + name, nil
		case ca.IssuerRoot:
			return "federation operator " + name, nil
		}
		return "", fmt.Errorf("%w: operator %s holds a certificate of another cluster's CA; use one of cluster %s's CA or the root", ErrForbidden, name, auth.Cluster())
	}
	if id.String() == self && issuer == ca.IssuerCluster {
		return "control plane " + auth.Cluster(), nil
	}
	return "", fmt.Errorf("%w: %s may not use the admin API (operators and this control plane only)", ErrForbidden, id)
}
