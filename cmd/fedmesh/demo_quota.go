package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/fedmesh/fedmesh/internal/demo"
)

// printQuota prints the clusterset quota phase of the summary: per part,
// the admitted rate against the quota and the tolerance.
func printQuota(w io.Writer, q *demo.QuotaResult) {
	if q == nil {
		return
	}
	fmt.Fprintf(w, "\nclusterset quota %s: %d requests/s across the clusters (fedmesh get quotas shows the split)\n", q.Quota, q.Requests)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUOTA PHASE\tWINDOW\tADMITTED/S\tQUOTA/S\tADMITTED (BOUND)\tREFUSED\tBUSY CLIENT'S SHARE\tRESULT")
	for _, p := range q.Parts {
		result := "ok"
		if !p.OK {
			result = "FAIL: " + p.Reason
		}
		fmt.Fprintf(tw, "%s\t%.0fs\t%.1f\t%d\t%d (%d)\t%d\t%.0f%%\t%s\n", p.Name, p.Seconds, p.AdmittedPerSecond, q.Requests,
			sumCounts(p.Admitted), p.Bound, sumCounts(p.Refused), p.BusyShare, result)
	}
	tw.Flush()
	fmt.Fprintf(w, "tolerance: %s\n", q.Tolerance)
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
