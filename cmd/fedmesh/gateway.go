package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/fedmesh/fedmesh/gateway"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
)

// xdsClientOptions are the flags every xDS client command (gateway,
// sidecar) shares: where the control plane is and how to trust it, and the
// bootstrap token that proves this node's identity.
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
	f.StringVar(&o.tokenFile, "token-file", "", "file holding this node's bootstrap token (from 'fedmesh ca bootstrap-token')")
	f.BoolVar(&o.insecure, "insecure-xds", false, "talk to the control plane in plaintext (tests only)")
}

// credentials returns the transport credentials that verify the control
// plane of cluster as spiffe://TD/fedmesh/cluster/CLUSTER.
func (o *xdsClientOptions) credentials(cluster string) (credentials.TransportCredentials, error) {
	if o.insecure {
		return nil, nil
	}
	if o.trustDomain == "" || o.rootBundle == "" {
		return nil, &exitError{code: 2, err: errors.New("--trust-domain and --root-bundle are required (or --insecure-xds)")}
	}
	td, err := spiffeid.TrustDomainFromString(o.trustDomain)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--trust-domain: %w", err)}
	}
	want, err := identity.ControlPlaneID(td, cluster)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	pem, err := os.ReadFile(o.rootBundle)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--root-bundle: %w", err)}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, &exitError{code: 2, err: fmt.Errorf("--root-bundle %s: no PEM certificates", o.rootBundle)}
	}
	return credentials.NewTLS(xdsclient.ServerTLSConfig(roots, want, nil)), nil
}

// token reads the bootstrap token, "" when no file is given.
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
		xo                    xdsClientOptions
		cluster, region, zone string
		listen, admin         string
		cfg                   gateway.Config
		drainTimeout          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run a cluster's east-west gateway (mTLS passthrough by SNI)",
		Long: `Run the east-west gateway: accept TLS from sidecars of other clusters, route it
by server name to a healthy local endpoint of an exported service, and splice
bytes without terminating TLS. Configuration comes from the control plane over
xDS. SIGTERM drains: stop accepting, let open connections finish.`,
		Example: `  fedmesh gateway --cluster east-1 --listen 127.0.0.11:15443 --admin 127.0.0.11:15021 \
    --xds-address 127.0.0.11:15010 --trust-domain fedmesh.local --root-bundle ca/root.crt --token-file gw/token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := commandLogger(cmd)
			if err != nil {
				return err
			}
			creds, err := xo.credentials(cluster)
			if err != nil {
				return err
			}
			tok, err := xo.token()
			if err != nil {
				return err
			}
			reg := newRegistry()
			cfg.Cluster, cfg.Logger = cluster, log
			gw, err := gateway.New(cfg, reg)
			if err != nil {
				return err
			}
			meta, _ := structpb.NewStruct(map[string]any{
				naming.MetaCluster:        cluster,
				naming.MetaRole:           naming.RoleGateway,
				naming.MetaNamespace:      "fedmesh-system",
				naming.MetaServiceAccount: "gateway",
				naming.MetaWorkload:       "gateway",
				naming.MetaToken:          tok,
			})
			xc, err := xdsclient.New(xdsclient.Config{
				Target:      xo.xdsAddress,
				Credentials: creds,
				Insecure:    xo.insecure,
				Node: &corev3.Node{
					Id:       naming.RoleGateway + "~" + listen + "~" + cluster,
					Cluster:  cluster,
					Locality: &corev3.Locality{Region: region, Zone: zone, SubZone: cluster},
					Metadata: meta,
				},
				Types:   gateway.XDSTypes,
				Handler: gateway.NewXDSHandler(gw),
				Logger:  log,
			}, reg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			adminLn, err := net.Listen("tcp", admin)
			if err != nil {
				ln.Close()
				return err
			}
			hs := &http.Server{Handler: gw.AdminHandler(reg, func() any { return xc.Status() }), ReadHeaderTimeout: 10 * time.Second}
			log.Info("gateway started", "listen", ln.Addr().String(), "admin", adminLn.Addr().String(), "xds", xo.xdsAddress)

			ctx := cmd.Context()
			g, gctx := errgroup.WithContext(ctx)
			xctx, stopXDS := context.WithCancel(context.Background())
			defer stopXDS()
			// Run returns nil once stopped; an error means the gateway
			// can never get routes, so it ends the command.
			g.Go(func() error { return xc.Run(xctx) })
			g.Go(func() error { return gw.Serve(ln) })
			g.Go(func() error {
				if err := hs.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil
			})
			g.Go(func() error {
				<-gctx.Done()
				log.Info("draining", "timeout", drainTimeout)
				dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
				defer cancel()
				err := gw.Shutdown(dctx)
				stopXDS()
				hs.Close()
				if errors.Is(err, context.DeadlineExceeded) {
					log.Warn("drain deadline passed")
					return nil
				}
				return err
			})
			err = g.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
	xo.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "this cluster's name (required)")
	f.StringVar(&region, "region", "", "this cluster's region")
	f.StringVar(&zone, "zone", "", "the gateway's zone")
	f.StringVar(&listen, "listen", "127.0.0.1:15443", "address for mTLS passthrough traffic")
	f.StringVar(&admin, "admin", "127.0.0.1:15021", "admin address (/stats/prometheus, /ready, /debug/routes)")
	f.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", gateway.DefaultHandshakeTimeout, "time allowed to read the ClientHello")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", gateway.DefaultIdleTimeout, "close connections idle this long")
	f.IntVar(&cfg.MaxConns, "max-connections", gateway.DefaultMaxConns, "most connections open at once")
	f.IntVar(&cfg.MaxConnsPerSource, "max-connections-per-source", gateway.DefaultMaxConnsPerSource, "most connections open at once from one source address")
	f.DurationVar(&drainTimeout, "drain-timeout", 10*time.Second, "how long SIGTERM waits for open connections")
	cmd.MarkFlagRequired("cluster")
	return cmd
}
