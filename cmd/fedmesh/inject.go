package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/controlplane/inject"
	"github.com/fedmesh/fedmesh/internal/portset"
)

// injectOptions are the flags that say what to inject, shared by
// `fedmesh inject` and `fedmesh webhook`.
type injectOptions struct {
	cfg inject.Config
}

func (o *injectOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.cfg.SidecarImage, "sidecar-image", "fedmesh:dev", "image of the sidecar (the fedmesh image)")
	f.StringVar(&o.cfg.InitImage, "init-image", "fedmesh-init:dev", "image of the capture init container (needs sh, and nft or iptables and ip6tables)")
	f.StringSliceVar(&o.cfg.StrictNamespaces, "strict-namespaces", nil, "namespaces whose pods take mTLS only (STRICT): no plaintext on any port; a pod there asking for plaintext is refused")
	f.StringVar(&o.cfg.OpaquePorts, "opaque-ports", portset.DefaultOpaque, "ports where sidecars detect no protocol (server-first protocols such as SMTP and MySQL), PORT or LO-HI, comma-separated, or none; a pod's fedmesh.io/opaque-ports replaces them")
	f.StringVar(&o.cfg.XDSAddress, "xds-address", inject.DefaultXDSAddress, "the control plane's xDS address, as sidecars reach it")
	f.StringVar(&o.cfg.TrustDomain, "trust-domain", "", "the federation's trust domain (required)")
	f.StringVar(&o.cfg.Cluster, "cluster", "", "the cluster the pods run in (required)")
	f.StringVar(&o.cfg.RootsConfigMap, "roots-configmap", inject.DefaultRootsConfigMap, "ConfigMap (in the pod's namespace) whose root.pem is the federation's root bundle")
	f.Int64Var(&o.cfg.ProxyUID, "proxy-uid", inject.DefaultProxyUID, "user the sidecar runs as; its traffic is not redirected")
	f.StringVar(&o.cfg.TokenAudience, "token-audience", inject.DefaultTokenAudience, "audience of the workload's projected ServiceAccount token")
	cmd.MarkFlagRequired("trust-domain")
	cmd.MarkFlagRequired("cluster")
}

func newInjectCmd() *cobra.Command {
	var o injectOptions
	var file, output string
	cmd := &cobra.Command{
		Use:   "inject",
		Short: "Add the fedmesh sidecar to Kubernetes manifests (offline)",
		Long: `Read Kubernetes manifests and write them with the fedmesh sidecar, its
iptables init container and its projected ServiceAccount token added to every
pod and pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
Job, CronJob). Other documents, and pods annotated fedmesh.io/inject=false,
are copied unchanged. Injecting twice changes nothing.`,
		Example: `  fedmesh inject --cluster east-1 --trust-domain fedmesh.example -f app.yaml | kubectl apply -f -
  fedmesh inject --cluster east-1 --trust-domain fedmesh.example -f - < app.yaml > app-injected.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := inject.New(o.cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			var r io.Reader = cmd.InOrStdin()
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				defer f.Close()
				r = f
			}
			var w io.Writer = cmd.OutOrStdout()
			if output != "" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			n, err := in.InjectYAML(r, w)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "fedmesh inject: %d pod(s) injected\n", n)
			return nil
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVarP(&file, "filename", "f", "", "manifest file to read, - for standard input (required)")
	cmd.Flags().StringVarP(&output, "output-file", "O", "", "write here instead of standard output")
	cmd.MarkFlagRequired("filename")
	return cmd
}
