package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/federation/membership"
)

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the federation's gossip keyring",
		Long: "Rotate the gossip encryption key of the whole federation through a running control plane:\n" +
			"  fedmesh keys generate            # a new random key\n" +
			"  fedmesh keys install NEW_KEY     # every member can now read NEW_KEY\n" +
			"  fedmesh keys use NEW_KEY         # every member now writes with NEW_KEY\n" +
			"  fedmesh keys remove OLD_KEY      # OLD_KEY no longer opens the federation",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newKeysListCmd(), newKeysGenerateCmd())
	for _, op := range []struct{ name, short string }{
		{"install", "Add a key to every member's keyring"},
		{"use", "Make an installed key every member's primary key"},
		{"remove", "Remove a key from every member's keyring"},
	} {
		cmd.AddCommand(newKeysOpCmd(op.name, op.short))
	}
	return cmd
}

func newKeysListCmd() *cobra.Command {
	var admin, output string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the keys of every member",
		Example: "  fedmesh keys list\n  fedmesh keys list -o yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			resp, err := c.ListKeys(cmd.Context())
			if err != nil {
				printKeyFailures(cmd.ErrOrStderr(), resp)
				return err
			}
			return printOutput(cmd.OutOrStdout(), output, resp, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KEY\tMEMBERS\tPRIMARY ON")
				keys := make([]string, 0, len(resp.Keys))
				for k := range resp.Keys {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				for _, k := range keys {
					fmt.Fprintf(tw, "%s\t%d/%d\t%d\n", k, resp.Keys[k], resp.NumNodes, resp.PrimaryKeys[k])
				}
				return tw.Flush()
			})
		},
	}
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

func newKeysOpCmd(op, short string) *cobra.Command {
	var admin, output string
	cmd := &cobra.Command{
		Use:     op + " KEY",
		Short:   short,
		Example: "  fedmesh keys " + op + " 'bWFkZS11cC1rZXktZm9yLXRoZS1leGFtcGxlISE='",
		Args:    fedExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := membership.ParseKey(args[0]); err != nil {
				return &exitError{code: 2, err: err}
			}
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			resp, err := c.KeyOp(cmd.Context(), op, args[0])
			if err != nil {
				printKeyFailures(cmd.ErrOrStderr(), resp)
				return err
			}
			return printOutput(cmd.OutOrStdout(), output, resp, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s: done on %d/%d members\n", op, resp.NumResp-resp.NumErr, resp.NumNodes)
				return err
			})
		},
	}
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

func newKeysGenerateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "generate",
		Short: "Print a new random 32-byte gossip key (base64)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), membership.EncodeKey(membership.NewKey()))
			return err
		},
	}
}

// printKeyFailures lists the members that failed a key operation.
func printKeyFailures(w io.Writer, resp adminapi.KeyResponse) {
	names := make([]string, 0, len(resp.Messages))
	for n := range resp.Messages {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %s: %s\n", n, resp.Messages[n])
	}
}
