package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/internal/identity"
)

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Federation root, cluster CAs and workload bootstrap tokens",
		Long: "The federation has one root CA (kept offline) and one intermediate CA per cluster.\n" +
			"A local-mode workload proves its identity to its control plane with a bootstrap token.",
	}
	cmd.AddCommand(newCAInitCmd(), newCAIssueClusterCmd(), newCAIssueOperatorCmd(), newCABootstrapTokenCmd(), newCAShowCmd(), newCARotateCmd())
	return cmd
}

// caUsage wraps err as a bad-usage error (exit code 2).
func caUsage(c *cobra.Command, format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format+"\nsee '%s --help'", append(args, c.CommandPath())...)}
}

// caRequired fails with a usage error naming the first empty flag.
func caRequired(c *cobra.Command, flags ...string) error {
	var missing []string
	for _, name := range flags {
		if f := c.Flags().Lookup(name); f != nil && f.Value.String() == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return caUsage(c, "missing required flag(s) %s", strings.Join(missing, ", "))
	}
	return nil
}

func caNoArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return caUsage(c, "unexpected argument %q", args[0])
	}
	return nil
}

func newCAInitCmd() *cobra.Command {
	var td, dir string
	cmd := &cobra.Command{
		Use:   "init --trust-domain TD --dir DIR",
		Short: "Create the federation root CA (root.crt, root.key 0600)",
		Args:  caNoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := caRequired(c, "trust-domain", "dir"); err != nil {
				return err
			}
			if _, err := spiffeid.TrustDomainFromString(td); err != nil {
				return caUsage(c, "--trust-domain %q: %v", td, err)
			}
			if err := ca.InitRoot(td, dir); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "created root CA for trust domain %s in %s; keep %s offline\n", td, dir, ca.RootKeyFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&td, "trust-domain", "", "the federation's SPIFFE trust domain, such as fedmesh.local")
	cmd.Flags().StringVar(&dir, "dir", "", "directory to create the root in")
	return cmd
}

func newCAIssueClusterCmd() *cobra.Command {
	var rootDir, cluster, dir string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "issue-cluster --root-dir DIR --cluster NAME --dir OUT",
		Short: "Sign an intermediate CA for one cluster (ca.crt, ca.key, bundle.crt, token.key)",
		Args:  caNoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := caRequired(c, "root-dir", "cluster", "dir"); err != nil {
				return err
			}
			if ttl < 0 {
				return caUsage(c, "--ttl %s is negative", ttl)
			}
			if err := ca.IssueClusterCA(rootDir, cluster, dir, ttl); err != nil {
				if errors.Is(err, identity.ErrBadID) {
					return caUsage(c, "--cluster %q: %v", cluster, err)
				}
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "issued cluster CA for %s in %s\n", cluster, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&rootDir, "root-dir", "", "directory of the federation root (from 'fedmesh ca init')")
	cmd.Flags().StringVar(&cluster, "cluster", "", "cluster name (DNS-1123 label)")
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the cluster CA to")
	cmd.Flags().DurationVar(&ttl, "ttl", ca.DefaultClusterCATTL, "validity of the cluster CA (capped at the root's)")
	return cmd
}

func newCAIssueOperatorCmd() *cobra.Command {
	var caDir, rootDir, name, out, output string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "issue-operator --name NAME (--ca-dir DIR | --root-dir DIR) [--out DIR]",
		Short: "Sign a short-lived operator certificate for the admin API (operator.crt, operator.key 0600, bundle.crt)",
		Long: "Signs a client certificate for spiffe://TD/fedmesh/operator/NAME with which the fedmesh CLI (token,\n" +
			"join, keys, members, status, debug) authenticates to a control plane's admin API. Signed by a\n" +
			"cluster CA (--ca-dir) it is accepted by that cluster's control plane only; signed by the root\n" +
			"(--root-dir) by every control plane of the federation. It is written to --out, by default the\n" +
			"operator directory the CLI reads (--operator-dir, $" + operatorDirEnv + ", ~/.config/fedmesh/operator),\n" +
			"replacing the previous certificate there.",
		Example: `  fedmesh ca issue-operator --ca-dir clusters/east-1/ca --name alice
  fedmesh ca issue-operator --root-dir root --name ci --ttl 1h --out /tmp/ci-operator`,
		Args: caNoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := caRequired(c, "name"); err != nil {
				return err
			}
			if (caDir == "") == (rootDir == "") {
				return caUsage(c, "name exactly one of --ca-dir (a cluster's operator) and --root-dir (a federation operator)")
			}
			if ttl < 0 || ttl > ca.MaxOperatorTTL {
				return caUsage(c, "--ttl %s must be positive and at most %s", ttl, ca.MaxOperatorTTL)
			}
			if output != "" && output != "json" && output != "yaml" {
				return caUsage(c, "unknown output format %q: want json or yaml", output)
			}
			if out == "" {
				dir, _, err := operatorCreds.operatorDir()
				if err != nil {
					return caUsage(c, "%v", err)
				}
				out = dir
			}
			is, err := ca.IssueOperatorFiles(caDir, rootDir, name, out, ttl)
			if err != nil {
				if errors.Is(err, identity.ErrBadID) {
					return caUsage(c, "--name %q: %v", name, err)
				}
				return err
			}
			scope := "every control plane of the federation"
			if caDir != "" {
				scope = "the control plane of cluster " + is.Chain[1].Subject.OrganizationalUnit[0]
			}
			info := struct {
				ID         string    `json:"id"`
				NotAfter   time.Time `json:"notAfter"`
				AcceptedBy string    `json:"acceptedBy"`
				Dir        string    `json:"dir"`
			}{is.ID.String(), is.Chain[0].NotAfter.UTC(), scope, out}
			return printOutput(c.OutOrStdout(), output, info, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "issued operator certificate %s, valid until %s, accepted by %s, in %s\n",
					info.ID, info.NotAfter.Format(time.RFC3339), info.AcceptedBy, info.Dir)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "operator name (DNS-1123 subdomain, such as alice)")
	f.StringVar(&caDir, "ca-dir", "", "cluster CA directory (from 'fedmesh ca issue-cluster'): only that cluster accepts the certificate")
	f.StringVar(&rootDir, "root-dir", "", "federation root directory (from 'fedmesh ca init'): every cluster accepts the certificate")
	f.StringVar(&out, "out", "", "directory to write to (default: the operator directory, see --operator-dir)")
	f.DurationVar(&ttl, "ttl", ca.DefaultOperatorTTL, "validity of the certificate (capped at the signing CA's)")
	f.StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

