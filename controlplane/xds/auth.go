package xds

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// ErrUnauthenticated is wrapped by every error of an Authenticator that
// could not prove who a node is.
var ErrUnauthenticated = errors.New("unauthenticated")

// Identity is who a node is, as proven by its credentials.
type Identity struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
	// Workload, when the credentials name one, must equal the node's
	// fedmesh.workload.
	Workload string `json:"workload,omitempty"`
}

// Authenticator proves a node's identity from its stream's context (the
// gRPC peer, with its TLS state) and its announced metadata (a bootstrap
// token). It is called once per stream, concurrently for different
// streams.
type Authenticator interface {
	Authenticate(ctx context.Context, n Node) (Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, n Node) (Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, n Node) (Identity, error) {
	return f(ctx, n)
}

var _ Authenticator = AuthenticatorFunc(nil)

// TokenAuthenticator authenticates a node by the bootstrap token in its
// metadata (local mode), with verify being the CA's token check.
func TokenAuthenticator(verify func(token string) (ns, sa, workload string, err error)) Authenticator {
	return AuthenticatorFunc(func(_ context.Context, n Node) (Identity, error) {
		if n.Token == "" {
			return Identity{}, fmt.Errorf("%w: node %q sent no token", ErrUnauthenticated, n.ID)
		}
		ns, sa, wl, err := verify(n.Token)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: node %q: %w", ErrUnauthenticated, n.ID, err)
		}
		if sa == "" {
			sa = DefaultServiceAccount
		}
		return Identity{Namespace: ns, ServiceAccount: sa, Workload: wl}, nil
	})
}

// DefaultGatewayIdentities are the identities that may connect as role
// gateway unless Config.GatewayIdentities says otherwise: the east-west
// gateway's service account, fedmesh-system/gateway, as `fedmesh demo`
// and docs/xds.md issue its bootstrap token (`fedmesh ca bootstrap-token
// --namespace fedmesh-system --service-account gateway --workload
// gateway`).
func DefaultGatewayIdentities() []Identity {
	return []Identity{{Namespace: "fedmesh-system", ServiceAccount: "gateway"}}
}

// checkClaims compares what a node claims with what it proved. Every role
// is checked the same way; a gateway's proven identity must in addition
// be one of gateways, so that no workload can read the exports' local
// endpoints by claiming the role.
func checkClaims(n Node, id Identity, gateways []Identity) error {
	if n.Namespace != id.Namespace || n.ServiceAccount != id.ServiceAccount {
		return fmt.Errorf("node %q claims %s/%s but its credentials are for %s/%s", n.ID,
			n.Namespace, n.ServiceAccount, id.Namespace, id.ServiceAccount)
	}
	if id.Workload != "" && n.Workload != id.Workload {
		return fmt.Errorf("node %q claims workload %q but its credentials are for %q", n.ID, n.Workload, id.Workload)
	}
	if n.Role == naming.RoleGateway && !slices.ContainsFunc(gateways, func(g Identity) bool {
		return g.Namespace == id.Namespace && g.ServiceAccount == id.ServiceAccount
	}) {
		return fmt.Errorf("node %q claims role %s but its credentials are for %s/%s, not a gateway identity", n.ID,
			naming.RoleGateway, id.Namespace, id.ServiceAccount)
	}
	return nil
}
