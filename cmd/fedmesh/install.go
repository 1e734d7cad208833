package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fedmesh/fedmesh/controlplane/install"
	"github.com/fedmesh/fedmesh/deploy"
)

// kubeFlags are kubectl's flags for which cluster to talk to.
type kubeFlags struct {
	kubeconfig, context, namespace string
}

func (k *kubeFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&k.context, "context", "", "the kubeconfig context to use (default its current context)")
	f.StringVarP(&k.namespace, "namespace", "n", install.DefaultNamespace, "the namespace fedmesh runs in")
}

// restConfig loads the kubeconfig as kubectl does.
func (k *kubeFlags) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}

func (k *kubeFlags) client() (*install.Client, error) {
	cfg, err := k.restConfig()
	if err != nil {
		return nil, err
	}
	return install.NewClient(cfg)
}

func newInstallCmd() *cobra.Command {
	var (
		kf      kubeFlags
		o       install.Options
		wait    bool
		timeout time.Duration
		certs   install.CertOptions
	)
	cmd := &cobra.Command{
		Use:   "install --cluster NAME --region REGION --trust-domain TD",
		Short: "Install fedmesh into a Kubernetes cluster (server-side apply of the embedded manifests)",
		Long: "Apply deploy/base (CRDs, RBAC, control plane, gateway, webhook), embedded in this binary, by server-side\n" +
			"apply with the field manager \"fedmesh\", with the cluster's identity in ConfigMap fedmesh-cluster, then wait\n" +
			"until the CRDs are Established and the control plane, gateway and webhook are ready. Running it again changes\n" +
			"nothing that is already so. The Secrets the pods need are made when absent: the cluster's CA from the\n" +
			"federation root in --root-dir ('fedmesh ca init'), and the webhook's serving certificate, whose CA goes\n" +
			"into the webhook configuration's caBundle; an existing Secret is never changed.",
		Example: "  fedmesh install --cluster east-1 --region us-east --zone a --trust-domain fedmesh.local --root-dir ca/root\n" +
			"  fedmesh install --kubeconfig east.yaml --context east --cluster east-1 --region us-east --trust-domain fedmesh.local --wait=false",
		Args: fedUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Namespace = kf.namespace
			objs, err := install.Render(deploy.Base, o)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			c, err := kf.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if _, err := c.Apply(cmd.Context(), objs, timeout, out); err != nil {
				return err
			}
			certs.Namespace, certs.Cluster = kf.namespace, o.Cluster
			if _, err := c.EnsureCerts(cmd.Context(), certs, out); err != nil {
				return err
			}
			if wait {
				if err := c.WaitWorkloads(cmd.Context(), objs, timeout, out); err != nil {
					return fmt.Errorf("%w\n'fedmesh check' says what is missing", err)
				}
			}
			_, err = fmt.Fprintf(out, "fedmesh installed in cluster %s (namespace %s)\n", o.Cluster, kf.namespace)
			return err
		},
	}
	kf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Cluster, "cluster", "", "this cluster's name in the federation (required)")
	f.StringVar(&o.Region, "region", "", "this cluster's region (required)")
	f.StringVar(&o.Zone, "zone", "", "this cluster's zone")
	f.StringVar(&o.TrustDomain, "trust-domain", "", "the federation's SPIFFE trust domain, such as fedmesh.local (required)")
	f.StringVar(&o.GatewayAddress, "gateway-address", "", "host:port where peers reach this cluster's gateway (default: the manifests' placeholder)")
	f.StringVar(&o.Image, "image", "", "the fedmesh image (default fedmesh:dev, as the manifests have it)")
	f.StringVar(&o.InitImage, "init-image", "", "the fedmesh-init image (default fedmesh-init:dev)")
	f.StringVar(&certs.RootDir, "root-dir", "", "the federation root ('fedmesh ca init'): issue the cluster's CA Secret from it when absent")
	f.DurationVar(&certs.CATTL, "ca-ttl", 0, "lifetime of a cluster CA issued with --root-dir (default 1 year, never past the root)")
	f.BoolVar(&wait, "wait", true, "wait until the control plane, gateway and webhook are ready")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for CRDs and for readiness")
	return cmd
}

