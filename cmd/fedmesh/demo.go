package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var (
		clusters int
		keep     bool
		output   string
		dir      string
		rate     int
		jaeger   string
		base     string
		scenario string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run three local clusters: federate, stay local, fail over across clusters, recover, refuse what the policy denies, route a canary, an A/B test and injected faults",
		Long: `Start local clusters on loopback addresses (east-1 and east-2 in us-east, west-1
in us-west), each with a control plane and embedded etcd, an east-west gateway
and an echo service with two replicas behind sidecars; join them with one
token; then send steady traffic from a client in east-1 through its sidecar
while east-1's echo dies, then east-2's, then both come back. Every cluster
carries the same AuthorizationPolicies: echo admits only the client, and
nobody on /admin. At the end of every phase the client asks for /admin: the
echo sidecars of the cluster that serves (through its gateway when it is
another cluster) refuse it with 403 and write an audit record, which the
demo shows. Then traffic management, with a second client in west-1: one
producer route written into east-1's source only sends 10% of every
caller's requests to echo-v2, which only west-1 runs and exports (a canary);
a FaultInjection aborts 20% of requests with 503 and delays 10%; an A/B
route sends requests with "x-variant: b" to echo-v2; then the routes are
removed and every request goes to the local echo again. Every phase is
checked, shares within 4 binomial standard deviations of what the route
says, injected faults apart from real errors: the command exits 0 when
each behaved, 1 with the reason otherwise.

The demo listens on 127.0.0.11-13 and 127.0.1-3.0/24 unless --base-address
moves it. It first checks that every address it will listen on is free and
fails naming those that are not; once started, a process of its own that
exits (a listener it could not bind, a crash) stops the whole demo at once
with that process's last log lines.

With a Jaeger ` + demo.JaegerVersion + ` binary (--jaeger, $FEDMESH_TELEMETRY_TOOLS/jaeger, or the
one scripts/telemetry-tools.sh built), the demo runs it on ` + demo.JaegerIP + ` and every
sidecar sends it ` + strconv.Itoa(demo.TraceSampling) + `% of its traces; after each failover phase the demo finds a
trace that crossed clusters and prints its Jaeger UI URL. Without one it runs
without tracing and says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return &exitError{code: 2, err: fmt.Errorf("unknown output format %q: want json", output)}
			}
			baseAddr, err := netip.ParseAddr(base)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--base-address: %w", err)}
			}
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			if scenario != "tour" && scenario != "bounds" {
				return &exitError{code: 2, err: fmt.Errorf("unknown --scenario %q: want tour or bounds", scenario)}
			}
			created := false
			if dir == "" {
				if dir, err = os.MkdirTemp("", "fedmesh-demo-"); err != nil {
					return err
				}
				created = true
			}
			// With -o json the summary alone goes to stdout; progress
			// and the live view go to stderr.
			progress := cmd.OutOrStdout()
			if output == "json" {
				progress = cmd.ErrOrStderr()
			}
			if scenario == "bounds" {
				return runBounds(cmd, demo.Config{Binary: bin, Dir: dir, Clusters: clusters, BaseAddress: baseAddr, Rate: rate, Out: progress}, output, created)
			}
			jaegerBin, note, err := demo.FindJaeger(jaeger, os.Getenv)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			sum, err := demo.Run(cmd.Context(), demo.Config{
				Binary: bin, Dir: dir, Clusters: clusters, BaseAddress: baseAddr, Rate: rate, Keep: keep, Out: progress,
				Jaeger: jaegerBin, TracingNote: note,
			})
			if sum == nil {
				if err == nil {
					err = errors.New("demo produced no summary")
				}
				return &exitError{code: 2, err: err}
			}
			if output == "json" {
				if perr := printOutput(cmd.OutOrStdout(), "json", sum, nil); perr != nil {
					return perr
				}
			} else if len(sum.Phases) > 0 || err == nil {
				printSummary(cmd.OutOrStdout(), sum)
			}
			if err != nil {
				return fmt.Errorf("demo failed: %w (logs in %s)", err, sum.Dir+"/logs")
			}
			if !sum.OK {
				return fmt.Errorf("demo failed: %s (logs in %s)", sum.Reason, sum.Dir+"/logs")
			}
			if !keep && created {
				os.RemoveAll(dir)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&clusters, "clusters", 3, "number of local clusters (at least 3)")
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the clusters running and print how to reach them")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format of the summary: json")
	cmd.Flags().StringVar(&dir, "dir", "", "working directory for CAs, data and logs (default: a new temporary directory)")
	cmd.Flags().IntVar(&rate, "rate", 50, "client requests per second")
	cmd.Flags().StringVar(&jaeger, "jaeger", "", "the Jaeger "+demo.JaegerVersion+" binary to trace into (default $FEDMESH_TELEMETRY_TOOLS/jaeger, else the one scripts/telemetry-tools.sh built); none: no tracing")
	cmd.Flags().StringVar(&scenario, "scenario", "tour", "tour: the phases above; bounds: measure fencing, healing and reconnecting with the default and the local federation timings (see 'Static stability' in bench/README.md)")
	cmd.Flags().StringVar(&base, "base-address", demo.DefaultBaseAddress.String(),
		"loopback address A.B.C.D of the first cluster: cluster N listens on A.B.C.(D+N-1), its workloads on A.B.(C+N).0/24; give another (e.g. 127.1.0.11) to run beside a demo on the default addresses")
	return cmd
}

func printSummary(w io.Writer, s *demo.Summary) {
	fmt.Fprintf(w, "\nSummary (clusters up in %.1fs, %.1fs in all)\n", s.StartupSeconds, s.TotalSeconds)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tEXPECT\tSHARE\tSWITCHED\tREQUESTS\tERRORS\tERROR WINDOW\tP99\tGET "+demo.DeniedPath+"\tV2 SHARE\tFAULTS (ABORT/DELAY)\tTRACE\tRESULT")
	for _, r := range s.Phases {
		switched := "-"
		if r.SwitchedAfter >= 0 {
			switched = r.SwitchedAfter.Round(10 * time.Millisecond).String()
		}
		result := "ok"
		if !r.OK {
			result = "FAIL: " + r.Reason
		}
		v2 := callersString(r.Callers, func(c demo.Caller) string { return c.Share(demo.CheckV2) })
		faults := callersString(r.Callers, demo.Caller.FaultShares)
		fmt.Fprintf(tw, "%s\t%s\t%.1f%%\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Phase.Name, r.Phase.Expect, r.Share, switched,
			r.Requests, r.Errors, r.ErrorWindow.Round(time.Millisecond), r.P99.Round(10*time.Microsecond), denialString(r.Denial), v2, faults,
			traceString(r.Trace), result)
	}
	tw.Flush()
	printTraces(w, s)
	printQuota(w, s.Quota)
	if s.OK {
		fmt.Fprintln(w, "\nevery phase behaved: traffic stayed local, failed over within the region first, then across regions, and came back,")
		fmt.Fprintf(w, "and wherever it went the serving cluster refused GET %s (403, audited), all over mTLS;\n", demo.DeniedPath)
		fmt.Fprintf(w, "routes written in %s's source alone were obeyed by the clients of %s: %d%% to %s, %d%% of requests aborted by a fault\n",
			s.Clusters[0].Name, callerNames(s.Phases), demo.CanaryWeight, demo.CanaryService, demo.AbortPercent)
		fmt.Fprintf(w, "(counted apart from real errors, of which the traffic phases had none), %s: %s to %s, then the local echo again (shares within %d sigma)\n",
			demo.VariantHeader, demo.VariantB, demo.CanaryService, demo.Sigmas)
	}
	if len(s.Running) > 0 {
		fmt.Fprintf(w, "\nleft running (--keep); logs and data in %s\n", s.Dir)
		for _, c := range s.Clusters {
			fmt.Fprintf(w, "  %-8s control plane %s  (fedmesh status --admin %s --operator-dir %s)\n", c.Name, c.Admin(), c.Admin(), s.OperatorDir)
		}
		if s.Tracing.On {
			fmt.Fprintf(w, "  traces:  %s   (Jaeger UI; service %s)\n", s.Tracing.UI, demo.ClientService)
		}
		fmt.Fprintf(w, "  picture: fedmesh dashboard --admin %s --operator-dir %s\n", s.Clusters[0].Admin(), s.OperatorDir)
		fmt.Fprintf(w, "  client:  curl -x http://%s:15001 http://echo.demo.svc.clusterset.local:8080/\n", s.Clusters[0].ClientIP())
		fmt.Fprintf(w, "  denied:  curl -x http://%s:15001 http://echo.demo.svc.clusterset.local:8080%s\n", s.Clusters[0].ClientIP(), demo.DeniedPath)
		fmt.Fprintf(w, "  why:     fedmesh authz check --admin %s --operator-dir %s --from %s --from-cluster %s --to demo/echo --path %s\n",
			s.Clusters[0].Admin(), s.OperatorDir, demo.ClientID, s.Clusters[0].Name, demo.DeniedPath)
		fmt.Fprintf(w, "  audit:   %s/*/workloads/echo-*/audit.log\n", s.Dir)
		fmt.Fprintf(w, "  routes:  cp %s/%s/%s %s/%s/source/   (the A/B route, in force in every cluster)\n",
			s.Dir, demo.TrafficDir, demo.ABFile, s.Dir, s.Clusters[0].Name)
		fmt.Fprintf(w, "  a/b:     curl -x http://%s:15001 -H '%s: %s' http://echo.demo.svc.clusterset.local:8080/   (echo-v2 answers)\n",
			s.Clusters[0].ClientIP(), demo.VariantHeader, demo.VariantB)
		fmt.Fprintf(w, "  stop:    kill %s\n", strings.Join(pids(s.Running), " "))
	}
}

// callersString is a traffic phase's figure f per client, for the summary
// table: "east-1 9.8%; west-1 10.3%"; "-" outside the traffic phases.
func callersString(cs []demo.Caller, f func(demo.Caller) string) string {
	if len(cs) == 0 {
		return "-"
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.Cluster + " " + f(c)
	}
	return strings.Join(parts, "; ")
}

// traceString is a phase's trace check for the summary table: the
// clusters the trace crossed.
func traceString(tc *demo.TraceCheck) string {
	switch {
	case tc == nil:
		return "-"
	case tc.ID == "":
		return "none found"
	}
	return strings.Join(tc.Clusters, "->")
}

// printTraces prints the TRACE lines: each trace found, with its Jaeger
// UI URL, or that tracing was off.
func printTraces(w io.Writer, s *demo.Summary) {
	if !s.Tracing.On {
		fmt.Fprintf(w, "\ntracing was off: %s\n", s.Tracing.Note)
		return
	}
	fmt.Fprintf(w, "\ntraces in Jaeger %s (service %s, %g%% of traces sampled):\n", s.Tracing.UI, demo.ClientService, s.Tracing.SamplingPercent)
	for _, r := range s.Phases {
		switch tc := r.Trace; {
		case tc == nil:
		case tc.ID == "":
			fmt.Fprintf(w, "  TRACE  %-22s none found: %s\n", r.Phase.Name, tc.Err)
		default:
			fmt.Fprintf(w, "  TRACE  %-22s %s  %s  %s\n", r.Phase.Name, tc.ID, tc.Crossing(), tc.URL)
		}
	}
}

// callerNames lists the clusters whose clients the traffic phases judged.
func callerNames(phases []demo.Result) string {
	for _, r := range phases {
		if len(r.Callers) > 0 {
			var names []string
			for _, c := range r.Callers {
				names = append(names, c.Cluster)
			}
			return strings.Join(names, " and ")
		}
	}
	return "no cluster"
}

// denialString is the phase's policy probe for the summary table: the
// answer and the cluster that refused.
func denialString(dn *demo.Denial) string {
	switch {
	case dn == nil:
		return "-"
	case dn.Code == 0:
		return "failed"
	case dn.Cluster == "":
		return fmt.Sprintf("%d, no audit", dn.Code)
	}
	return fmt.Sprintf("%d by %s", dn.Code, dn.Cluster)
}

func pids(running []string) []string {
	var out []string
	for _, r := range running {
		if i := strings.LastIndex(r, "(pid "); i >= 0 {
			out = append(out, strings.TrimSuffix(r[i+5:], ")"))
		}
	}
	return out
}
