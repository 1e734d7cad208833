package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create join tokens for new clusters",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newTokenCreateCmd())
	return cmd
}

func newTokenCreateCmd() *cobra.Command {
	var admin, output string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Print a join token from a running control plane",
		Long: "Ask a running control plane of the federation for a join token. The token carries the gossip key,\n" +
			"the federation's root CA bundle and seed addresses, is signed by the control plane and expires\n" +
			"after --ttl. It is a secret: hand it to 'fedmesh join' on the new cluster only.",
		Example: `  fedmesh token create --ttl 1h
  fedmesh token create --admin https://127.0.0.11:15014 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl <= 0 {
				return &exitError{code: 2, err: fmt.Errorf("--ttl %s must be positive", ttl)}
			}
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			resp, err := c.CreateToken(cmd.Context(), ttl)
			if err != nil {
				return err
			}
			return printOutput(cmd.OutOrStdout(), output, resp, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, resp.Token)
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: the token alone)")
	return cmd
}

// fedExactArgs is cobra.ExactArgs with the bad-usage exit code.
func fedExactArgs(n int) cobra.PositionalArgs { return fedUsageArgs(cobra.ExactArgs(n)) }

// fedUsageArgs turns an argument check's error into a usage error (exit
// code 2).
func fedUsageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("%w\nsee '%s --help'", err, cmd.CommandPath())}
		}
		return nil
	}
}
