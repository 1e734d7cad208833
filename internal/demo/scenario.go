package demo

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// step is one phase of the scenario: an action, then a period of traffic
// that is judged.
type step struct {
	Phase
	// action runs before the phase's traffic is counted; nil for none.
	action func() error
	// traffic changes the route cluster's traffic objects at the start
	// of a traffic phase; nil in the other phases.
	traffic *trafficStep
	// probe ends the phase with the policy probe (GET DeniedPath), in
	// the phases whose routes send that request to Expect.
	probe bool
	// trace ends the phase, with tracing on, with the trace check: a
	// trace from the first client to Expect, another cluster.
	trace bool
}

// trafficStep is the change that starts a traffic phase.
type trafficStep struct {
	// file is the embedded traffic file whose objects, with the
	// ResiliencePolicy, TrafficFile holds in the phase; "" removes
	// TrafficFile.
	file string
	// variant sets the clients' VariantHeader from this phase on.
	variant func(n int) string
	// change tells when a client's requests follow the new objects.
	change Change
}

// steps are the scenario's phases, in order: the failover phases, then
// the traffic phases (after "both restored", so the failover phases run
// as they always did, and every echo replica is up again).
func (d *demo) steps() []step {
	east1, east2, west1 := d.clusters[0], d.clusters[1], d.clusters[2]
	tm := d.tm
	fromV2 := func(s Sample) bool { return s.answered() && s.Service == CanaryService }
	fromV1 := func(s Sample) bool { return s.answered() && s.Service == "echo" }
	return []step{
		{Phase: Phase{Name: "steady", Expect: east1.Name, Forbid: []string{west1.Name}, Duration: tm.Steady, MinShare: 95}, probe: true},
		{Phase: Phase{Name: east1.Name + " echo killed", Expect: east2.Name, Forbid: []string{west1.Name}, Settle: tm.Settle, Duration: tm.Failover, MinShare: 95},
			action: func() error { return d.killEcho(east1) }, probe: true, trace: true},
		{Phase: Phase{Name: east2.Name + " echo killed too", Expect: west1.Name, Settle: tm.Settle, Duration: tm.Failover2, MinShare: 95},
			action: func() error { return d.killEcho(east2) }, probe: true, trace: true},
		{Phase: Phase{Name: "both restored", Expect: east1.Name, Settle: tm.RecoverSettle, Duration: tm.Recover, MinShare: 95},
			action: func() error {
				if err := d.restoreEcho(east1); err != nil {
					return err
				}
				return d.restoreEcho(east2)
			}, probe: true},
		// The traffic phases. east-1's client keeps its local echo
		// (east-1) for what a route sends to echo, and reaches echo-v2
		// in west-1; west-1's client has both at home. Nobody's
		// requests may reach east-2.
		{Phase: Phase{Name: "canary 10% to " + CanaryService, Expect: east1.Name, Forbid: []string{east2.Name}, Duration: tm.Canary,
			Route: "demo/echo-canary", Splits: []Split{{V2: CanaryWeight}}},
			traffic: &trafficStep{file: CanaryFile, change: Change{Holds: fromV2, What: "from " + CanaryService}}},
		{Phase: Phase{Name: "fault injection", Expect: east1.Name, Forbid: []string{east2.Name, west1.Name}, Duration: tm.Faults,
			Route: "demo/echo-faults", Splits: []Split{{Abort: AbortPercent, Delay: DelayPercent}}},
			traffic: &trafficStep{file: FaultsFile, change: Change{Holds: Sample.Aborted, What: "aborted by an injected fault"}}},
		{Phase: Phase{Name: "a/b on " + VariantHeader, Expect: east1.Name, Forbid: []string{east2.Name}, Duration: tm.AB,
			Route: "demo/echo-ab", Splits: []Split{{Variant: VariantB, V2: 100}, {V2: 0}}},
			traffic: &trafficStep{file: ABFile, variant: Alternate,
				change: Change{Variant: VariantB, Holds: fromV2, What: "from " + CanaryService + " to " + VariantHeader + ": " + VariantB}},
			probe: true},
		{Phase: Phase{Name: "routes removed", Expect: east1.Name, Forbid: []string{east2.Name, west1.Name}, Duration: tm.Removed, MinShare: 95,
			Route: "none", Splits: []Split{{Variant: VariantB}, {}}},
			traffic: &trafficStep{variant: Alternate,
				change: Change{Variant: VariantB, Holds: fromV1, What: "from echo to " + VariantHeader + ": " + VariantB}},
			probe: true},
	}
}

