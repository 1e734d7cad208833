package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Paths the benchmark measures, in the order the tables list them:
// before is an older fedmesh-proxy, when the run has one.
var paths = []string{"direct", "haproxy", "fedmesh", "before"}

// rows holds the collected figures: rows[metric][path][round].
type rows map[string]map[string]map[int]float64

func runReport(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("in", "", "the rows: round, path, metric, value, tab separated (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("-in is required")
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := parseRows(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	return r.write(out)
}

// parseRows reads round, path, metric, value lines.
func parseRows(in io.Reader) (rows, error) {
	r := rows{}
	sc := bufio.NewScanner(in)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: %d fields, want round, path, metric, value", n, len(f))
		}
		round, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: round: %w", n, err)
		}
		v, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value: %w", n, err)
		}
		if r[f[2]] == nil {
			r[f[2]] = map[string]map[int]float64{}
		}
		if r[f[2]][f[1]] == nil {
			r[f[2]][f[1]] = map[int]float64{}
		}
		r[f[2]][f[1]][round] = v
	}
	return r, sc.Err()
}

// spread is min, median and max of some values.
type spread struct {
	n                int
	min, median, max float64
}

func spreadOf(vs []float64) spread {
	if len(vs) == 0 {
		return spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{n: len(s), min: s[0], median: med, max: s[len(s)-1]}
}

func (s spread) format(prec int) string {
	if s.n == 0 {
		return "-"
	}
	if s.n == 1 {
		return strconv.FormatFloat(s.median, 'f', prec, 64)
	}
	return fmt.Sprintf("%.*f / %.*f / %.*f", prec, s.min, prec, s.median, prec, s.max)
}

// values returns the figures of metric on path, by round.
func (r rows) values(metric, path string) []float64 {
	var vs []float64
	for _, v := range r[metric][path] {
		vs = append(vs, v)
	}
	return vs
}

// ratios returns, for every round where both were measured, f(round) of
// path over f(round) of haproxy.
func (r rows) ratios(path string, f func(path string, round int) (float64, bool)) []float64 {
	var out []float64
	for round := range r["get_max"][path] {
		a, ok1 := f(path, round)
		b, ok2 := f("haproxy", round)
		if ok1 && ok2 && b != 0 {
			out = append(out, a/b)
		}
	}
	return out
}

func (r rows) plain(metric string) func(string, int) (float64, bool) {
	return func(path string, round int) (float64, bool) {
		v, ok := r[metric][path][round]
		return v, ok
	}
}

// added is a latency figure above direct's in the same round.
func (r rows) added(metric string) func(string, int) (float64, bool) {
	return func(path string, round int) (float64, bool) {
		v, ok1 := r[metric][path][round]
		d, ok2 := r[metric]["direct"][round]
		return v - d, ok1 && ok2
	}
}

func (r rows) addedValues(metric, path string) []float64 {
	var vs []float64
	for round := range r[metric][path] {
		if v, ok := r.added(metric)(path, round); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

func (r rows) write(out io.Writer) error {
	w := bufio.NewWriter(out)
	rounds := 0
	for _, byRound := range r["get_max"] {
		rounds = max(rounds, len(byRound))
	}
	fmt.Fprintf(w, "Per path, min / median / max over %d rounds:\n\n", rounds)
	fmt.Fprintln(w, "| path | max rate /s, GET | max rate /s, 1 KiB POST | p50 ms at fixed rate | p90 ms | p99 ms | CPU s / 1k req at fixed rate (both proxies) | CPU s / 1k req at max GET |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range paths {
		if len(r["get_max"][p]) == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", p,
			spreadOf(r.values("get_max", p)).format(0), spreadOf(r.values("post_max", p)).format(0),
			spreadOf(r.values("p50", p)).format(3), spreadOf(r.values("p90", p)).format(3), spreadOf(r.values("p99", p)).format(3),
			spreadOf(r.values("cpu_rate", p)).format(3), spreadOf(r.values("cpu_max", p)).format(3))
	}
	fmt.Fprintln(w)
	for _, p := range paths[2:] {
		if len(r["get_max"][p]) > 0 {
			r.writeRatios(w, p)
		}
	}
	return w.Flush()
}

// writeRatios writes the table of path against the HAProxy pair.
func (r rows) writeRatios(w io.Writer, path string) {
	fmt.Fprintf(w, "\n%s pair against the HAProxy pair; each ratio is taken within a round, then min / median / max over rounds:\n\n", path)
	fmt.Fprintf(w, "| figure | %s | HAProxy pair | ratio | target |\n", path)
	fmt.Fprintln(w, "|---|---:|---:|---:|---|")
	type row struct {
		name     string
		fed, hap []float64
		ratio    []float64
		prec     int
		target   string
	}
	list := []row{
		{name: "max rate /s, keep-alive GET", fed: r.values("get_max", path), hap: r.values("get_max", "haproxy"), ratio: r.ratios(path, r.plain("get_max")), target: ">= 0.6"},
		{name: "max rate /s, 1 KiB POST", fed: r.values("post_max", path), hap: r.values("post_max", "haproxy"), ratio: r.ratios(path, r.plain("post_max")), target: ">= 0.6"},
		{name: "added p50 ms at fixed rate", fed: r.addedValues("p50", path), hap: r.addedValues("p50", "haproxy"), ratio: r.ratios(path, r.added("p50")), prec: 3},
		{name: "added p90 ms at fixed rate", fed: r.addedValues("p90", path), hap: r.addedValues("p90", "haproxy"), ratio: r.ratios(path, r.added("p90")), prec: 3},
		{name: "added p99 ms at fixed rate", fed: r.addedValues("p99", path), hap: r.addedValues("p99", "haproxy"), ratio: r.ratios(path, r.added("p99")), prec: 3, target: "<= 1.5"},
		{name: "CPU s / 1k requests at fixed rate, both proxies", fed: r.values("cpu_rate", path), hap: r.values("cpu_rate", "haproxy"), ratio: r.ratios(path, r.plain("cpu_rate")), prec: 3, target: "<= 2"},
		{name: "CPU s / 1k requests at max GET, both proxies", fed: r.values("cpu_max", path), hap: r.values("cpu_max", "haproxy"), ratio: r.ratios(path, r.plain("cpu_max")), prec: 3, target: "<= 2"},
		{name: "client proxy RSS idle, MiB", fed: mib(r.values("rss_idle", path)), hap: mib(r.values("rss_idle", "haproxy")), ratio: r.ratios(path, r.plain("rss_idle")), prec: 1},
		{name: "client proxy RSS peak under load, MiB", fed: mib(r.values("rss_peak", path)), hap: mib(r.values("rss_peak", "haproxy")), ratio: r.ratios(path, r.plain("rss_peak")), prec: 1},
	}
	for _, l := range list {
		t := l.target
		if t == "" {
			t = "-"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", l.name, spreadOf(l.fed).format(l.prec), spreadOf(l.hap).format(l.prec), spreadOf(l.ratio).format(2), t)
	}
}

// mib converts KiB figures to MiB.
func mib(kib []float64) []float64 {
	out := make([]float64, len(kib))
	for i, v := range kib {
		out[i] = v / 1024
	}
	return out
}
