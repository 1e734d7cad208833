package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/fedmesh/fedmesh/controlplane/kube"
)

func newJoinCmd() *cobra.Command {
	var admin, tokenFile, output string
	var kf, from kubeFlags
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "join [TOKEN]",
		Short: "Join this cluster's control plane to a federation",
		Long: "Join the running control plane at --admin to the federation that issued TOKEN ('fedmesh token create').\n" +
			"The control plane checks the token against its own federation root before it touches gossip;\n" +
			"an expired, altered or foreign token joins nothing. One join makes the full mesh.\n\n" +
			"Between clusters in Kubernetes, --from-context (or --from-kubeconfig) names a member of the federation\n" +
			"and --context (or --kubeconfig) the cluster that joins: the member's current join token is copied\n" +
			"through the API servers (Secret fedmesh-join-token there, Secret fedmesh-join here) and the joining\n" +
			"cluster's control plane joins with it; the command waits for it to say so (--wait).",
		Example: `  fedmesh join fmjt1.eyJw...
  fedmesh join --token-file join.token --admin https://127.0.0.13:15014
  fedmesh token create --admin https://127.0.0.11:15014 | fedmesh join --token-file - --admin https://127.0.0.13:15014
  fedmesh join --context kind-west-1 --from-context kind-east-1`,
		Args: fedUsageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from.kubeconfig != "" || from.context != "" {
				if len(args) > 0 || tokenFile != "" {
					return &exitError{code: 2, err: errors.New("--from-context copies the token itself: give no token")}
				}
				return kubeJoin(cmd, &kf, &from, wait, output)
			}
			token, err := joinToken(cmd.InOrStdin(), args, tokenFile)
			if err != nil {
				return err
			}
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			resp, err := c.Join(cmd.Context(), token)
			if err != nil {
				return err
			}
			return printOutput(cmd.OutOrStdout(), output, resp, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "joined the federation (trust domain %s) through %s: %d seed(s) answered\n",
					resp.TrustDomain, resp.Issuer, resp.Contacted)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "read the token from this file ('-' for standard input)")
	kf.add(cmd)
	cmd.Flags().StringVar(&from.kubeconfig, "from-kubeconfig", "", "Kubernetes: kubeconfig of the member to join (default: --kubeconfig's)")
	cmd.Flags().StringVar(&from.context, "from-context", "", "Kubernetes: kubeconfig context of the member to join")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "Kubernetes: how long to wait for the joining control plane to join (0: do not wait)")
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// kubeJoin copies the join token of the cluster from names into the
// cluster kf names and waits for its control plane to join.
func kubeJoin(cmd *cobra.Command, kf, from *kubeFlags, wait time.Duration, output string) error {
	if from.kubeconfig == "" {
		from.kubeconfig = kf.kubeconfig
	}
	fromCfg, err := from.restConfig()
	if err != nil {
		return fmt.Errorf("--from-context: %w", err)
	}
	toCfg, err := kf.restConfig()
	if err != nil {
		return err
	}
	fromKube, err := kubernetes.NewForConfig(fromCfg)
	if err != nil {
		return err
	}
	toKube, err := kubernetes.NewForConfig(toCfg)
	if err != nil {
		return err
	}
	out, err := kube.CopyJoinToken(cmd.Context(), fromKube, toKube, kf.namespace, wait)
	if err != nil {
		return err
	}
	return printOutput(cmd.OutOrStdout(), output, out, func(w io.Writer) error {
		if wait <= 0 {
			_, err := fmt.Fprintf(w, "copied the join token of %s to Secret %s/%s; the control plane joins with it\n", out.Issuer, kf.namespace, out.Secret)
			return err
		}
		for _, m := range slices.Sorted(maps.Keys(out.Statuses)) {
			st := out.Statuses[m]
			if st.Joined {
				if _, err := fmt.Fprintf(w, "%s joined the federation through %s: %d seed(s) answered\n", m, st.Issuer, st.Contacted); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// maxTokenFile bounds what --token-file reads; tokens are at most 32 KiB.
const maxTokenFile = 64 << 10

// joinToken takes the token from the argument or from --token-file,
// exactly one of them.
func joinToken(stdin io.Reader, args []string, file string) (string, error) {
	switch {
	case len(args) == 1 && file != "":
		return "", &exitError{code: 2, err: errors.New("give the token as an argument or with --token-file, not both")}
	case len(args) == 1:
		return strings.TrimSpace(args[0]), nil
	case file == "":
		return "", &exitError{code: 2, err: errors.New("no token: give it as an argument or with --token-file")}
	}
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token file %s is larger than %d bytes: not a join token", file, maxTokenFile)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return tok, nil
}
