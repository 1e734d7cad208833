package filesource

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
)

const (
	canaryRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-canary, namespace: demo}
spec:
  parentRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo}]
  rules:
  - backendRefs:
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 8080, weight: 90}
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080, weight: 10}
`
	chaosRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-chaos, namespace: demo}
spec:
  parentRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo}]
  rules:
  - matches: [{headers: [{name: x-chaos, value: "on"}]}]
    filters: [{type: ExtensionRef, extensionRef: {group: fedmesh.io, kind: FaultInjection, name: echo-chaos}}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 8080}]
`
	chaosFault = `apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: {name: echo-chaos, namespace: demo}
spec: {abort: {httpStatus: 503, percentage: 10}}
`
	greeterRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: greeter}]
  rules:
  - matches: [{method: {service: helloworld.Greeter}}]
    backendRefs: [{name: greeter, port: 50051}]
`
	echoResilience = `apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
metadata: {name: echo, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  retry: {attempts: 3}
`
)

// trafficKeys renders the objects in force as "Kind ns/name" in order.
func trafficKeys(t policy.Traffic) string {
	var keys []string
	for _, r := range t.HTTPRoutes {
		keys = append(keys, "HTTPRoute "+r.Namespace+"/"+r.Name)
	}
	for _, r := range t.GRPCRoutes {
		keys = append(keys, "GRPCRoute "+r.Namespace+"/"+r.Name)
	}
	for _, p := range t.Resilience {
		keys = append(keys, "ResiliencePolicy "+p.Key())
	}
	for _, f := range t.Faults {
		keys = append(keys, "FaultInjection "+f.Key())
	}
	for _, p := range t.Telemetry {
		keys = append(keys, "TelemetryPolicy "+p.Key())
	}
	for _, p := range t.RateLimits {
		keys = append(keys, "RateLimitPolicy "+p.Key())
	}
	return strings.Join(keys, ", ")
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestTraffic reads the four traffic kinds beside Services, keeps them
// out of the exports, refuses a bad file as a whole (keeping its last
// good objects) and counts it.
func TestTraffic(t *testing.T) {
	dir := t.TempDir()
	s := newSource(t, dir, nil)
	if tr, ready, _ := s.Traffic(); ready || !tr.Empty() {
		t.Fatalf("before any read: ready %v, %q; want not ready, nothing", ready, trafficKeys(tr))
	}
	_, _, ch0 := s.Traffic()
	writeFiles(t, dir, map[string]string{
		"echo.yaml":    docs(echoService, echoExport),
		"traffic.yaml": docs(canaryRoute, chaosRoute, chaosFault, greeterRoute, echoResilience),
	})
	exports, problems := s.Load()
	checkProblems(t, nil, problems)
	if len(exports) != 1 {
		t.Fatalf("exports: %d, want 1 (traffic objects are not exported services)", len(exports))
	}
	const all = "HTTPRoute demo/echo-canary, HTTPRoute demo/echo-chaos, GRPCRoute demo/greeter, ResiliencePolicy demo/echo, FaultInjection demo/echo-chaos"
	tr, ready, ch1 := s.Traffic()
	if !ready || trafficKeys(tr) != all {
		t.Fatalf("after the first read: ready %v, %q; want %q", ready, trafficKeys(tr), all)
	}
	if !closed(ch0) {
		t.Error("the change channel taken before the read is not closed")
	}
	if got := gaugeValue(t, s.trafficN.WithLabelValues(policy.KindHTTPRoute)); got != 2 {
		t.Errorf("fedmesh_source_traffic_objects{kind=HTTPRoute} = %v, want 2", got)
	}

	// A backendRef without a port: the whole file is refused with the
	// file, document, object and field; it is counted; the last good
	// objects stay.
	bad := strings.Replace(canaryRoute, "name: echo-v2, port: 8080, ", "name: echo-v2, ", 1)
	writeFiles(t, dir, map[string]string{"traffic.yaml": docs(bad, chaosRoute, chaosFault, greeterRoute, echoResilience)})
	_, problems = s.Load()
	checkProblems(t, []probe{{File: "traffic.yaml", Doc: 1, Object: "HTTPRoute demo/echo-canary", Reason: source.ReasonInvalid,
		Msg: `spec.rules[0].backendRefs[1].port: required`}}, problems)
	if got := counterValue(t, s.rejected.WithLabelValues(string(source.ReasonInvalid))); got != 1 {
		t.Errorf("rejected{reason=invalid} = %v, want 1", got)
	}
	if tr, _, _ := s.Traffic(); trafficKeys(tr) != all {
		t.Errorf("after a bad file: %q, want the last good set", trafficKeys(tr))
	}
	if closed(ch1) {
		t.Error("the change channel closed though the objects in force did not change")
	}

	// An unknown field is a parse problem naming the field.
	writeFiles(t, dir, map[string]string{"traffic.yaml": strings.Replace(chaosFault, "abort:", "abortt:", 1)})
	_, problems = s.Load()
	checkProblems(t, []probe{{File: "traffic.yaml", Doc: 1, Object: "FaultInjection demo/echo-chaos", Reason: source.ReasonParse, Msg: `unknown field "spec.abortt"`}}, problems)

	// A good change replaces the set and closes the channel.
	writeFiles(t, dir, map[string]string{"traffic.yaml": docs(greeterRoute, echoResilience)})
	_, problems = s.Load()
	checkProblems(t, nil, problems)
	if tr, _, _ := s.Traffic(); trafficKeys(tr) != "GRPCRoute demo/greeter, ResiliencePolicy demo/echo" {
		t.Errorf("after the fix: %q", trafficKeys(tr))
	}
	if !closed(ch1) {
		t.Error("the change channel is not closed after the set changed")
	}
	if got := gaugeValue(t, s.trafficN.WithLabelValues(policy.KindHTTPRoute)); got != 0 {
		t.Errorf("fedmesh_source_traffic_objects{kind=HTTPRoute} = %v, want 0", got)
	}
}

// TestTrafficMissingFaultInjection refuses a route whose ExtensionRef
// names no FaultInjection, as a whole and with a problem, and takes it
// when the FaultInjection comes; the other routes are not touched.
func TestTrafficMissingFaultInjection(t *testing.T) {
	dir := t.TempDir()
	s := newSource(t, dir, nil)
	writeFiles(t, dir, map[string]string{"routes.yaml": docs(canaryRoute, chaosRoute)})
	_, problems := s.Load()
	missing := []probe{{File: "routes.yaml", Doc: 2, Object: "HTTPRoute demo/echo-chaos", Reason: source.ReasonUnmatched,
		Msg: "spec.rules[0].filters[0].extensionRef: BackendNotFound: FaultInjection demo/echo-chaos does not exist"}}
	checkProblems(t, missing, problems)
	if tr, _, _ := s.Traffic(); trafficKeys(tr) != "HTTPRoute demo/echo-canary" {
		t.Errorf("with the fault missing: %q, want the canary alone", trafficKeys(tr))
	}
	if got := counterValue(t, s.rejected.WithLabelValues(string(source.ReasonUnmatched))); got != 1 {
		t.Errorf("rejected{reason=unmatched} = %v, want 1", got)
	}

	// A FaultInjection in another namespace does not resolve it.
	writeFiles(t, dir, map[string]string{"faults.yaml": strings.Replace(chaosFault, "namespace: demo", "namespace: shop", 1)})
	_, problems = s.Load()
	checkProblems(t, missing, problems)
	if got := counterValue(t, s.rejected.WithLabelValues(string(source.ReasonUnmatched))); got != 1 {
		t.Errorf("rejected{reason=unmatched} = %v, want 1 (a problem that persists is counted once)", got)
	}

	writeFiles(t, dir, map[string]string{"faults.yaml": chaosFault})
	_, problems = s.Load()
	checkProblems(t, nil, problems)
	const both = "HTTPRoute demo/echo-canary, HTTPRoute demo/echo-chaos, FaultInjection demo/echo-chaos"
	if tr, _, _ := s.Traffic(); trafficKeys(tr) != both {
		t.Errorf("with the fault: %q, want %q", trafficKeys(tr), both)
	}
}

// TestTrafficDuplicate keeps the first of two routes with one namespace
// and name.
func TestTrafficDuplicate(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": canaryRoute, "b.yaml": strings.Replace(canaryRoute, "weight: 90", "weight: 50", 1)})
	s := newSource(t, dir, nil)
	_, problems := s.Load()
	checkProblems(t, []probe{{File: "b.yaml", Doc: 1, Object: "HTTPRoute demo/echo-canary", Reason: source.ReasonDuplicate, Msg: "already defined in a.yaml document 1"}}, problems)
	tr, _, _ := s.Traffic()
	if len(tr.HTTPRoutes) != 1 || *tr.HTTPRoutes[0].Spec.Rules[0].BackendRefs[0].Weight != 90 {
		t.Errorf("routes %q, want the first canary (weight 90)", trafficKeys(tr))
	}
}

// TestTrafficWatch changes traffic files under a running source: the
// watch brings each change into force, and deleting the FaultInjection's
// file refuses the route that uses it.
func TestTrafficWatch(t *testing.T) {
	dir := t.TempDir()
	s := newSource(t, dir, func(c *Config) {
		c.Debounce = 10 * time.Millisecond
		c.Rescan = time.Hour
	})
	run(t, s)
	waitTraffic := func(want string) {
		t.Helper()
		poll.Until(t, 20*time.Second, "traffic "+want, func() error {
			tr, ready, _ := s.Traffic()
			if got := trafficKeys(tr); !ready || got != want {
				return fmt.Errorf("ready %v, traffic %q", ready, got)
			}
			return nil
		})
	}
	waitTraffic("")
	writeFiles(t, dir, map[string]string{"route.yaml": docs(canaryRoute, chaosRoute), "fault.yaml": chaosFault})
	waitTraffic("HTTPRoute demo/echo-canary, HTTPRoute demo/echo-chaos, FaultInjection demo/echo-chaos")

	if err := os.Remove(filepath.Join(dir, "fault.yaml")); err != nil {
		t.Fatal(err)
	}
	waitTraffic("HTTPRoute demo/echo-canary")
	waitProblems(t, s, "the chaos route refused", func(p []source.Problem) bool {
		return len(p) == 1 && p[0].Object == "HTTPRoute demo/echo-chaos" && p[0].Reason == source.ReasonUnmatched
	})
}

// TestTrafficExamples loads examples/traffic as a cluster directory
// would hold them.
func TestTrafficExamples(t *testing.T) {
	s, err := New(Config{Dir: filepath.Join("..", "..", "..", "examples", "traffic"), Cluster: "east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, problems := s.Load(); len(problems) != 0 {
		t.Fatalf("problems = %v, want none", problems)
	}
	tr, ready, _ := s.Traffic()
	const want = "HTTPRoute demo/echo-ab, HTTPRoute demo/echo-canary, HTTPRoute demo/echo-chaos, GRPCRoute demo/greeter, ResiliencePolicy demo/echo-resilience, FaultInjection demo/echo-chaos, RateLimitPolicy demo/echo-limits"
	if !ready || trafficKeys(tr) != want {
		t.Errorf("ready %v, traffic %q; want %q", ready, trafficKeys(tr), want)
	}
}
