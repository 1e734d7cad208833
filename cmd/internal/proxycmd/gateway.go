package proxycmd

import (
	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/gateway"
	"github.com/fedmesh/fedmesh/topology"
)

// NewGatewayCmd returns the gateway command of the binary named binary
// (fedmesh-proxy, or fedmesh, where it is an alias).
func NewGatewayCmd(binary string) *cobra.Command {
	var (
		xo           XDSClientOptions
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
		Example: `  ` + binary + ` gateway --cluster east-1 --listen 127.0.0.11:15443 --admin 127.0.0.11:15021 \
    --xds-address 127.0.0.11:15010 --trust-domain fedmesh.local --root-bundle ca/root.crt --token-file gw/token \
    --service-account gateway`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := CommandLogger(cmd)
			if err != nil {
				return err
			}
			if cfg.RootCAs, cfg.ControlPlaneID, err = xo.ControlPlaneTrust(cfg.Cluster); err != nil {
				return err
			}
			cfg.TokenFile = xo.TokenFile
			if cfg.Token, err = xo.Token(); err != nil {
				return err
			}
			cfg.ControlPlane, cfg.InsecureControlPlane = xo.Address, xo.Insecure
			cfg.Locality = topology.Locality{Region: region, Zone: zone}
			cfg.Logger = log
			reg := NewRegistry()
			cfg.Gatherer = reg
			gw, err := gateway.New(cfg, reg)
			if err != nil {
				return err
			}
			log.Info("gateway started", "listen", gw.Addr(), "admin", gw.AdminAddr(), "xds", xo.Address)
			return gw.Run(cmd.Context())
		},
	}
	xo.AddFlags(cmd)
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
