package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/internal/demo"
)

// runBounds runs `fedmesh demo --scenario bounds` with the control
// planes' default timings and with the demo's local ones, and prints what
// it measured.
func runBounds(cmd *cobra.Command, cfg demo.Config, output string, created bool) error {
	bounds, err := demo.RunBounds(cmd.Context(), cfg, []demo.Federation{demo.DefaultFederation, demo.LocalFederation})
	if output == "json" {
		if perr := printOutput(cmd.OutOrStdout(), "json", bounds, nil); perr != nil {
			return perr
		}
	} else if len(bounds) > 0 {
		printBounds(cmd.OutOrStdout(), bounds)
	}
	if err != nil {
		return fmt.Errorf("demo failed: %w", err)
	}
	if created {
		os.RemoveAll(cfg.Dir)
	}
	return nil
}

func printBounds(w io.Writer, bs []demo.Bounds) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTIMINGS\tOUTAGE\tFENCED AFTER\tERRORS FIRST 5S\tERRORS AFTER\tHEALED AFTER\tTRAFFIC BACK\tERRORS IN RECOVERY")
	for _, b := range bs {
		for _, o := range []struct {
			name string
			o    demo.Outage
		}{{"kill -9 (restart)", b.Fence}, {"freeze (resume)", b.Partition}} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d/%d\t%s\t%s\t%d\n", b.Federation.Name, o.name, perObserver(o.o.FencedSeconds),
				o.o.ErrorsFirst5s, o.o.RequestsFirst5s, o.o.ErrorsAfter, o.o.RequestsAfter, perObserver(o.o.HealedSeconds),
				secs(o.o.TrafficBackSeconds), o.o.ErrorsInRecovery)
		}
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTIMINGS\tCONTROL PLANE DOWN\tREADY AFTER START\tFIRST PROXY BACK\tALL PROXIES BACK")
	for _, b := range bs {
		for _, r := range b.Reconnect {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s (%d)\n", b.Federation.Name, secs(r.OutageSeconds), secs(r.ReadySeconds),
				secs(r.FirstSeconds), secs(r.AllSeconds), r.Proxies)
		}
	}
	tw.Flush()
}

// perObserver is "east-1 12.3s, west-1 12.5s".
func perObserver(m map[string]float64) string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " " + secs(m[n])
	}
	return strings.Join(parts, ", ")
}

func secs(s float64) string {
	if s < 0 {
		return "never"
	}
	return fmt.Sprintf("%.1fs", s)
}
