package xds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fedmesh/fedmesh/catalog"
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
// gateway's service account in local mode, fedmesh-system/gateway, as
// `fedmesh demo` and docs/xds.md issue its bootstrap token (`fedmesh ca
// bootstrap-token --namespace fedmesh-system --service-account gateway
// --workload gateway`), and in Kubernetes mode,
// fedmesh-system/fedmesh-gateway, the ServiceAccount deploy/ runs the
// gateway as (its projected token checked with TokenReview).
func DefaultGatewayIdentities() []Identity {
	return []Identity{
		{Namespace: "fedmesh-system", ServiceAccount: "gateway"},
		{Namespace: "fedmesh-system", ServiceAccount: "fedmesh-gateway"},
	}
}

// String returns NAMESPACE/SERVICEACCOUNT, the form ParseIdentity reads.
func (id Identity) String() string { return id.Namespace + "/" + id.ServiceAccount }

// ParseIdentity reads NAMESPACE/SERVICEACCOUNT (as the control plane's
// --gateway-identity takes it): a DNS-1123 label, a slash, and a DNS-1123
// subdomain.
func ParseIdentity(s string) (Identity, error) {
	ns, sa, ok := strings.Cut(s, "/")
	if !ok {
		return Identity{}, fmt.Errorf("identity %q: want NAMESPACE/SERVICEACCOUNT", s)
	}
	id := Identity{Namespace: ns, ServiceAccount: sa}
	if err := id.validate(); err != nil {
		return Identity{}, fmt.Errorf("identity %q: %w", s, err)
	}
	return id, nil
}

// validate checks that the namespace and service account are names
// Kubernetes (and the bootstrap tokens) could carry.
func (id Identity) validate() error {
	if why := catalog.IsDNS1123Label(id.Namespace); why != "" {
		return fmt.Errorf("namespace %q %s", id.Namespace, why)
	}
	if why := catalog.IsDNS1123Subdomain(id.ServiceAccount); why != "" {
		return fmt.Errorf("service account %q %s", id.ServiceAccount, why)
	}
	return nil
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