func newCABootstrapTokenCmd() *cobra.Command {
	var caDir, ns, sa, workload, out string
	var ttl time.Duration
	var printTok bool
	cmd := &cobra.Command{
		Use:   "bootstrap-token --ca-dir DIR --namespace NS --service-account SA --workload NAME --out DIR",
		Short: "Write a workload's bootstrap token (OUT/token, 0600)",
		Long: "Signs a token with which the workload's sidecar proves to the cluster's control plane\n" +
			"that it runs as spiffe://TD/ns/NS/sa/SA, and writes it into the workload's own directory.",
		Args: caNoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := caRequired(c, "ca-dir", "namespace", "service-account", "workload"); err != nil {
				return err
			}
			if out == "" && !printTok {
				return caUsage(c, "missing required flag --out (or --print)")
			}
			if ttl < 0 {
				return caUsage(c, "--ttl %s is negative", ttl)
			}
			auth, err := ca.LoadAuthority(caDir)
			if err != nil {
				return err
			}
			tok, err := auth.IssueBootstrapToken(ns, sa, workload, ttl)
			if err != nil {
				return caUsage(c, "%v", err)
			}
			if printTok {
				fmt.Fprintln(c.OutOrStdout(), tok)
			}
			if out != "" {
				if err := ca.WriteBootstrapToken(out, tok); err != nil {
					return err
				}
				fmt.Fprintf(c.ErrOrStderr(), "wrote bootstrap token for %s/%s (workload %s) to %s/%s\n", ns, sa, workload, out, ca.TokenFile)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca-dir", "", "cluster CA directory (from 'fedmesh ca issue-cluster')")
	f.StringVar(&ns, "namespace", "", "workload namespace")
	f.StringVar(&sa, "service-account", "", "workload service account")
	f.StringVar(&workload, "workload", "", "workload name")
	f.StringVar(&out, "out", "", "the workload's directory; the token is written to OUT/token")
	f.DurationVar(&ttl, "ttl", ca.DefaultBootstrapTokenTTL, "how long the token is accepted")
	f.BoolVar(&printTok, "print", false, "also print the token on stdout")
	return cmd
}

func newCAShowCmd() *cobra.Command {
	var dir, output string
	cmd := &cobra.Command{
		Use:   "show --dir DIR",
		Short: "Describe a root or cluster CA directory (never prints keys)",
		Args:  caNoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := caRequired(c, "dir"); err != nil {
				return err
			}
			if output != "" && output != "json" && output != "yaml" {
				return caUsage(c, "unknown output format %q: want json or yaml", output)
			}
			info, err := ca.Describe(dir)
			if err != nil {
				return err
			}
			return printOutput(c.OutOrStdout(), output, info, func(w io.Writer) error { return printCAInfo(w, info) })
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "root or cluster CA directory")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

func printCAInfo(w io.Writer, info *ca.Info) error {
	fmt.Fprintf(w, "kind:          %s\ntrust domain:  %s\n", info.Kind, info.TrustDomain)
	if info.Cluster != "" {
		fmt.Fprintf(w, "cluster:       %s\n", info.Cluster)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tSUBJECT\tNOT AFTER\tSHA-256")
	for _, c := range info.Certificates {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Role, c.Subject, c.NotAfter.Format(time.RFC3339), c.SHA256[:16]+"…")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tMODE")
	for _, f := range info.Files {
		fmt.Fprintf(tw, "%s\t%s\n", f.Name, f.Mode)
	}
	return tw.Flush()
}