// scenario runs the phases under steady load with a live view.
func (d *demo) scenario(ctx context.Context) ([]Result, error) {
	steps := d.steps()
	var total, traffic time.Duration
	for _, st := range steps {
		// Each phase ends with a policy probe or the callers' figures,
		// which take a moment.
		total += st.Duration + 2*time.Second
		if st.traffic != nil {
			traffic += st.Duration + 2*time.Second + d.tm.InForce
		}
	}
	total += traffic
	callers := d.callers()
	loads := make([]*Load, len(callers))
	for i, c := range callers {
		bound := traffic
		if i == 0 {
			bound = total
		}
		loads[i] = &Load{URL: echoURL, Rate: d.cfg.Rate, MaxRequests: d.cfg.Rate * int(bound/time.Second+5), Client: d.client(c)}
	}
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	defer wg.Wait()
	run := func(l *Load) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Run(lctx)
		}()
	}
	// The first client sends from the start, the others from the first
	// traffic phase on.
	run(loads[0])
	othersRunning := false

	d.started = time.Now()
	fmt.Fprintf(d.cfg.Out, "\n%6s  %-24s %5s %5s %6s  %-36s %8s\n", "TIME", "PHASE", "REQ", "ERR", "FAULTS", "SERVED BY", "P99")
	var results []Result
	for _, st := range steps {
		if st.action != nil {
			if err := st.action(); err != nil {
				return results, err
			}
		}
		var inForce time.Duration
		var inForceErr error
		if st.traffic != nil {
			if !othersRunning {
				for _, l := range loads[1:] {
					run(l)
				}
				othersRunning = true
			}
			var err error
			inForce, inForceErr, err = d.applyTraffic(ctx, st.traffic, loads)
			if err != nil {
				return results, err
			}
		}
		pstart := time.Now()
		end := pstart.Add(st.Duration)
		for next := pstart.Add(time.Second); ; next = next.Add(time.Second) {
			wait := time.Until(next)
			if next.After(end) {
				wait = time.Until(end)
			}
			select {
			case <-ctx.Done():
				return results, ctx.Err()
			case <-time.After(wait):
			}
			if !next.After(end) {
				w := aggregate(next.Add(-time.Second), loads[0].Between(next.Add(-time.Second), next))
				d.liveLine(st.Name, w)
			}
			if !time.Now().Before(end) {
				break
			}
		}
		// Each client's samples are read once: a request in flight at
		// end is recorded (with its start time) when it completes, so
		// two reads could count it once and not the other time.
		phase := make([][]Sample, len(loads))
		for i, l := range loads {
			phase[i] = l.Between(pstart, end)
		}
		r := Evaluate(st.Phase, pstart, phase[0])
		if st.traffic != nil {
			r.SwitchedAfter = inForce
			if inForceErr != nil {
				r.SwitchedAfter = -1
				r.fail(inForceErr.Error())
			}
			var cs []Caller
			for i, c := range callers {
				cs = append(cs, EvaluateCaller(c.Name, st.Splits, since(phase[i], pstart.Add(st.Settle))))
			}
			d.showCallers(cs)
			r.judgeCallers(cs)
		}
		if st.probe {
			// The policy holds wherever the traffic goes: the cluster
			// that serves this phase refuses what the policy denies.
			dn := d.probeDenied(ctx)
			d.showDenial(dn)
			r.judgeDenial(dn)
		}
		if st.trace && d.cfg.Jaeger != "" {
			tc := d.checkTrace(ctx, st.Expect, pstart.Add(st.Settle), end)
			d.showTrace(tc)
			r.judgeTrace(tc)
		}
		results = append(results, r)
	}
	stopLoad()
	return results, nil
}

