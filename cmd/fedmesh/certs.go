package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/credentials"

	"github.com/fedmesh/fedmesh/cmd/internal/proxycmd"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/svidfiles"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
)

// newCertsCmd wires `fedmesh certs`: the certificate files and bootstrap
// of a proxyless gRPC workload (internal/svidfiles).
func newCertsCmd() *cobra.Command {
	var (
		xo                                        proxycmd.XDSClientOptions
		cluster, region, zone                     string
		namespace, serviceAccount, workload, node string
		dir, bootstrap                            string
		watch                                     bool
	)
	cmd := &cobra.Command{
		Use:   "certs --cluster C --namespace NS --service-account SA --workload W --dir DIR",
		Short: "Write a proxyless gRPC workload's SVID files and grpc-go bootstrap, and keep them renewed",
		Long: `Connects to the cluster's control plane as a proxyless node, receives the
workload's SVID and the federation's roots over SDS, and writes DIR/cert.pem,
DIR/key.pem (0600) and DIR/ca.pem. With --bootstrap it also writes the grpc-go
bootstrap (GRPC_XDS_BOOTSTRAP) whose file_watcher certificate provider reads
them. Without --watch it exits after the first write; with --watch it keeps
writing each renewal until stopped.`,
		Example: `  fedmesh certs --cluster east-1 --namespace demo --service-account echo --workload echo-grpc \
    --xds-address 127.0.0.11:15010 --trust-domain fedmesh.local --root-bundle run/east-1/echo-grpc/bundle.crt \
    --token-file run/east-1/echo-grpc/token \
    --dir run/east-1/echo-grpc/certs --bootstrap run/east-1/echo-grpc/bootstrap.json --watch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := commandLogger(cmd)
			if err != nil {
				return err
			}
			if dir == "" {
				return &exitError{code: 2, err: errors.New("--dir is required")}
			}
			roots, cpID, err := xo.ControlPlaneTrust(cluster)
			if err != nil {
				return err
			}
			tok, err := xo.Token()
			if err != nil {
				return err
			}
			if node == "" {
				node = naming.RoleProxyless + "~" + workload + "." + namespace
			}
			n := xds.Node{ID: node, Role: naming.RoleProxyless, Cluster: cluster, Namespace: namespace,
				ServiceAccount: serviceAccount, Workload: workload, Token: tok}
			pn := &corev3.Node{Id: node, Metadata: xds.NodeMetadata(n),
				Locality: &corev3.Locality{Region: region, Zone: zone, SubZone: cluster}}
			xcfg := xdsclient.Config{Target: xo.Address, Node: pn, Logger: log, Insecure: xo.Insecure}
			if !xo.Insecure {
				xcfg.Credentials = credentials.NewTLS(xdsclient.ServerTLSConfig(roots, cpID, nil))
			}
			w, err := svidfiles.New(svidfiles.Config{Dir: dir, XDS: xcfg, Logger: log}, newRegistry())
			if err != nil {
				return err
			}
			if bootstrap != "" {
				meta := map[string]string{}
				for k, v := range xds.NodeMetadata(n).GetFields() {
					meta[k] = v.GetStringValue()
				}
				b, err := svidfiles.Bootstrap(svidfiles.BootstrapConfig{
					ServerURI: xo.Address, NodeID: node, Dir: dir, Metadata: meta,
					Locality: map[string]string{"region": region, "zone": zone, "sub_zone": cluster},
				})
				if err != nil {
					return err
				}
				if err := os.MkdirAll(filepath.Dir(bootstrap), 0o700); err != nil {
					return err
				}
				// It holds the bootstrap token: readable by the workload only.
				if err := os.WriteFile(bootstrap, b, 0o600); err != nil {
					return fmt.Errorf("--bootstrap: %w", err)
				}
			}
			ctx := cmd.Context()
			if !watch {
				var cancel func()
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				go func() {
					select {
					case <-w.Ready():
						cancel()
					case <-ctx.Done():
					}
				}()
				if err := w.Run(ctx); err != nil {
					return err
				}
				select {
				case <-w.Ready():
					serial, notAfter := w.Current()
					fmt.Fprintf(cmd.ErrOrStderr(), "wrote certificate %s (valid until %s) to %s\n", serial, notAfter.Format("2006-01-02T15:04:05Z07:00"), dir)
					return nil
				default:
					return errors.New("stopped before a certificate was written")
				}
			}
			return w.Run(ctx)
		},
	}
	xo.AddFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "this cluster's name (required)")
	f.StringVar(&region, "region", "", "the workload's region")
	f.StringVar(&zone, "zone", "", "the workload's zone")
	f.StringVar(&namespace, "namespace", "", "workload namespace (required)")
	f.StringVar(&serviceAccount, "service-account", "default", "workload service account")
	f.StringVar(&workload, "workload", "", "workload name, as its endpoints in the catalog name it (required)")
	f.StringVar(&node, "node-id", "", "xDS node id (default proxyless~WORKLOAD.NAMESPACE)")
	f.StringVar(&dir, "dir", "", "directory for cert.pem, key.pem and ca.pem (required)")
	f.StringVar(&bootstrap, "bootstrap", "", "also write the grpc-go bootstrap JSON here")
	f.BoolVar(&watch, "watch", false, "keep running and write every renewal")
	cmd.MarkFlagRequired("cluster")
	cmd.MarkFlagRequired("namespace")
	cmd.MarkFlagRequired("workload")
	return cmd
}
