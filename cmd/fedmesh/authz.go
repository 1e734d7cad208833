package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/controlplane/xds"
)

func newAuthzCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "authz",
		Short: "Inspect authorization (AuthorizationPolicy) in force",
	}
	cmd.AddCommand(newAuthzCheckCmd())
	return cmd
}

// Exit codes of authz check, beside 0 (allowed) and 2 (bad usage).
const (
	exitDenied     = 1
	exitCheckError = 3
)

func newAuthzCheckCmd() *cobra.Command {
	var admin, output, from, fromCluster, to, method, path string
	var port int
	var headers []string
	cmd := &cobra.Command{
		Use:   "check --from SPIFFE_ID --to SERVICE",
		Short: "Say whether a request would be allowed, and by which policy and rule",
		Long: `Decide one request from the AuthorizationPolicies in force in the control
plane's cluster (the destination's: policies are enforced by the server's
sidecar), in Istio's order: a matching DENY denies; if an ALLOW policy
applies to the service, one must match; AUDIT only records.

Exit code: 0 allowed, 1 denied, 2 bad usage, 3 the check could not be made
(control plane unreachable, unknown service).`,
		Example: `  fedmesh authz check --admin https://127.0.0.13:15014 \
    --from spiffe://fedmesh.local/ns/demo/sa/client --from-cluster east-1 \
    --to demo/echo --method GET --path /api/items --header x-env=prod
  fedmesh authz check --from spiffe://fedmesh.local/ns/demo/sa/client --to store.demo --port 5432 -o json`,
		Args: fedUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return &exitError{code: 2, err: fmt.Errorf("--from and --to are required\nsee '%s --help'", cmd.CommandPath())}
			}
			q := url.Values{xds.AuthzParamFrom: {from}, xds.AuthzParamTo: {to}}
			set := func(k, v string) {
				if v != "" {
					q.Set(k, v)
				}
			}
			set(xds.AuthzParamFromCluster, fromCluster)
			set(xds.AuthzParamMethod, method)
			set(xds.AuthzParamPath, path)
			if port != 0 {
				set(xds.AuthzParamPort, strconv.Itoa(port))
			}
			for _, h := range headers {
				if k, _, ok := strings.Cut(h, "="); !ok || k == "" {
					return &exitError{code: 2, err: fmt.Errorf("--header %q: want NAME=VALUE", h)}
				}
				q.Add(xds.AuthzParamHeader, h)
			}
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), adminPageTimeout)
			defer cancel()
			var res xds.AuthzCheck
			if err := c.Get(ctx, xds.DebugAuthzPath+"?"+q.Encode(), &res); err != nil {
				return &exitError{code: exitCheckError, err: err}
			}
			if err := printOutput(cmd.OutOrStdout(), output, res, func(w io.Writer) error { return printAuthzCheck(w, &res) }); err != nil {
				return err
			}
			if !res.Decision.Allowed {
				return &exitError{code: exitDenied, err: errors.New("denied"), quiet: true}
			}
			return nil
		},
	}
	f := cmd.Flags()
	addFedAdminFlag(cmd, &admin)
	f.StringVarP(&output, "output", "o", "", "output format: json or yaml")
	f.StringVar(&from, "from", "", "the caller's SPIFFE ID, spiffe://TRUST-DOMAIN/ns/NS/sa/SA (required)")
	f.StringVar(&fromCluster, "from-cluster", "", "the caller's cluster (default: none, which matches no clusters value)")
	f.StringVar(&to, "to", "", "the destination service, NS/NAME or NAME.NS (required)")
	f.IntVar(&port, "port", 0, "the service port (default: its lowest)")
	f.StringVar(&method, "method", "", "the HTTP method (default GET)")
	f.StringVar(&path, "path", "", "the HTTP path (default /)")
	f.StringArrayVar(&headers, "header", nil, "a request header NAME=VALUE; repeat for more")
	return cmd
}

// printAuthzCheck writes the human form: the answer, then why.
func printAuthzCheck(w io.Writer, res *xds.AuthzCheck) error {
	d := &res.Decision
	answer := "deny"
	if d.Allowed {
		answer = "allow"
	}
	fmt.Fprintln(w, answer)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	r := &res.Request
	target := fmt.Sprintf("%s/%s:%d", r.Namespace, r.Service, r.Port)
	what := "tcp"
	if !r.TCP {
		what = r.Method + " " + r.Path
	}
	from := r.Principal
	if r.Cluster != "" {
		from += " (cluster " + r.Cluster + ")"
	}
	fmt.Fprintf(tw, "Reason:\t%s\n", d.Reason)
	if d.Policy != "" {
		rule := "-"
		if d.Rule != nil {
			rule = strconv.Itoa(*d.Rule)
		}
		fmt.Fprintf(tw, "Policy:\t%s rule %s (%s)\n", d.Policy, rule, d.Action)
	}
	fmt.Fprintf(tw, "Request:\t%s -> %s %s\n", from, target, what)
	applies := "none"
	if len(res.Policies) > 0 {
		applies = strings.Join(res.Policies, ", ")
	}
	fmt.Fprintf(tw, "Policies of %s/%s in %s:\t%s\n", r.Namespace, r.Service, res.Cluster, applies)
	for _, a := range d.Audited {
		fmt.Fprintf(tw, "Audited by:\t%s rule %d\n", a.Policy, a.Rule)
	}
	for _, n := range res.Notes {
		if n.Rule < 0 {
			fmt.Fprintf(tw, "Note:\t%s: %s\n", n.Policy, n.Note)
			continue
		}
		fmt.Fprintf(tw, "Note:\t%s rule %d: %s\n", n.Policy, n.Rule, n.Note)
	}
	return tw.Flush()
}