// applyTraffic makes the route cluster's TrafficFile what ts says, and
// waits until every caller's requests follow it. It returns how long
// that took to the slowest caller, or inForceErr when a caller did not
// follow within Timings.InForce; err is a failure to write the file.
func (d *demo) applyTraffic(ctx context.Context, ts *trafficStep, loads []*Load) (inForce time.Duration, inForceErr, err error) {
	for _, l := range loads {
		l.SetVariant(ts.variant)
	}
	rc := d.routeCluster()
	dir := SourceDir(d.cfg.Dir, rc)
	rel, _ := filepath.Rel(d.cfg.Dir, filepath.Join(dir, TrafficFile))
	var data []byte
	if ts.file != "" {
		data = trafficObjects(ts.file)
		fmt.Fprintf(d.cfg.Out, "  -- %s's source only: %s now holds %s and %s (the README shows them)\n", rc.Name, rel, ts.file, ResilienceFile)
	} else {
		fmt.Fprintf(d.cfg.Out, "  -- %s's source only: %s removed\n", rc.Name, rel)
	}
	changed := time.Now()
	if err := writeTraffic(dir, data); err != nil {
		return 0, nil, err
	}
	var done []string
	for i, c := range d.callers() {
		probe := &Load{URL: echoURL, Client: loads[i].Client}
		if err := waitInForce(ctx, probe, ts.change, 20*time.Millisecond, d.tm.InForce); err != nil {
			if ctx.Err() != nil {
				return 0, nil, ctx.Err()
			}
			return 0, fmt.Errorf("%s's client did not follow: %w", c.Name, err), nil
		}
		inForce = time.Since(changed)
		done = append(done, fmt.Sprintf("%s's client after %v", c.Name, inForce.Round(10*time.Millisecond)))
	}
	fmt.Fprintf(d.cfg.Out, "  -- followed (an answer %s): %s\n", ts.change.What, strings.Join(done, ", "))
	return inForce, nil, nil
}

// showCallers prints a traffic phase's figures per client: the counts,
// then the shares judged.
func (d *demo) showCallers(cs []Caller) {
	for _, c := range cs {
		var judged []string
		for _, ck := range c.Checks {
			if ck.Want > 0 || ck.What == CheckV2 || !ck.OK {
				s := ck.String()
				if !ck.OK {
					s += " FAIL"
				}
				judged = append(judged, s)
			}
		}
		fmt.Fprintf(d.cfg.Out, "  -- %s's client: %d requests, %d errors, %d aborted and %d delayed by a fault; %s\n",
			c.Cluster, c.Requests, c.Errors, c.Faults, c.Delayed, strings.Join(judged, "; "))
	}
}

func (d *demo) liveLine(phase string, w Window) {
	var served []string
	for _, c := range d.clusters {
		if n := w.Served[c.Name]; n > 0 {
			served = append(served, fmt.Sprintf("%s=%d", c.Name, n))
		}
	}
	if w.V2 > 0 {
		served = append(served, fmt.Sprintf("(%s %d)", CanaryService, w.V2))
	}
	s := strings.Join(served, " ")
	if s == "" {
		s = "-"
	}
	faults := "-"
	if w.Faults > 0 || w.Delayed > 0 {
		faults = fmt.Sprintf("%d/%d", w.Faults, w.Delayed)
	}
	fmt.Fprintf(d.cfg.Out, "%5.0fs  %-24s %5d %5d %6s  %-36s %8s\n", time.Since(d.started).Seconds(), phase, w.Requests, w.Errors, faults, s, w.P99.Round(10*time.Microsecond))
}
