package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/controlplane"
	"github.com/fedmesh/fedmesh/policy"
)

func newGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get",
		Short: "List the routes, policies or clusterset quotas in force in a control plane's cluster, and where they came from",
		Args:  fedUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &exitError{code: 2, err: fmt.Errorf("name what to get: routes, policies or quotas\nsee '%s --help'", cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newGetTrafficCmd("routes", []string{"route", "httproutes", "grpcroutes"},
		"HTTPRoutes and GRPCRoutes", []string{policy.KindHTTPRoute, policy.KindGRPCRoute}, "PARENTS"))
	cmd.AddCommand(newGetTrafficCmd("policies", []string{"policy"},
		"ResiliencePolicies, FaultInjections, RateLimitPolicies and TelemetryPolicies",
		[]string{policy.KindResiliencePolicy, policy.KindFaultInjection, policy.KindRateLimitPolicy, policy.KindTelemetryPolicy}, "TARGETS"))
	cmd.AddCommand(newGetQuotasCmd())
	return cmd
}

// getPage is what get -o json|yaml prints: the traffic page with the
// objects of the kinds asked for.
type getPage = controlplane.TrafficPage

func newGetTrafficCmd(use string, aliases []string, what string, kinds []string, refsHeader string) *cobra.Command {
	var admin, output, namespace string
	cmd := &cobra.Command{
		Use:     use,
		Aliases: aliases,
		Short:   "List the " + what + " in force, with their origin",
		Long: "List the " + what + " in force in the control plane's cluster: this cluster's own\n" +
			"(ORIGIN local; a producer object its export carries to every cluster is marked published)\n" +
			"and the producer objects other clusters publish with their exports (ORIGIN CLUSTER via\n" +
			"NAMESPACE/SERVICE), then the policy conflicts between clusters. -o wide adds rules and digests.\n\n" +
			"Exit code: 0 listed (even if none), 1 the control plane could not be asked, 2 bad usage.",
		Example: fmt.Sprintf(`  fedmesh get %[1]s --admin https://127.0.0.11:15014
  fedmesh get %[1]s -n demo -o wide
  fedmesh get %[1]s -o yaml`, use),
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
			var page getPage
			if err := c.Get(ctx, controlplane.TrafficPath, &page); err != nil {
				return err
			}
			objs := page.Objects[:0:0]
			for _, o := range page.Objects {
				if slices.Contains(kinds, o.Kind) && (namespace == "" || o.Namespace == namespace) {
					objs = append(objs, o)
				}
			}
			page.Objects = objs
			if output == "wide" || output == "" {
				return printTraffic(cmd.OutOrStdout(), page, use, refsHeader, output == "wide")
			}
			return printOutput(cmd.OutOrStdout(), output, page, nil)
		},
	}
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide, json or yaml (default: a table)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "list only this namespace's objects (default: every namespace)")
	return cmd
}

// printTraffic renders the objects and the conflicts as kubectl-like
// tables.
func printTraffic(w io.Writer, page getPage, what, refsHeader string, wide bool) error {
	if !page.SourceTraffic {
		fmt.Fprintf(w, "The source of cluster %s reads no traffic objects.\n", page.Cluster)
	} else if !page.SourceReady {
		fmt.Fprintf(w, "The source of cluster %s has not read its traffic objects yet.\n", page.Cluster)
	}
	if len(page.Objects) == 0 {
		fmt.Fprintf(w, "No %s in force in cluster %s.\n", what, page.Cluster)
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		header := "NAMESPACE\tNAME\tKIND\t" + refsHeader + "\tORIGIN\tNOTE"
		if wide {
			header += "\tRULES\tDIGEST"
		}
		fmt.Fprintln(tw, header)
		for _, o := range page.Objects {
			origin := o.Origin
			switch {
			case o.Origin == controlplane.OriginExport:
				origin = o.Cluster + " via " + o.Service
			case o.Published:
				origin = "local, published"
			}
			line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", o.Namespace, o.Name, o.Kind, orDash(strings.Join(o.Refs, ",")), origin, orDash(oneLine(o.Note)))
			if wide {
				rules := "-"
				if o.Kind == policy.KindHTTPRoute || o.Kind == policy.KindGRPCRoute {
					rules = fmt.Sprint(o.Rules)
				}
				digest := o.Digest
				if len(digest) > 12 {
					digest = digest[:12]
				}
				line += fmt.Sprintf("\t%s\t%s", rules, orDash(digest))
			}
			fmt.Fprintln(tw, line)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(page.Conflicts) > 0 {
		fmt.Fprintln(w, "\nPolicy conflicts (the oldest export carrying policies wins):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tCLUSTER\tIN FORCE\tREASON\tMESSAGE")
		for _, c := range page.Conflicts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Service, c.Cluster, orDash(c.InForce), c.Reason, oneLine(c.Message))
		}
		return tw.Flush()
	}
	return nil
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
