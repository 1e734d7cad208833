package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/cmd/internal/proxycmd"
	"github.com/fedmesh/fedmesh/controlplane"
	"github.com/fedmesh/fedmesh/controlplane/clusterset"
	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/controlplane/source/filesource"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/topology"
)

type controlPlaneOptions struct {
	cluster, region, zone string
	dataDir               string
	source                string
	bindAddress           string
	adminAddress          string
	adminHosts            []string
	replica               string
	etcdEndpoints         []string
	etcdCert, etcdKey     string
	etcdCA                string
	caDir                 string
	serfPort              int
	xdsAddress            string
	gatewayAddress        string
	clusterCIDRs          []string
	importScope           []string
	profile               string
	fencePeriod           time.Duration
	gatewayProbes         controlplane.GatewayProbeConfig
	baseEjection          time.Duration
	clusterSetCIDR        string
	clusterSetPrefix      netip.Prefix // parsed clusterSetCIDR
	certTTL               time.Duration
	caReloadInterval      time.Duration
	quota                 controlplane.QuotaConfig
	leaderNamespace       string
	leaderIdentity        string
	advertiseAddress      string
	advertiseSerfPort     int
	advertiseEtcdURL      string
	gatewayIdentities     []string
	webViewInterval       time.Duration
	webViewTargets        []string
	// kubeMode is set by newSource for --source kube.
	kubeMode *kube.Mode
}

