// Command httpload is the load generator of the sidecar benchmark
// (scripts/bench-sidecar.sh, method in bench/sidecar.md). It measures one
// HTTP path in one of two ways and prints one line of key=value pairs:
//
//	httpload max  -url URL -conns 32 -duration 5s [-host H] [-body 1024]
//	httpload rate -url URL -rate 1000 -duration 10s [-conns 64] [-host H] [-body 1024]
//	httpload report -in results.tsv
//
// max keeps conns keep-alive connections busy back to back (closed loop,
// as wrk does) and reports the rate reached. rate is an open-loop
// generator in the manner of wrk2: request i is due at start + i/rate
// whatever happened to the requests before it, and its latency counts
// from when it was due, so a path that stalls is charged for the
// requests queued behind the stall (no coordinated omission). -body N
// sends POSTs of N bytes; without it, GETs. Both are bounded by
// -duration (and rate by rate x duration requests), each request by
// -timeout.
//
// report reads the rows the benchmark script collected (round, path,
// metric, value; tab separated) and prints the markdown tables of
// bench/sidecar-results.md: min / median / max over rounds of every
// figure and of every ratio of the fedmesh pair to the HAProxy pair.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: httpload max|rate|report [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "max", "rate":
		err = runLoad(cmd, args, os.Stdout)
	case "report":
		err = runReport(args, os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpload:", err)
		os.Exit(1)
	}
}
