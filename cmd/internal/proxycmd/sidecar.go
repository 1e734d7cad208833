package proxycmd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/sidecar"
	"github.com/fedmesh/fedmesh/sidecar/audit"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
	"github.com/fedmesh/fedmesh/topology"
)

// NewSidecarCmd returns the sidecar command of the binary named binary
// (fedmesh-proxy, or fedmesh, where it is an alias).
func NewSidecarCmd(binary string) *cobra.Command {
	var (
		xo                                      XDSClientOptions
		workloadDir, address, dataDir           string
		outbound, inbound, admin, dns, svcIP    string
		ready, dns6                             string
		cluster, region, zone                   string
		namespace, serviceAccount, workloadName string
		appPorts, nodeID, labels                string
		auditLog                                string
		auditMaxSize                            int64
		auditMaxFiles                           int
		accessLog, accessLogFilter              string
		otlpEndpoint, otlpProtocol              string
		traceSampling                           float64
		bindOutbound, dnsClusterSetIP           bool
		capture                                 captureFlags
	)
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Run a workload's sidecar (outbound proxy, inbound mTLS, DNS for clusterset.local)",
		Long: `Run the sidecar next to one workload. It takes its configuration from the
cluster's control plane over xDS (ADS), and keeps the last good one while the
control plane is away.

Outbound: apps reach services by NAME.NS.svc.clusterset.local:PORT or NAME.NS:PORT
  - as an HTTP proxy: HTTP_PROXY=http://LOOPBACK:15001 (CONNECT for opaque TCP);
  - through DNS: point a resolver at LOOPBACK:15053, which answers service names
    with the service IP, where the sidecar listens on every service port.
Inbound: mutual TLS on the address the control plane gives (ADDRESS:15006 in
local mode); requests reach the app with the caller's SPIFFE ID in
x-fedmesh-client-id.

What only the app may use (the outbound proxy, service-port listeners, DNS and
the admin pages) listens on LOOPBACK: ADDRESS itself when it is a loopback
address (local mode gives each workload its own, 127.0.N.M), else 127.0.0.1
(::1 for an IPv6 ADDRESS), as in a pod, where ADDRESS is the pod IP. Whoever
reaches the outbound proxy sends requests with the workload's identity.`,
		Example: `  ` + binary + ` sidecar --cluster east-1 --region us-east --zone a \
    --namespace demo --service-account client --workload client \
    --address 127.0.1.100 --service-ip 127.0.1.200 \
    --xds-address 127.0.0.11:15010 --trust-domain fedmesh.local --workload-dir run/east-1/client`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := CommandLogger(cmd)
			if err != nil {
				return err
			}
			if workloadDir != "" {
				if xo.TokenFile == "" {
					xo.TokenFile = filepath.Join(workloadDir, workloadTokenFile)
				}
				if xo.RootBundle == "" {
					xo.RootBundle = filepath.Join(workloadDir, workloadBundleFile)
				}
				if !cmd.Flags().Changed("data-dir") {
					dataDir = filepath.Join(workloadDir, "state")
				}
			}
			if net.ParseIP(address) == nil {
				return usage(fmt.Errorf("--address %q is not an IP address", address))
			}
			local := loopbackFor(address)
			def := func(v *string, port string) {
				if *v == "" {
					*v = net.JoinHostPort(local, port)
				}
			}
			def(&outbound, "15001")
			def(&admin, "15000")
			def(&dns, "15053")
			if svcIP == "" {
				svcIP = local
			}
			if nodeID == "" {
				nodeID = naming.RoleSidecar + "~" + address + "~" + workloadName + "." + namespace
			}
			if svcIP == "none" {
				svcIP = ""
			}
			if dns == "none" {
				dns = ""
			}
			tok, err := xo.Token()
			if err != nil {
				return err
			}
			cfg := sidecar.Config{
				ControlPlane:         xo.Address,
				InsecureControlPlane: xo.Insecure,
				NodeID:               nodeID,
				Token:                tok,
				TokenFile:            xo.TokenFile,
				Cluster:              cluster,
				Locality:             topology.Locality{Region: region, Zone: zone},
				Namespace:            namespace,
				ServiceAccount:       serviceAccount,
				Workload:             workloadName,
				AppPorts:             appPorts,
				Labels:               labels,
				OutboundAddr:         outbound,
				InboundAddr:          inbound,
				AdminAddr:            admin,
				ReadyAddr:            ready,
				DNSAddr:              dns,
				DNSAddrIPv6:          dns6,
				DNSClusterSetIP:      dnsClusterSetIP,
				ServiceIP:            svcIP,
				DataDir:              dataDir,
				Logger:               log,
			}
			if cfg.Capture, err = capture.config(address); err != nil {
				return usage(err)
			}
			if xo.TrustDomain == "" {
				return usage(errors.New("--trust-domain is required"))
			}
			if cfg.TrustDomain, err = spiffeid.TrustDomainFromString(xo.TrustDomain); err != nil {
				return usage(fmt.Errorf("--trust-domain: %w", err))
			}
			if !xo.Insecure {
				if xo.RootBundle == "" {
					return usage(errors.New("--root-bundle or --workload-dir is required (or --insecure-xds)"))
				}
				pem, err := os.ReadFile(xo.RootBundle)
				if err != nil {
					return usage(fmt.Errorf("--root-bundle: %w", err))
				}
				if cfg.RootBundle, err = x509bundle.Parse(cfg.TrustDomain, pem); err != nil {
					return usage(fmt.Errorf("--root-bundle %s: %w", xo.RootBundle, err))
				}
				if cfg.ControlPlaneID, err = identity.ControlPlaneID(cfg.TrustDomain, cluster); err != nil {
					return usage(err)
				}
			}
			switch auditLog {
			case "none":
			case "stdout":
				cfg.AuditSink = os.Stdout
			default:
				f, err := audit.OpenFile(auditLog, auditMaxSize<<20, auditMaxFiles)
				if err != nil {
					return usage(fmt.Errorf("--audit-log: %w", err))
				}
				defer f.Close()
				cfg.AuditSink = f
			}
			switch accessLogFilter {
			case "all":
				cfg.AccessLogMode = proxy.AccessLogAll
			case "errors":
				cfg.AccessLogMode = proxy.AccessLogErrors
			default:
				return usage(fmt.Errorf("--access-log-filter %q: want all or errors", accessLogFilter))
			}
			switch accessLog {
			case "", "-":
				// Without the flag the log is off until a TelemetryPolicy
				// turns it on; then it goes to stderr.
				if accessLog == "" {
					cfg.AccessLogMode = proxy.AccessLogOff
				}
				cfg.AccessLogSink = os.Stderr
			default:
				f, err := audit.OpenFile(accessLog, auditMaxSize<<20, auditMaxFiles)
				if err != nil {
					return usage(fmt.Errorf("--access-log: %w", err))
				}
				defer f.Close()
				cfg.AccessLogSink = f
			}
			if otlpEndpoint != "" {
				proto, err := tracing.ParseProtocol(otlpProtocol)
				if err != nil {
					return usage(fmt.Errorf("--otlp-protocol: %w", err))
				}
				if err := tracing.CheckPercent(traceSampling); err != nil {
					return usage(fmt.Errorf("--trace-sampling: %w", err))
				}
				cfg.Tracing = &tracing.Config{Endpoint: otlpEndpoint, Protocol: proto, SamplingPercent: traceSampling}
			}
			if !cmd.Flags().Changed("bind-outbound") {
				bindOutbound = ownLoopback(address)
			}
			if bindOutbound {
				a, err := netip.ParseAddr(address)
				if err != nil {
					return usage(fmt.Errorf("--address %q: %w", address, err))
				}
				cfg.OutboundBindAddr = a.Unmap()
			}
			reg := NewRegistry()
			cfg.Registerer, cfg.Gatherer = reg, reg
			sc, err := sidecar.New(cfg)
			if err != nil {
				return err
			}
			log.Info("sidecar started", "outbound", sc.OutboundAddr(), "admin", sc.AdminAddr(), "ready", sc.ReadyAddr(), "dns", sc.DNSAddr(), "dns-ipv6", sc.DNSAddrIPv6(), "xds", xo.Address)
			return sc.Run(cmd.Context())
		},
	}
	xo.AddFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&workloadDir, "workload-dir", "", "directory with the workload's bootstrap token ("+workloadTokenFile+") and the federation bundle ("+workloadBundleFile+"); defaults for --token-file and --root-bundle")
	f.StringVar(&dataDir, "data-dir", "", "directory where the sidecar keeps its last good configuration, certificate, key and trust bundle (0600 files), to serve from when it starts while no control plane answers (default WORKLOAD-DIR/state with --workload-dir, else none; an emptyDir in Kubernetes)")
	f.StringVar(&address, "address", "127.0.0.1", "the workload's IP address; the listeners only the app may use default to it when it is a loopback address, else to 127.0.0.1 (or ::1)")
	f.StringVar(&outbound, "outbound", "", "outbound HTTP proxy listener (default LOOPBACK:15001; see above)")
	f.StringVar(&inbound, "inbound", "", "bind the inbound mTLS listener here instead of the address the control plane gives")
	f.StringVar(&admin, "admin", "", "admin listener: /stats/prometheus, /config_dump, /endpoints, /ready (default LOOPBACK:15000)")
	f.StringVar(&ready, "ready", "", "listener serving GET /ready and /stats/prometheus alone, for probes and Prometheus from outside the workload (default none)")
	f.StringVar(&dns, "dns", "", "DNS listener for *.svc.clusterset.local, UDP and TCP (default LOOPBACK:15053; \"none\" disables)")
	f.StringVar(&dns6, "dns-ipv6", "", "a second DNS listener on IPv6 loopback, UDP and TCP, where a pod's capture rules deliver its IPv6 DNS queries ([::1]:15053); skipped when the host has no IPv6 (default none)")
	f.BoolVar(&dnsClusterSetIP, "dns-clusterset-ip", false, "DNS answers a service's ClusterSetIP when it has one (pods whose outbound traffic is captured), else the --service-ip address")
	f.StringVar(&svcIP, "service-ip", "", "IP for one listener per service port, which DNS answers (default LOOPBACK; \"none\" disables)")
	f.StringVar(&cluster, "cluster", "", "the cluster the workload runs in (required)")
	f.StringVar(&region, "region", "", "the workload's region (default: its cluster's)")
	f.StringVar(&zone, "zone", "", "the workload's zone (default: its cluster's)")
	f.StringVar(&namespace, "namespace", "", "the workload's namespace (required)")
	f.StringVar(&serviceAccount, "service-account", "default", "the workload's service account")
	f.StringVar(&workloadName, "workload", "", "the workload's name, as in its endpoints (selects its inbound side)")
	f.StringVar(&appPorts, "app-ports", "", "where the app listens per service port: PORTNAME=APPPORT[,...] (default: the service port)")
	f.StringVar(&labels, "labels", "", "the workload's labels, KEY=VALUE[,...], which a ResiliencePolicy's failoverPriority compares with endpoints' labels")
	f.StringVar(&nodeID, "node-id", "", "xDS node id (default sidecar~ADDRESS~WORKLOAD.NAMESPACE)")
	f.StringVar(&auditLog, "audit-log", "stdout", "where the authorization audit trail goes (a JSON line per denied request and AUDIT match): stdout, a FILE (rotated by size), or none")
	f.Int64Var(&auditMaxSize, "audit-log-max-size", 100, "with --audit-log FILE: rotate the file when it would pass this many MiB")
	f.IntVar(&auditMaxFiles, "audit-log-max-files", 5, "with --audit-log FILE: how many rotated files to keep (FILE.1 ... FILE.N)")
	f.StringVar(&accessLog, "access-log", "", "write an access log, a JSON line per request: a FILE (rotated as --audit-log is) or - for stderr; off by default, though a TelemetryPolicy can turn it on (to stderr without this flag)")
	f.StringVar(&accessLogFilter, "access-log-filter", "all", "with --access-log: which requests are logged, all or errors (5xx, gRPC errors, mesh-made failures)")
	f.StringVar(&otlpEndpoint, "otlp-endpoint", "", "send spans to this OTLP collector: HOST:PORT (plaintext) or http(s)://HOST:PORT; empty turns tracing off (trace headers pass through)")
	f.StringVar(&otlpProtocol, "otlp-protocol", "grpc", "OTLP transport: grpc or http")
	f.Float64Var(&traceSampling, "trace-sampling", 1, "percentage (0-100) of new traces sampled; a caller's sampled trace is always followed; a TelemetryPolicy's samplingPercent overrides it")
	f.BoolVar(&bindOutbound, "bind-outbound", false, "send connections to other sidecars and gateways from --address, so that they see the workload's own address (default: on when --address is a loopback address of its own, as in local mode, where an unbound connection would come from 127.0.0.1)")
	capture.addFlags(f)
	cmd.MarkFlagRequired("cluster")
	cmd.MarkFlagRequired("namespace")
	return cmd
}

// ownLoopback reports whether address is a loopback address of the
// workload's own (local mode gives each workload one, 127.0.N.M), not
// the host's shared 127.0.0.1 or ::1.
func ownLoopback(address string) bool {
	a, err := netip.ParseAddr(address)
	if err != nil {
		return false
	}
	a = a.Unmap()
	return a.IsLoopback() && a != netip.MustParseAddr("127.0.0.1") && a != netip.IPv6Loopback()
}

// loopbackFor returns the loopback address the app-only listeners of a
// workload on address default to: address itself when it is loopback, else
// 127.0.0.1, or ::1 for an IPv6 address.
func loopbackFor(address string) string {
	ip := net.ParseIP(address)
	switch {
	case ip.IsLoopback():
		return address
	case ip.To4() == nil:
		return "::1"
	}
	return "127.0.0.1"
}
