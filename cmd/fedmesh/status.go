package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/federation"
)

func newStatusCmd() *cobra.Command {
	var admin, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the federation as one control plane sees it: members, fencing, conflicts",
		Long: "Show the federation as one control plane sees it: every member with its gossip state, region and zone,\n" +
			"RTT, catalog revision and import lag; the fenced peers with why; and the exports in conflict.",
		Example: `  fedmesh status --admin https://127.0.0.11:15014
  fedmesh status --admin https://127.0.0.11:15014 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), adminPageTimeout)
			defer cancel()
			var st federation.Status
			if err := c.Get(ctx, federation.StatusPath, &st); err != nil {
				return err
			}
			return printOutput(cmd.OutOrStdout(), output, st, func(w io.Writer) error { return printStatus(w, st) })
		},
	}
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: tables)")
	return cmd
}

// printStatus renders the status as kubectl-like tables.
func printStatus(w io.Writer, st federation.Status) error {
	fmt.Fprintf(w, "Cluster %s: view revision %d, %d services, hash %.12s\n\n", st.Cluster, st.ViewRevision, st.Services, st.ViewHash)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSTATE\tREGION\tZONE\tRTT\tCONNECTED\tREVISION\tLAG\tEXPORTS\tFENCED")
	for _, m := range st.Members {
		name := m.Name
		if m.Local {
			name += " (local)"
		}
		fenced := "no"
		if m.Fenced {
			fenced = "yes"
		}
		lag := "-"
		if !m.Local && m.ImportLag > 0 {
			lag = roundDuration(time.Duration(m.ImportLag)).String()
		}
		rtt := "-"
		if m.RTT > 0 {
			rtt = roundDuration(time.Duration(m.RTT)).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%d\t%s\t%d\t%s\n",
			name, m.State, orDash(m.Region), orDash(m.Zone), rtt, m.Connected, m.CatalogRevision, lag, m.Exports, fenced)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printFencing(w, st); err != nil {
		return err
	}
	if len(st.Fenced) > 0 {
		fmt.Fprintln(w, "\nFenced peers (endpoints kept, marked unhealthy):")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER\tREASON")
		for _, f := range st.Fenced {
			fmt.Fprintf(tw, "%s\t%s\n", f.Name, f.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.Conflicts) > 0 {
		fmt.Fprintln(w, "\nConflicts (the oldest export wins):")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tCLUSTER\tREASON\tMESSAGE")
		for _, c := range st.Conflicts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Service, c.Cluster, c.Reason, strings.ReplaceAll(c.Message, "\n", " "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.RefusedPolicies) > 0 {
		fmt.Fprintln(w, "\nRefused producer policies (the export is merged as if it carried none):")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tCLUSTER\tERROR")
		for _, r := range st.RefusedPolicies {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Service, r.Cluster, strings.ReplaceAll(r.Error, "\n", " "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// printFencing says, for every peer, why it is fenced or trusted and how
// the probes of its gateway are doing.
func printFencing(w io.Writer, st federation.Status) error {
	if len(st.Members) < 2 {
		return nil
	}
	fmt.Fprintln(w, "\nFencing (why each peer is fenced or trusted):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tFENCED\tRULE\tGATEWAY PROBES\tWHY")
	for _, m := range st.Members {
		if m.Local {
			continue
		}
		fenced := "no"
		if m.Fenced {
			fenced = "yes"
		}
		probes := "not probed"
		if p := m.GatewayProbe; p != nil {
			switch {
			case p.Last.IsZero():
				probes = "pending"
			case p.Failures == 0:
				probes = "ok"
			default:
				probes = fmt.Sprintf("%d failed (%s)", p.Failures, p.LastResult)
			}
			if p.Self {
				probes += ", gateway itself"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, fenced, orDash(m.FenceRule), probes, orDash(m.FenceDecision))
	}
	return tw.Flush()
}

// roundDuration keeps three significant figures or so, for tables.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