// kindsRender renders the manifests for their kinds and names only:
// uninstall and check find the objects by label and name, whatever
// identity they were installed with.
func kindsRender(namespace string) ([]*unstructured.Unstructured, error) {
	return install.Render(deploy.Base, install.Options{Cluster: "uninstall", Region: "uninstall", TrustDomain: "uninstall", Namespace: namespace})
}

func newUninstallCmd() *cobra.Command {
	var (
		kf kubeFlags
		o  install.UninstallOptions
	)
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what 'fedmesh install' installed",
		Long: "Delete every object labelled app.kubernetes.io/managed-by=fedmesh of the kinds fedmesh installs, in the\n" +
			"reverse order of installation, the namespace (and what is in it, such as the CA Secret) included. CRDs stay\n" +
			"unless --crds is given: deleting a CRD deletes every ServiceExport, ServiceImport, route and policy of it in\n" +
			"every namespace.",
		Example: "  fedmesh uninstall\n  fedmesh uninstall --crds",
		Args:    fedUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := kindsRender(kf.namespace)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			c, err := kf.client()
			if err != nil {
				return err
			}
			done, err := c.Uninstall(cmd.Context(), objs, o, cmd.OutOrStdout())
			if err != nil {
				return fmt.Errorf("%w\nthe API server goes on deleting what was asked; run 'fedmesh uninstall' again to see what is left", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "fedmesh uninstalled: %d objects deleted\n", len(done))
			return err
		},
	}
	kf.add(cmd)
	cmd.Flags().BoolVar(&o.CRDs, "crds", false, "also delete the CRDs, and with them every object of those kinds")
	cmd.Flags().BoolVar(&o.Wait, "wait", true, "wait until the deleted objects are gone (a namespace is left terminating)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 2*time.Minute, "how long to wait")
	return cmd
}

func newCheckCmd() *cobra.Command {
	var (
		kf          kubeFlags
		pre         bool
		admin, outp string
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a cluster before or after 'fedmesh install'",
		Long: "Run the pre-install checks (--pre: API server version, your permissions to install) or the post-install\n" +
			"ones (CRDs established, the control plane's RBAC, the control plane ready, the webhook configured and\n" +
			"served, the federation's members through the admin API when --admin is given, certificate expiry) and\n" +
			"print a pass/fail list with a hint for each failure. Exit code 1 when any check fails.",
		Example: "  fedmesh check --pre\n  fedmesh check -o json\n  fedmesh check --admin https://127.0.0.1:15014",
		Args:    fedUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if outp != "" && outp != "json" && outp != "yaml" {
				return &exitError{code: 2, err: fmt.Errorf("unknown output format %q: want json or yaml", outp)}
			}
			objs, err := kindsRender(kf.namespace)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			cfg := install.CheckConfig{Pre: pre, Namespace: kf.namespace}
			if admin != "" {
				ac, err := fedAdminClient(admin)
				if err != nil {
					return err
				}
				cfg.Members = func(ctx context.Context) ([]install.Member, error) {
					resp, err := ac.Members(ctx)
					if err != nil {
						return nil, err
					}
					var ms []install.Member
					for _, m := range resp.Members {
						ms = append(ms, install.Member{Name: m.Name, Status: m.Status})
					}
					return ms, nil
				}
			}
			c, err := kf.client()
			if err != nil {
				return err
			}
			rep, err := c.Run(cmd.Context(), objs, cfg)
			if err != nil {
				return err
			}
			if err := printOutput(cmd.OutOrStdout(), outp, rep, rep.WriteText); err != nil {
				return err
			}
			if rep.Failed() {
				return &exitError{code: 1, err: fmt.Errorf("%s checks failed", rep.Phase), quiet: true}
			}
			return nil
		},
	}
	kf.add(cmd)
	cmd.Flags().BoolVar(&pre, "pre", false, "run the pre-install checks")
	cmd.Flags().StringVar(&admin, "admin", "", "the control plane's admin URL, to check the federation's members (with an operator certificate)")
	cmd.Flags().StringVarP(&outp, "output", "o", "", "output format: json or yaml")
	return cmd
}
