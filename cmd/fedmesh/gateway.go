package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/gateway"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/topology"
)

// xdsClientOptions are the flags every xDS client command (gateway,
// sidecar) shares: where the control plane is and how to trust it, and the
// token that proves this node's identity.
type xdsClientOptions struct {
	xdsAddress  string
	trustDomain string
	rootBundle  string
	tokenFile   string
	insecure    bool
}

func (o *xdsClientOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.xdsAddress, "xds-address", "127.0.0.1:15010", "the control plane's xDS address")
	f.StringVar(&o.trustDomain, "trust-domain", "", "the federation's trust domain (required unless --insecure-xds)")
	f.StringVar(&o.rootBundle, "root-bundle", "", "PEM bundle of the federation's root CA, to verify the control plane")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the token that proves this node's identity: a bootstrap token from 'fedmesh ca bootstrap-token' (local mode) or a projected ServiceAccount token with audience fedmesh (Kubernetes)")
	f.BoolVar(&o.insecure, "insecure-xds", false, "talk to the control plane in plaintext (tests only)")
}

// controlPlaneTrust returns what verifies the control plane of cluster:
// the federation's roots and its ID spiffe://TD/fedmesh/cluster/CLUSTER
// (none of them with --insecure-xds).
func (o *xdsClientOptions) controlPlaneTrust(cluster string) (*x509.CertPool, spiffeid.ID, error) {
	if o.insecure {
		return nil, spiffeid.ID{}, nil
	}
	if o.trustDomain == "" || o.rootBundle == "" {
		return nil, spiffeid.ID{}, &exitError{code: 2, err: errors.New("--trust-domain and --root-bundle are required (or --insecure-xds)")}
	}
	td, err := spiffeid.TrustDomainFromString(o.trustDomain)
	if err != nil {
		return nil, spiffeid.ID{}, &exitError{code: 2, err: fmt.Errorf("--trust-domain: %w", err)}
	}
	want, err := identity.ControlPlaneID(td, cluster)
	if err != nil {
		return nil, spiffeid.ID{}, &exitError{code: 2, err: err}
	}
	pem, err := os.ReadFile(o.rootBundle)
	if err != nil {
		return nil, spiffeid.ID{}, &exitError{code: 2, err: fmt.Errorf("--root-bundle: %w", err)}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, spiffeid.ID{}, &exitError{code: 2, err: fmt.Errorf("--root-bundle %s: no PEM certificates", o.rootBundle)}
	}
	return roots, want, nil
}

// token reads the token file, "" when no file is given: once at start, so
// that a missing file fails the command; the xDS client reads it again at
// every connection (Config.TokenFile).
func (o *xdsClientOptions) token() (string, error) {
	if o.tokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(o.tokenFile)
	if err != nil {
		return "", &exitError{code: 2, err: fmt.Errorf("--token-file: %w", err)}
	}
	return strings.TrimSpace(string(b)), nil
}

func newGatewayCmd() *cobra.Command {
	var (
		xo           xdsClientOptions
		region, zone string
		cfg          gateway.Config
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run a cluster's east-west gateway (mTLS passthrough by SNI)",
		Long: `Run the east-west gateway: accept TLS from sidecars of other clusters, route it
by server name to a healthy local endpoint of an exported service, and splice
bytes without terminating TLS. Configuration comes from the control plane over
xDS. SIGTERM drains: stop accepting, let open connections finish.

The gateway proves its identity like every xDS node: --token-file holds a
bootstrap token (local mode) or a projected ServiceAccount token (Kubernetes
mode, checked with TokenReview), and --namespace, --service-account and
--workload must match what it proves. The control plane accepts the gateway
role only for its --gateway-identity identities.`,
		Example: `  fedmesh gateway --cluster east-1 --listen 127.0.0.11:15443 --admin 127.0.0.11:15021 \
    --xds-address 127.0.0.11:15010 --trust-domain fedmesh.local --root-bundle ca/root.crt --token-file gw/token \
    --service-account gateway`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := commandLogger(cmd)
			if err != nil {
				return err
			}
			if cfg.RootCAs, cfg.ControlPlaneID, err = xo.controlPlaneTrust(cfg.Cluster); err != nil {
				return err
			}
			cfg.TokenFile = xo.tokenFile
			if cfg.Token, err = xo.token(); err != nil {
				return err
			}
			cfg.ControlPlane, cfg.InsecureControlPlane = xo.xdsAddress, xo.insecure
			cfg.Locality = topology.Locality{Region: region, Zone: zone}
			cfg.Logger = log
			reg := newRegistry()
			cfg.Gatherer = reg
			gw, err := gateway.New(cfg, reg)
			if err != nil {
				return err
			}
			log.Info("gateway started", "listen", gw.Addr(), "admin", gw.AdminAddr(), "xds", xo.xdsAddress)
			return gw.Run(cmd.Context())
		},
	}
	xo.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&cfg.Cluster, "cluster", "", "this cluster's name (required)")
	f.StringVar(&region, "region", "", "this cluster's region")
	f.StringVar(&zone, "zone", "", "the gateway's zone")
	f.StringVar(&cfg.Namespace, "namespace", gateway.DefaultNamespace, "the namespace the gateway claims (its token must prove it)")
	f.StringVar(&cfg.ServiceAccount, "service-account", gateway.DefaultServiceAccount, "the service account the gateway claims (its token must prove it)")
	f.StringVar(&cfg.Workload, "workload", gateway.DefaultWorkload, "the workload the gateway claims: the token's workload, or the pod a projected token is bound to")
	f.StringVar(&cfg.ListenAddr, "listen", "127.0.0.1:15443", "address for mTLS passthrough traffic")
	f.StringVar(&cfg.AdminAddr, "admin", "127.0.0.1:15021", "admin address (/stats/prometheus, /ready, /debug/routes)")
	f.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", gateway.DefaultHandshakeTimeout, "time allowed to read the ClientHello")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", gateway.DefaultIdleTimeout, "close connections idle this long")
	f.IntVar(&cfg.MaxConns, "max-connections", gateway.DefaultMaxConns, "most connections open at once")
	f.IntVar(&cfg.MaxConnsPerSource, "max-connections-per-source", gateway.DefaultMaxConnsPerSource, "most connections open at once from one source address")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory where the gateway keeps its last good configuration (0600 files), to route by when it starts while no control plane answers (default none; an emptyDir in Kubernetes)")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", gateway.DefaultDrainTimeout, "how long SIGTERM waits for open connections")
	cmd.MarkFlagRequired("cluster")
	return cmd
}
