package proxycmd

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
)

// The files of a workload directory ('fedmesh ca bootstrap-token' writes
// them): the same names as controlplane/ca's TokenFile and BundleFile,
// which this package may not import (a test checks they agree).
const (
	workloadTokenFile  = "token"
	workloadBundleFile = "bundle.crt"
)

// XDSClientOptions are the flags every xDS client command (gateway,
// sidecar, certs) shares: where the control plane is and how to trust it,
// and the token that proves this node's identity.
type XDSClientOptions struct {
	// Address is the control plane's xDS address (--xds-address).
	Address string
	// TrustDomain is the federation's trust domain (--trust-domain).
	TrustDomain string
	// RootBundle is the federation's root CA bundle file (--root-bundle).
	RootBundle string
	// TokenFile holds the node's token (--token-file).
	TokenFile string
	// Insecure talks to the control plane in plaintext (--insecure-xds).
	Insecure bool
}

// AddFlags adds the xDS client flags to cmd.
func (o *XDSClientOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Address, "xds-address", "127.0.0.1:15010", "the control plane's xDS address")
	f.StringVar(&o.TrustDomain, "trust-domain", "", "the federation's trust domain (required unless --insecure-xds)")
	f.StringVar(&o.RootBundle, "root-bundle", "", "PEM bundle of the federation's root CA, to verify the control plane")
	f.StringVar(&o.TokenFile, "token-file", "", "file holding the token that proves this node's identity: a bootstrap token from 'fedmesh ca bootstrap-token' (local mode) or a projected ServiceAccount token with audience fedmesh (Kubernetes)")
	f.BoolVar(&o.Insecure, "insecure-xds", false, "talk to the control plane in plaintext (tests only)")
}

// ControlPlaneTrust returns what verifies the control plane of cluster:
// the federation's roots and its ID spiffe://TD/fedmesh/cluster/CLUSTER
// (none of them with --insecure-xds).
func (o *XDSClientOptions) ControlPlaneTrust(cluster string) (*x509.CertPool, spiffeid.ID, error) {
	if o.Insecure {
		return nil, spiffeid.ID{}, nil
	}
	if o.TrustDomain == "" || o.RootBundle == "" {
		return nil, spiffeid.ID{}, usage(errors.New("--trust-domain and --root-bundle are required (or --insecure-xds)"))
	}
	td, err := spiffeid.TrustDomainFromString(o.TrustDomain)
	if err != nil {
		return nil, spiffeid.ID{}, usage(fmt.Errorf("--trust-domain: %w", err))
	}
	want, err := identity.ControlPlaneID(td, cluster)
	if err != nil {
		return nil, spiffeid.ID{}, usage(err)
	}
	pem, err := os.ReadFile(o.RootBundle)
	if err != nil {
		return nil, spiffeid.ID{}, usage(fmt.Errorf("--root-bundle: %w", err))
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, spiffeid.ID{}, usage(fmt.Errorf("--root-bundle %s: no PEM certificates", o.RootBundle))
	}
	return roots, want, nil
}

// Token reads the token file, "" when no file is given: once at start, so
// that a missing file fails the command; the xDS client reads it again at
// every connection (Config.TokenFile).
func (o *XDSClientOptions) Token() (string, error) {
	if o.TokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(o.TokenFile)
	if err != nil {
		return "", usage(fmt.Errorf("--token-file: %w", err))
	}
	return strings.TrimSpace(string(b)), nil
}
