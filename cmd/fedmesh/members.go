package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/federation/membership"
)

func newMembersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the federation's members, or forget one that failed for good",
		Long: "Show the control planes of the federation as gossip sees them, and forget one that will not come back:\n" +
			"  fedmesh members list             # every member and its state\n" +
			"  fedmesh members forget west-1    # a failed member, removed everywhere\n" +
			"A member that fails stays in every view, fenced, so that its traffic returns with it; one that\n" +
			"leaves on purpose is removed at once. Forget a failed member that is gone for good.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newMembersListCmd(), newMembersForgetCmd())
	return cmd
}

func newMembersListCmd() *cobra.Command {
	var admin, output string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the members as this control plane sees them",
		Example: "  fedmesh members list\n  fedmesh members list -o json",
		Args:    fedUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			resp, err := c.Members(cmd.Context())
			if err != nil {
				return err
			}
			return printOutput(cmd.OutOrStdout(), output, resp, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATUS\tREGION\tZONE\tADDRESS")
				for _, m := range resp.Members {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.Status, m.Region, m.Zone, m.Addr)
				}
				return tw.Flush()
			})
		},
	}
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

func newMembersForgetCmd() *cobra.Command {
	var admin string
	cmd := &cobra.Command{
		Use:   "forget NAME",
		Short: "Forget a failed member for good (serf force-leave)",
		Long: "Forget a member that failed and will not come back: every member marks it left, and every control plane\n" +
			"removes its exports and the imports it persisted of it. An alive member cannot be forgotten. A cluster whose control\n" +
			"plane runs several replicas (members CLUSTER.REPLICA) is forgotten by its name once none of them is alive.",
		Example: "  fedmesh members forget west-1\n  fedmesh members forget west-1 --admin https://127.0.0.11:15014",
		Args:    fedExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, ok := membership.SplitMemberName(args[0]); !ok {
				return &exitError{code: 2, err: fmt.Errorf("member %q is neither a cluster name (a DNS-1123 label) nor CLUSTER.REPLICA", args[0])}
			}
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			resp, err := c.Forget(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "forgot %s: every member marks it left, its exports and imports go\n", resp.Name)
			return err
		},
	}
	addFedAdminFlag(cmd, &admin)
	return cmd
}
