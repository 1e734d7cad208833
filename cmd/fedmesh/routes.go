package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/controlplane/xds"
)

func newRoutesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "Inspect routing (HTTPRoute, GRPCRoute) in force",
	}
	cmd.AddCommand(newRoutesExplainCmd())
	return cmd
}

// exitNoRoute is routes explain's exit code when the sidecar would answer
// the request itself (no rule matches, no backend), beside 0 (routed), 2
// (bad usage) and 3 (the check could not be made).
const exitNoRoute = 1

func newRoutesExplainCmd() *cobra.Command {
	var admin, output, namespace, host, method, path string
	var port int
	var headers []string
	cmd := &cobra.Command{
		Use:   "explain --host HOST [--path PATH]",
		Short: "Say which route and rule a caller's request takes, and where it goes",
		Long: `Decide one request from a caller in --namespace to --host as the caller's
sidecar in the control plane's cluster routes it: the route table in force
(a consumer route of the caller's namespace, the service's producer route
from whichever cluster published it, or the default), the rule that matches,
the weighted backends, and any fault, redirect or mirror.

Exit code: 0 routed to a backend, 1 answered by the sidecar itself (no rule
matches, no backend, redirect), 2 bad usage, 3 the check could not be made.`,
		Example: `  fedmesh routes explain --admin https://127.0.0.11:15014 \
    --namespace demo --host echo.demo:8080 --path /api --header x-variant=b
  fedmesh routes explain --host echo.demo.svc.clusterset.local --port 8080 -o json`,
		Args: fedUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if host == "" {
				return &exitError{code: 2, err: fmt.Errorf("--host is required\nsee '%s --help'", cmd.CommandPath())}
			}
			q := url.Values{"host": {host}, "namespace": {namespace}}
			if method != "" {
				q.Set("method", method)
			}
			if path != "" {
				q.Set("path", path)
			}
			if port != 0 {
				q.Set("port", strconv.Itoa(port))
			}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok || k == "" {
					return &exitError{code: 2, err: fmt.Errorf("--header %q: want NAME=VALUE", h)}
				}
				q.Add("header", k+":"+v)
			}
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), adminPageTimeout)
			defer cancel()
			var res xds.RouteCheck
			if err := c.Get(ctx, xds.DebugRoutesPath+"?"+q.Encode(), &res); err != nil {
				return &exitError{code: exitCheckError, err: err}
			}
			if err := printOutput(cmd.OutOrStdout(), output, res, func(w io.Writer) error { return printRouteCheck(w, &res) }); err != nil {
				return err
			}
			if res.Decision.Status != 0 || len(res.Decision.Backends) == 0 {
				return &exitError{code: exitNoRoute, err: fmt.Errorf("answered by the sidecar: %d", res.Decision.Status), quiet: true}
			}
			return nil
		},
	}
	f := cmd.Flags()
	addFedAdminFlag(cmd, &admin)
	f.StringVarP(&output, "output", "o", "", "output format: json or yaml")
	f.StringVarP(&namespace, "namespace", "n", "default", "the caller's namespace (consumer routes of that namespace apply)")
	f.StringVar(&host, "host", "", "the host the caller asks for: NAME.NS[:PORT] or NAME.NS.svc.clusterset.local[:PORT] (required)")
	f.IntVar(&port, "port", 0, "the service port (default: the host's, or the service's only port)")
	f.StringVar(&method, "method", "", "the HTTP method (default GET)")
	f.StringVar(&path, "path", "", "the HTTP path, query included (default /)")
	f.StringArrayVar(&headers, "header", nil, "a request header NAME=VALUE; repeat for more")
	return cmd
}

// printRouteCheck writes the human form: where the request goes, then why.
func printRouteCheck(w io.Writer, res *xds.RouteCheck) error {
	d := &res.Decision
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Cluster:\t%s\n", res.Cluster)
	fmt.Fprintf(tw, "Caller namespace:\t%s\n", d.Namespace)
	if d.Service != "" {
		fmt.Fprintf(tw, "Service:\t%s\n", d.Service)
	}
	if d.Origin != "" {
		origin := d.Origin
		if d.PoliciesCluster != "" {
			origin += " (published by " + d.PoliciesCluster + ")"
		}
		fmt.Fprintf(tw, "Routes from:\t%s\n", origin)
	}
	if d.Route != "" {
		fmt.Fprintf(tw, "Route:\t%s\n", d.Route)
	}
	for _, b := range d.Backends {
		name := b.Service
		if name == "" {
			name = b.Cluster
		}
		if b.Missing != "" {
			name += " (missing: " + b.Missing + ")"
		}
		fmt.Fprintf(tw, "Backend:\t%s weight %d\n", name, b.Weight)
	}
	if d.Fault != nil {
		fmt.Fprintf(tw, "Fault:\t%s\n", d.Fault.Policy)
	}
	for _, m := range d.Mirrors {
		fmt.Fprintf(tw, "Mirror:\t%s %.4g%%\n", m.Cluster, m.Percent)
	}
	if d.Status != 0 {
		fmt.Fprintf(tw, "Answered by the sidecar:\t%d\n", d.Status)
	}
	fmt.Fprintf(tw, "Reason:\t%s\n", d.Reason)
	for _, n := range d.Notes {
		fmt.Fprintf(tw, "Note:\t%s\n", n)
	}
	return tw.Flush()
}
