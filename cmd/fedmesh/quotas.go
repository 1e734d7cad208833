package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/controlplane"
)

func newGetQuotasCmd() *cobra.Command {
	var admin, output, namespace string
	cmd := &cobra.Command{
		Use:     "quotas",
		Aliases: []string{"quota"},
		Short:   "List the clusterset quotas, their shares per cluster and sidecar, and recent demand",
		Long: "List the clusterset quotas of the control plane's RateLimitPolicies: for each quota, every\n" +
			"cluster taking part with its recent demand (admitted and refused requests per interval) and\n" +
			"its share, as this control plane splits it (docs/quota.md). -o wide adds this cluster's\n" +
			"sidecars and their shares; -o json|yaml prints the whole report.\n\n" +
			"Exit code: 0 listed (even if none), 1 the control plane could not be asked, 2 bad usage.",
		Example: `  fedmesh get quotas --admin https://127.0.0.11:15014
  fedmesh get quotas -n demo -o wide
  fedmesh get quotas -o yaml`,
		Args: fedUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "", "wide", "json", "yaml":
			default:
				return &exitError{code: 2, err: fmt.Errorf("unknown output format %q: want wide, json or yaml", output)}
			}
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), adminPageTimeout)
			defer cancel()
			var page controlplane.QuotaPage
			if err := c.Get(ctx, controlplane.QuotaPath, &page); err != nil {
				return err
			}
			qs := page.Quotas[:0:0]
			for _, q := range page.Quotas {
				if namespace == "" || strings.HasPrefix(q.Quota, namespace+"/") {
					qs = append(qs, q)
				}
			}
			page.Quotas = qs
			if output == "wide" || output == "" {
				return printQuotas(cmd.OutOrStdout(), page, output == "wide")
			}
			return printOutput(cmd.OutOrStdout(), output, page, nil)
		},
	}
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide, json or yaml (default: a table)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "list only this namespace's quotas (default: every namespace)")
	return cmd
}

// printQuotas renders the quota report as kubectl-like tables: one row
// per quota and cluster, and with wide one row per quota and sidecar of
// this cluster.
func printQuotas(w io.Writer, page controlplane.QuotaPage, wide bool) error {
	if len(page.Quotas) == 0 {
		fmt.Fprintf(w, "No clusterset quotas in force in cluster %s.\n", page.Cluster)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUOTA\tLIMIT\tCLUSTER\tADMITTED\tREFUSED\tSHARE\tSTATE")
	for _, q := range page.Quotas {
		limit := fmt.Sprintf("%d/%s", q.Requests, shortDuration(time.Duration(q.Interval)))
		for _, c := range q.Clusters {
			var state []string
			if c.Local {
				state = append(state, "local")
				if q.Minority {
					state = append(state, "minority (share frozen)")
				}
			}
			if c.Fenced {
				state = append(state, "fenced")
			}
			for _, m := range q.Mismatch {
				if m == c.Cluster {
					state = append(state, "defines the quota differently")
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", q.Quota, limit, c.Cluster, c.Admitted, c.Refused, c.Share, orDash(strings.Join(state, ", ")))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !wide {
		return nil
	}
	fmt.Fprintf(w, "\nSidecars of cluster %s (demand and share per quota interval):\n", page.Cluster)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUOTA\tSIDECAR\tADMITTED\tREFUSED\tSHARE")
	for _, q := range page.Quotas {
		for _, s := range q.Sidecars {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", q.Quota, s.Node, s.Admitted, s.Refused, s.Share)
		}
	}
	return tw.Flush()
}

// shortDuration writes 1m for 1m0s and 1h for 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