func newControlPlaneCmd() *cobra.Command {
	var o controlPlaneOptions
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "Run a cluster's control plane",
		Long: `Run a cluster's control plane: read the cluster's services from a source,
write its exports to etcd (embedded by default), and serve /healthz, /readyz
and /metrics on the admin port (15014). With --ca-dir the admin port serves
TLS, and everything on it but /healthz, /readyz and /metrics needs an
operator certificate ('fedmesh ca issue-operator').`,
		Example: `  fedmesh controlplane --cluster east-1 --region us-east --zone a \
    --bind-address 127.0.0.11 --data-dir /tmp/east-1 --source file:examples/local/east-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := commandLogger(cmd)
			if err != nil {
				return err
			}
			cfg := controlplane.Config{
				Cluster:      o.cluster,
				Replica:      o.replica,
				Locality:     topology.Locality{Region: o.region, Zone: o.zone, Cluster: o.cluster},
				BindAddress:  o.bindAddress,
				AdminAddress: o.adminAddress,
				AdminHosts:   o.adminHosts,
				DataDir:      o.dataDir,
				Logger:       log,
				Registry:     newRegistry(),
			}
			gateways, err := parseGatewayIdentities(o.gatewayIdentities)
			if err != nil {
				return err
			}
			cidrs, err := membership.ParseCIDRs(o.clusterCIDRs)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--cluster-cidrs: %w", err)}
			}
			scope, err := parseImportScope(o.importScope)
			if err != nil {
				return err
			}
			if o.clusterSetPrefix, err = clusterset.ParsePrefix(o.clusterSetCIDR); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--clusterset-cidr: %w", err)}
			}
			if o.caDir != "" {
				cfg.Mesh = &controlplane.MeshConfig{
					ClusterCIDRs:      cidrs,
					ImportScope:       scope,
					CADir:             o.caDir,
					SerfPort:          o.serfPort,
					XDSAddress:        o.xdsAddress,
					GatewayAddress:    o.gatewayAddress,
					Profile:           membership.Profile(o.profile),
					FencePeriod:       o.fencePeriod,
					GatewayProbes:     o.gatewayProbes,
					CertTTL:           o.certTTL,
					CAReloadInterval:  o.caReloadInterval,
					AdvertiseAddress:  o.advertiseAddress,
					AdvertiseSerfPort: o.advertiseSerfPort,
					AdvertiseEtcdURL:  o.advertiseEtcdURL,
					GatewayIdentities: gateways,
					WebView:           controlplane.WebViewConfig{Interval: o.webViewInterval, Targets: o.webViewTargets},
					Quota:             o.quota,
				}
				cfg.Mesh.XDS.BaseEjectionTime = o.baseEjection
				cfg.Mesh.XDS.ClusterSetPrefix = o.clusterSetPrefix
			}
			cfg.Source, err = o.newSource(cfg)
			if err != nil {
				return err
			}
			if len(o.etcdEndpoints) > 0 {
				cfg.Store.Endpoints = o.etcdEndpoints
				if cfg.Store.ClientTLS, err = o.etcdClientTLS(); err != nil {
					return err
				}
			}
			if mode := o.kubeMode; mode != nil {
				cfg.OnView = mode.Sink.Update
				if cfg.Mesh != nil {
					cfg.Mesh.Authenticator = xds.TokenAuthenticator(mode.Reviewer.Verify)
					// The web view reads sidecars and the gateway at
					// their proven pods' addresses.
					cfg.Mesh.WebView.Pods = mode.Source.PodAddress
				}
			}
			srv, err := controlplane.New(cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if o.kubeMode == nil {
				return srv.Run(cmd.Context())
			}
			// Kubernetes mode: the sink writes ServiceImports from the
			// views the server publishes, next to the server; the
			// joiner serves 'fedmesh join' through the API servers
			// with Secrets in the control plane's namespace.
			var joiner *kube.Joiner
			if cfg.Mesh != nil && o.leaderNamespace != "" {
				if joiner, err = kube.NewJoiner(kube.JoinConfig{
					Client: o.kubeMode.Clients.Kube, Namespace: o.leaderNamespace,
					Cluster: cfg.Cluster, Member: membership.MemberName(cfg.Cluster, o.replica),
					Token: srv.JoinToken, Join: srv.Join, Elector: o.kubeMode.Elector,
					Logger: cfg.Logger,
				}); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			g, gctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return srv.Run(gctx) })
			g.Go(func() error { return o.kubeMode.Sink.Run(gctx) })
			if joiner != nil {
				g.Go(func() error { return joiner.Run(gctx) })
			}
			err = g.Wait()
			if cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cluster, "cluster", "", "this cluster's name (required)")
	f.StringVar(&o.region, "region", "", "this cluster's region")
	f.StringVar(&o.zone, "zone", "", "this cluster's default zone")
	f.StringVar(&o.dataDir, "data-dir", "", "directory for the embedded etcd and the cluster's state (required with the embedded etcd)")
	f.StringVar(&o.source, "source", "", "where the cluster's services come from: file:DIR, kube (in-cluster) or kube:KUBECONFIG")
	f.StringVar(&o.advertiseAddress, "advertise-address", "", "address peers reach this control plane's gossip on (default: the bind address)")
	f.IntVar(&o.advertiseSerfPort, "advertise-serf-port", 0, "gossip port peers reach, when it differs from --serf-port (a NodePort)")
	f.StringVar(&o.advertiseEtcdURL, "advertise-etcd-url", "", "etcd URL peers replicate from, when it differs from the listener (e.g. https://NODE-IP:32379)")
	f.StringVar(&o.leaderNamespace, "leader-elect-namespace", "", "Kubernetes mode: namespace of the leader-election lease")
	f.StringVar(&o.replica, "replica", "", "this control plane's name among several replicas of its cluster (the pod name, a DNS-1123 label): it gossips as CLUSTER.REPLICA and peers see the replicas as one cluster")
	f.StringVar(&o.leaderIdentity, "leader-elect-identity", "", "Kubernetes mode: this replica's identity in leader election (default: host name)")
	f.StringVar(&o.bindAddress, "bind-address", "127.0.0.1", "address every listener binds to by default")
	f.StringVar(&o.adminAddress, "admin-address", "", "admin listener host:port (default BIND-ADDRESS:15014; TLS with --ca-dir)")
	f.StringSliceVar(&o.adminHosts, "admin-host", nil, "further host names operators reach the admin API by, such as a Service's DNS name (the bind, admin and advertised addresses and localhost are always accepted)")
	f.StringSliceVar(&o.etcdEndpoints, "etcd-endpoints", nil, "client URLs of an external etcd cluster (default: embedded etcd)")
	f.StringVar(&o.etcdCert, "etcd-cert", "", "client certificate for an external etcd (PEM)")
	f.StringVar(&o.etcdKey, "etcd-key", "", "client key for an external etcd (PEM)")
	f.StringVar(&o.etcdCA, "etcd-ca", "", "CA bundle that signed the external etcd's certificate (PEM)")
	f.StringVar(&o.caDir, "ca-dir", "", "the cluster CA directory from 'fedmesh ca issue-cluster'; enables federation, mTLS and xDS")
	f.IntVar(&o.serfPort, "serf-port", membership.DefaultBindPort, "gossip port (TCP and UDP) on the bind address")
	f.StringVar(&o.xdsAddress, "xds-address", "", "xDS listener host:port (default BIND-ADDRESS:15010)")
	f.StringVar(&o.gatewayAddress, "gateway-address", "", "this cluster's east-west gateway as peers reach it (default BIND-ADDRESS:15443)")
	f.StringSliceVar(&o.importScope, "import-scope", nil, "the services this cluster's workloads consume, NAMESPACE/NAME,...: only their exports are replicated from peers, merged and served (scoped imports, docs/scale.md); empty: every service the clusterset exports")
	f.StringSliceVar(&o.clusterCIDRs, "cluster-cidrs", nil, "address ranges this cluster's workloads and nodes send from, CIDR,... (pod and node CIDRs in Kubernetes; the workloads' loopback range in local mode, e.g. 127.0.1.0/24); peers' gateways label connections from them with this cluster's name (at most 8)")
	f.StringVar(&o.profile, "gossip-profile", string(membership.ProfileWAN), "gossip timings: wan (real federations), lan, or local (one machine)")
	f.DurationVar(&o.fencePeriod, "fence-period", 0, "how long a peer's catalog may be unreachable before its control plane counts as gone; it is fenced then unless its gateway answers probes (default 15s)")
	f.DurationVar(&o.gatewayProbes.Interval, "gateway-probe-interval", 0, "mean time between mTLS probes of each peer's gateway, jittered (default 1s; negative: no probes, fencing follows peers' control planes alone)")
	f.DurationVar(&o.gatewayProbes.Timeout, "gateway-probe-timeout", 0, "bound of one gateway probe (default 1s)")
	f.IntVar(&o.gatewayProbes.Failures, "gateway-probe-failures", 0, "gateway probes in a row that must fail before a peer is fenced (default 3)")
	f.DurationVar(&o.gatewayProbes.StaleAfter, "stale-after", 0, "how old a peer's last confirmed state may grow while its control plane is down and its gateway serves, before it is fenced (default 1h)")
	f.StringVar(&o.clusterSetCIDR, "clusterset-cidr", clusterset.DefaultPrefix.String(), "CIDR the ClusterSetIPs of imported services are allocated from (ServiceImport spec.ips, the sidecars' DNS answers); the same in every cluster")
	f.DurationVar(&o.baseEjection, "base-ejection-time", 0, "outlier detection's first ejection time sent to sidecars (default 30s)")
	f.DurationVar(&o.certTTL, "cert-ttl", 0, "lifetime of the control plane's and workloads' certificates, renewed at half life (default 24h)")
	f.DurationVar(&o.quota.Period, "quota-period", 0, "how often clusterset quotas are split again among clusters and sidecars (default 2s; docs/quota.md)")
	f.DurationVar(&o.quota.ReportInterval, "quota-report-interval", 0, "how often sidecars report their quota demand over LRS (default 2s)")
	f.DurationVar(&o.caReloadInterval, "ca-reload-interval", controlplane.DefaultCAReloadInterval, "how often --ca-dir is read again for a CA rotation ('fedmesh ca rotate')")
	f.StringArrayVar(&o.gatewayIdentities, "gateway-identity", defaultGatewayIdentities(),
		"NAMESPACE/SERVICEACCOUNT whose proven identity may connect to xDS as an east-west gateway (repeatable; the default covers the local demo's bootstrap token and deploy/'s ServiceAccount)")
	f.DurationVar(&o.webViewInterval, "webview-interval", 0, "how often the web view reads this cluster's sidecars' and gateway's request counters (default 1s; negative: never); with --source kube at their pods' addresses, port 15021")
	f.StringArrayVar(&o.webViewTargets, "webview-target", nil, "admin HOST:PORT of a further proxy the web view reads (repeatable)")
	cmd.MarkFlagRequired("cluster")
	cmd.MarkFlagRequired("source")
	return cmd
}

// defaultGatewayIdentities is xds.DefaultGatewayIdentities as flag values.
func defaultGatewayIdentities() []string {
	var out []string
	for _, id := range xds.DefaultGatewayIdentities() {
		out = append(out, id.String())
	}
	return out
}

// parseGatewayIdentities reads the --gateway-identity values.
func parseGatewayIdentities(vals []string) ([]xds.Identity, error) {
	out := make([]xds.Identity, 0, len(vals))
	for _, v := range vals {
		id, err := xds.ParseIdentity(v)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("--gateway-identity: %w", err)}
		}
		out = append(out, id)
	}
	return out, nil
}

// parseImportScope reads --import-scope: NAMESPACE/NAME values, each
// part a DNS-1123 label, none twice.
func parseImportScope(vals []string) ([]catalog.ServiceKey, error) {
	out := make([]catalog.ServiceKey, 0, len(vals))
	seen := map[catalog.ServiceKey]bool{}
	for _, v := range vals {
		ns, name, ok := strings.Cut(v, "/")
		if !ok {
			return nil, &exitError{code: 2, err: fmt.Errorf("--import-scope: %q: want NAMESPACE/NAME", v)}
		}
		for _, part := range []string{ns, name} {
			if why := catalog.IsDNS1123Label(part); why != "" {
				return nil, &exitError{code: 2, err: fmt.Errorf("--import-scope: %q: %q %s", v, part, why)}
			}
		}
		k := catalog.ServiceKey{Namespace: ns, Name: name}
		if seen[k] {
			return nil, &exitError{code: 2, err: fmt.Errorf("--import-scope: %s given twice", v)}
		}
		seen[k] = true
		out = append(out, k)
	}
	return out, nil
}

// newSource builds the source the --source flag names.
func (o *controlPlaneOptions) newSource(cfg controlplane.Config) (source.Source, error) {
	kind, arg, _ := strings.Cut(o.source, ":")
	switch kind {
	case "kube":
		// kube alone means in-cluster; kube:PATH names a kubeconfig.
		mode, err := kube.NewMode(kube.ModeConfig{
			Kubeconfig: arg, Cluster: cfg.Cluster,
			Region: cfg.Locality.Region, Zone: cfg.Locality.Zone,
			LeaseNamespace: o.leaderNamespace, Identity: o.leaderIdentity,
			ClusterSetPrefix: o.clusterSetPrefix,
			Logger:           cfg.Logger, Registerer: cfg.Registry,
		})
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("--source %s: %w", o.source, err)}
		}
		o.kubeMode = mode
		return mode.Source, nil
	case "file":
		if arg == "" {
			return nil, &exitError{code: 2, err: fmt.Errorf("--source %q: want file:DIR", o.source)}
		}
		src, err := filesource.New(filesource.Config{
			Dir:        arg,
			Cluster:    cfg.Cluster,
			Region:     cfg.Locality.Region,
			Zone:       cfg.Locality.Zone,
			Logger:     cfg.Logger,
			Registerer: cfg.Registry,
		})
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("--source %s: %w", o.source, err)}
		}
		return src, nil
	}
	return nil, &exitError{code: 2, err: fmt.Errorf("--source %q: unknown kind %q (want file:DIR, kube or kube:KUBECONFIG)", o.source, kind)}
}

// etcdClientTLS builds the client TLS for an external etcd from the flags;
// nil when none are given (plain http endpoints).
func (o *controlPlaneOptions) etcdClientTLS() (*tls.Config, error) {
	if o.etcdCert == "" && o.etcdKey == "" && o.etcdCA == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.etcdCert != "" || o.etcdKey != "" {
		cert, err := tls.LoadX509KeyPair(o.etcdCert, o.etcdKey)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("--etcd-cert/--etcd-key: %w", err)}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if o.etcdCA != "" {
		pem, err := os.ReadFile(o.etcdCA)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("--etcd-ca: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &exitError{code: 2, err: fmt.Errorf("--etcd-ca %s: no PEM certificates", o.etcdCA)}
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// newRegistry returns a metrics registry with the Go runtime and process
// collectors, shared by every part of one process.
func newRegistry() *prometheus.Registry { return proxycmd.NewRegistry() }
