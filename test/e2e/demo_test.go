package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/sidecar/audit"
)

// syncBuffer is the demo's output, written by its goroutines.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// demoTestTimings are the demo's phases, shorter for the tests.
var demoTestTimings = demo.Timings{
	// RecoverSettle as the demo's own: a restarted replica may meet its
	// fourth ejection (4 * BaseEjection, 8s) as it comes back.
	Steady: 4 * time.Second, Failover: 6 * time.Second, Failover2: 6 * time.Second, Recover: 14 * time.Second,
	Settle: 3 * time.Second, RecoverSettle: 10 * time.Second, BaseEjection: 2 * time.Second,
	Canary: 6 * time.Second, Faults: 6 * time.Second, AB: 4 * time.Second, Removed: 4 * time.Second, InForce: 20 * time.Second,
}

// TestDemoScenario runs `fedmesh demo`'s scenario with shorter phases and
// checks it: in steady state the local cluster serves everything; with
// east-1's echo down traffic fails over within the region (east-2, never
// west-1), then across regions; failed requests stay within what the
// client sidecar's retry budget accounts for; restored, traffic comes back
// to east-1. At the end of every phase the cluster that serves refuses
// GET /admin and records it. Then the traffic phases: routes written into
// east-1's source alone are obeyed by the clients of east-1 and west-1
// (a 10% canary to echo-v2, which only west-1 runs, injected faults
// counted apart from errors, an A/B route on a header), and once they are
// removed east-1's echo serves everything again. The processes' metrics
// must tell the same story. With Jaeger (FEDMESH_TELEMETRY_TOOLS, or the
// one scripts/telemetry-tools.sh built; CI has it) every sidecar traces
// into it, and each failover phase finds a trace from east-1's client to
// the cluster that served, which Jaeger still holds at the end.
func TestDemoScenario(t *testing.T) {
	// The demo runs in a loopback block of its own, never on the
	// default addresses a user's demo may hold.
	base := netip.MustParseAddr(demoBase(reserveBlock(t)))
	jaegerBin, note, err := demo.FindJaeger("", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if jaegerBin == "" && os.Getenv("CI") == "true" {
		t.Fatal(note + " (CI runs `make test`, which builds it)")
	}
	e := newEnv(t)
	tm := demoTestTimings
	var (
		clientPage string
		gateways   = map[string]string{}
		retries    int
		traces     []demo.JaegerTrace
		tracesErr  error
	)
	inspect := func(clusters []demo.Cluster) {
		// Runs on Run's goroutine, before Run returns.
		client := net.JoinHostPort(clusters[0].ClientIP(), "15000")
		_, clientPage, _ = httpGet("http://" + client + "/stats/prometheus")
		for _, c := range clusters {
			_, gateways[c.Name], _ = httpGet("http://" + c.IP + ":15021/stats/prometheus")
		}
		m := &mesh{t: t, clientAdmin: client}
		retries = m.routeRetries(t)
		if jaegerBin != "" {
			// Everything Jaeger holds of the clients' traces, to look
			// up the traces the demo named.
			var body string
			_, body, tracesErr = httpGet("http://" + net.JoinHostPort(base.Prev().String(), "16686") + "/api/traces?service=" + demo.ClientService + "&lookback=1h&limit=5000")
			if tracesErr == nil {
				traces, tracesErr = demo.ParseJaegerTraces([]byte(body))
			}
		}
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The demo's working directory is the test's log directory: its CA,
	// data and every process's log are kept and printed on failure.
	sum, err := demo.Run(ctx, demo.Config{Binary: fedmeshBin, Dir: e.logDir, Clusters: 3, BaseAddress: base, Rate: 50, Out: out, Timings: &tm, Inspect: inspect,
		Jaeger: jaegerBin, TracingNote: note})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	if !sum.OK {
		t.Fatalf("demo: %s\n%s", sum.Reason, out)
	}
	// The clusterset quota phase: each client busy in turn, the admitted
	// rate within the stated tolerance (sum.OK says each part passed).
	if q := sum.Quota; q == nil || len(q.Parts) != 2 || q.Parts[0].Busy != "east-1" || q.Parts[1].Busy != "west-1" {
		t.Errorf("quota phase %+v: want east-1's client busy, then west-1's", sum.Quota)
	} else {
		for _, p := range q.Parts {
			t.Logf("%s: %.1f admitted/s (quota %d/s), %d admitted (bound %d), %d refused in %.0fs, busy client's share %.0f%%",
				p.Name, p.AdmittedPerSecond, q.Requests, p.Admitted[p.Busy]+p.Admitted[otherCaller(p.Busy)], p.Bound,
				p.Refused[p.Busy]+p.Refused[otherCaller(p.Busy)], p.Seconds, p.BusyShare)
		}
	}
	want := []struct{ name, expect string }{
		{"steady", "east-1"}, {"east-1 echo killed", "east-2"}, {"east-2 echo killed too", "west-1"}, {"both restored", "east-1"},
		{"canary 10% to echo-v2", "east-1"}, {"fault injection", "east-1"}, {"a/b on x-variant", "east-1"}, {"routes removed", "east-1"},
	}
	// The canary and the fault injection send GET /admin elsewhere than
	// to Expect (echo-v2, an injected abort): no policy probe there.
	unprobed := map[string]bool{"canary 10% to echo-v2": true, "fault injection": true}
	if len(sum.Phases) != len(want) {
		t.Fatalf("%d phases, want %d", len(sum.Phases), len(want))
	}
	var served = map[string]int{}
	errs, requests := 0, 0
	for i, w := range want {
		r := sum.Phases[i]
		if r.Phase.Name != w.name || r.Phase.Expect != w.expect {
			t.Errorf("phase %d = %q expecting %s, want %q expecting %s", i, r.Phase.Name, r.Phase.Expect, w.name, w.expect)
		}
		if r.SwitchedAfter < 0 {
			t.Errorf("%s: traffic never settled on %s", r.Phase.Name, w.expect)
		}
		errs += r.Errors
		requests += r.Requests
		for c, n := range r.Served {
			served[c] += n
		}
	}
	// Every phase ends with GET /admin, which the sidecars of the cluster
	// serving that phase refuse, across the gateway when it is another
	// cluster, and record.
	for _, r := range sum.Phases {
		dn := r.Denial
		if unprobed[r.Phase.Name] {
			if dn != nil {
				t.Errorf("%s: a policy probe was sent: %+v", r.Phase.Name, dn)
			}
			continue
		}
		if dn == nil || dn.Code != http.StatusForbidden || dn.Cluster != r.Phase.Expect || dn.Policy != demo.DenyPolicy {
			t.Errorf("%s: GET %s probe %+v; want 403, denied by %s in %s", r.Phase.Name, demo.DeniedPath, dn, demo.DenyPolicy, r.Phase.Expect)
			continue
		}
		var rec audit.Record
		if err := json.Unmarshal(dn.Record, &rec); err != nil {
			t.Errorf("%s: audit record %s: %v", r.Phase.Name, dn.Record, err)
			continue
		}
		if rec.SourcePrincipal != demo.ClientID || rec.SourceCluster != "east-1" || rec.DestinationService != "demo/echo" || rec.Path != demo.DeniedPath {
			t.Errorf("%s: audit record %s; want the client's from east-1 to demo/echo %s", r.Phase.Name, dn.Record, demo.DeniedPath)
		}
		if !strings.Contains(out.String(), string(dn.Record)) {
			t.Errorf("%s: the demo's output does not show the audit record %s", r.Phase.Name, dn.Record)
		}
	}
	steady, failover := sum.Phases[0], sum.Phases[1]
	if steady.Errors != 0 || steady.Served["east-1"] == 0 || len(steady.Served) != 1 {
		t.Errorf("steady state: %d errors, served %v; want every request served by east-1", steady.Errors, steady.Served)
	}
	if failover.Served["west-1"] != 0 {
		t.Errorf("east-1's echo down: west-1 served %d requests; the same region (east-2) comes first", failover.Served["west-1"])
	}
	checkTrafficPhases(t, sum.Phases[4:])
	if jaegerBin != "" {
		checkTraces(t, sum, traces, tracesErr, out.String())
	} else {
		t.Logf("tracing not checked: %s", note)
		if sum.Tracing.On || sum.Tracing.Note != note || !strings.Contains(out.String(), "tracing off: "+note) {
			t.Errorf("without Jaeger: tracing %+v; want it off, saying %q", sum.Tracing, note)
		}
		for _, r := range sum.Phases {
			if r.Trace != nil {
				t.Errorf("%s: a trace check without Jaeger: %+v", r.Phase.Name, r.Trace)
			}
		}
	}

	// Every failed request is one whose retries ran out, or was refused
	// by the retry budget, or found no healthy endpoint.
	if clientPage == "" || retries == 0 {
		t.Fatal("the client sidecar's metrics and config were not read")
	}
	after := retryCounters{
		allowed:         metric(clientPage, "fedmesh_sidecar_lb_retries_total", `result="allowed"`),
		budgetExhausted: metric(clientPage, "fedmesh_sidecar_lb_retries_total", `result="budget_exhausted"`),
		pickFailures:    metric(clientPage, "fedmesh_sidecar_lb_pick_failures_total"),
	}
	if bound := int(after.budgetExhausted) + int(after.pickFailures) + int(after.allowed)/retries; errs > bound {
		t.Errorf("%d of %d requests failed, more than the retry budget accounts for (%d)", errs, requests, bound)
	}
	// The client sidecar counts at least the requests the client saw
	// served by each cluster (it also served the start-up probes).
	for _, c := range []string{"east-1", "east-2", "west-1"} {
		got := metric(clientPage, "fedmesh_sidecar_requests_total", `code="2xx"`, `destination_cluster="`+c+`"`, `direction="outbound"`)
		if int(got) < served[c] || served[c] == 0 {
			t.Errorf("client sidecar counted %.0f requests served by %s, the client saw %d", got, c, served[c])
		}
	}
	// The client sidecar counts the faults it injected apart from real
	// errors: at least those the client saw in the fault phase (it also
	// injected some into the demo's probes of the route in force).
	var faults, delayed int
	for _, r := range sum.Phases {
		faults += r.Faults
		delayed += r.Delayed
	}
	if got := metric(clientPage, "fedmesh_sidecar_faults_injected_total", `fault="abort"`); faults == 0 || int(got) < faults {
		t.Errorf("client sidecar counted %.0f injected aborts, the client saw %d", got, faults)
	}
	if got := metric(clientPage, "fedmesh_sidecar_faults_injected_total", `fault="delay"`); delayed == 0 || int(got) < delayed {
		t.Errorf("client sidecar counted %.0f injected delays, the client saw %d", got, delayed)
	}
	if got := metric(clientPage, "fedmesh_sidecar_request_errors_total", `reason="fault_injected"`); int(got) < faults {
		t.Errorf("client sidecar counted %.0f requests failed with reason fault_injected, the client saw %d aborted", got, faults)
	}
	if ej := metric(clientPage, "fedmesh_sidecar_lb_ejections_total", `reason="consecutive_connect_failure"`); ej < 2 {
		t.Errorf("fedmesh_sidecar_lb_ejections_total{consecutive_connect_failure} = %v, want east-1's two replicas ejected at least", ej)
	}
	// Traffic crossed east-2's and west-1's gateways. (Every gateway,
	// east-1's too, also carries its peers' control planes' health
	// probes, so a gateway's connection count alone cannot show that
	// east-1's carried no traffic.)
	for _, name := range []string{"east-2", "west-1"} {
		if n := metric(gateways[name], "fedmesh_gateway_connections_total"); n == 0 {
			t.Errorf("gateway %s accepted no connections; want the failover traffic through it", name)
		}
	}
	for _, r := range sum.Phases {
		t.Logf("%-22s expect %-6s share %5.1f%%  switched after %-8v requests %4d  errors %3d  error window %v",
			r.Phase.Name, r.Phase.Expect, r.Share, r.SwitchedAfter.Round(time.Millisecond), r.Requests, r.Errors, r.ErrorWindow.Round(time.Millisecond))
	}
	t.Logf("clusters up in %.1fs, %.1fs in all; client sidecar: %.0f retries allowed, %.0f refused, %.0f failed picks",
		sum.StartupSeconds, sum.TotalSeconds, after.allowed, after.budgetExhausted, after.pickFailures)
}

// checkTrafficPhases checks the traffic phases beyond the demo's own
// judgement (which sum.OK already holds): both clients were judged, each
// phase's route reached both, and the figures are the route's.
func checkTrafficPhases(t *testing.T, phases []demo.Result) {
	t.Helper()
	for _, r := range phases {
		if len(r.Callers) != 2 || r.Callers[0].Cluster != "east-1" || r.Callers[1].Cluster != "west-1" {
			t.Errorf("%s: callers %+v, want the clients of east-1 and west-1", r.Phase.Name, r.Callers)
			continue
		}
		if r.SwitchedAfter < 0 || r.Callers[0].Requests != r.Requests {
			t.Errorf("%s: switched after %v, %d requests of east-1's client in the phase and %d among the callers",
				r.Phase.Name, r.SwitchedAfter, r.Requests, r.Callers[0].Requests)
		}
		for _, c := range r.Callers {
			if c.Errors != 0 || c.Requests == 0 || !c.OK {
				t.Errorf("%s: %s's client: %d requests, %d errors, OK %v", r.Phase.Name, c.Cluster, c.Requests, c.Errors, c.OK)
			}
			v2, faults := c.V2 > 0, c.Faults > 0
			var wantV2, wantFaults bool
			switch r.Phase.Name {
			case "canary 10% to echo-v2", "a/b on x-variant":
				wantV2 = true
			case "fault injection":
				wantFaults = true
			}
			if v2 != wantV2 || faults != wantFaults || (c.Delayed > 0) != wantFaults {
				t.Errorf("%s: %s's client: echo-v2 answered %d, %d aborted and %d delayed by a fault; want echo-v2 %v, faults %v",
					r.Phase.Name, c.Cluster, c.V2, c.Faults, c.Delayed, wantV2, wantFaults)
			}
		}
	}
	// East-1's client reached echo-v2 in west-1 (its gateway), and east-2
	// served nobody once the routes were in force.
	for _, r := range phases {
		if r.Served["east-2"] != 0 {
			t.Errorf("%s: east-2 served %d of east-1's requests", r.Phase.Name, r.Served["east-2"])
		}
	}
	if canary := phases[0]; canary.Served["west-1"] != canary.V2 || canary.V2 == 0 {
		t.Errorf("canary: west-1 served %d of east-1's requests, echo-v2 %d; want echo-v2's share alone, some", canary.Served["west-1"], canary.V2)
	}
}

// checkTraces checks the demo's tracing: the failover phases, and only
// they, found a trace from east-1's client into the cluster that served,
// shown with its Jaeger UI URL; and each of those traces is in Jaeger
// with east-1's client span and, under it, the server span of an echo
// sidecar in that cluster which names east-1's client as its caller.
func checkTraces(t *testing.T, sum *demo.Summary, traces []demo.JaegerTrace, tracesErr error, out string) {
	t.Helper()
	if !sum.Tracing.On || sum.Tracing.UI == "" || sum.Tracing.SamplingPercent != demo.TraceSampling {
		t.Errorf("tracing %+v; want on, a UI address, %d%% sampled", sum.Tracing, demo.TraceSampling)
	}
	if tracesErr != nil {
		t.Fatalf("reading the clients' traces from jaeger: %v", tracesErr)
	}
	byID := map[string]demo.JaegerTrace{}
	for _, tr := range traces {
		byID[tr.TraceID] = tr
	}
	traced := map[string]bool{"east-1 echo killed": true, "east-2 echo killed too": true}
	for _, r := range sum.Phases {
		tc := r.Trace
		if !traced[r.Phase.Name] {
			if tc != nil {
				t.Errorf("%s: a trace check in a phase that does not fail over: %+v", r.Phase.Name, tc)
			}
			continue
		}
		if tc == nil || tc.ID == "" {
			t.Errorf("%s: no trace found: %+v", r.Phase.Name, tc)
			continue
		}
		if len(tc.Clusters) < 2 || tc.Clusters[0] != "east-1" || tc.Clusters[len(tc.Clusters)-1] != r.Phase.Expect || tc.URL != sum.Tracing.UI+"/trace/"+tc.ID {
			t.Errorf("%s: trace %+v; want one from east-1 to %s at %s", r.Phase.Name, tc, r.Phase.Expect, sum.Tracing.UI+"/trace/"+tc.ID)
		}
		if !strings.Contains(out, "trace "+tc.ID+" crossed east-1 -> ") || !strings.Contains(out, tc.URL) {
			t.Errorf("%s: the demo's output does not show trace %s and its URL", r.Phase.Name, tc.ID)
		}
		tr, ok := byID[tc.ID]
		if !ok {
			t.Errorf("%s: jaeger has no trace %s among %d traces of %s", r.Phase.Name, tc.ID, len(traces), demo.ClientService)
			continue
		}
		var client string
		tags := func(s demo.JaegerSpan) map[string]string {
			m := map[string]string{}
			for _, kv := range s.Tags {
				m[kv.Key] = fmt.Sprint(kv.Value)
			}
			return m
		}
		for _, s := range tr.Spans {
			if m := tags(s); m["span.kind"] == "client" && m["fedmesh.cluster"] == "east-1" && tr.Processes[s.ProcessID].ServiceName == demo.ClientService {
				client = s.SpanID
			}
		}
		served := false
		for _, s := range tr.Spans {
			m := tags(s)
			if m["span.kind"] != "server" || m["fedmesh.cluster"] != r.Phase.Expect {
				continue
			}
			if len(s.References) != 1 || s.References[0].SpanID != client || client == "" {
				t.Errorf("%s: trace %s: server span in %s has references %+v, want a child of east-1's client span %q", r.Phase.Name, tc.ID, r.Phase.Expect, s.References, client)
			}
			if m["fedmesh.source_cluster"] != "east-1" || m["fedmesh.source_principal"] != demo.ClientID || !strings.HasPrefix(tr.Processes[s.ProcessID].ServiceName, "echo-") {
				t.Errorf("%s: trace %s: server span of %s with source %s %s; want an echo sidecar called by east-1's client",
					r.Phase.Name, tc.ID, tr.Processes[s.ProcessID].ServiceName, m["fedmesh.source_cluster"], m["fedmesh.source_principal"])
			}
			served = true
		}
		if !served {
			t.Errorf("%s: trace %s in jaeger has no server span in %s", r.Phase.Name, tc.ID, r.Phase.Expect)
		}
		t.Logf("%s: trace %s crossed %s (%d spans): %s", r.Phase.Name, tc.ID, tc.Crossing(), len(tr.Spans), tc.URL)
	}
}

// otherCaller is the demo's other client's cluster.
func otherCaller(c string) string {
	if c == "east-1" {
		return "west-1"
	}
	return "east-1"
}
