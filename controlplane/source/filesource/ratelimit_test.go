package filesource

import (
	"strings"
	"testing"

	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
)

const echoRateLimit = `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: echo-limits, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  local:
  - {name: per-caller, key: {type: Principal}, requests: 50, interval: 1s}
  quotas:
  - {name: shared, requests: 600, interval: 1m}
`

// TestRateLimitPolicies reads RateLimitPolicies as traffic objects,
// counts them by kind, refuses a bad one with its field and keeps the
// last good set.
func TestRateLimitPolicies(t *testing.T) {
	dir := t.TempDir()
	s := newSource(t, dir, nil)
	writeFiles(t, dir, map[string]string{
		"echo.yaml":   docs(echoService, echoExport),
		"limits.yaml": echoRateLimit,
	})
	_, problems := s.Load()
	checkProblems(t, nil, problems)
	const good = "RateLimitPolicy demo/echo-limits"
	tr, ready, ch := s.Traffic()
	if !ready || trafficKeys(tr) != good {
		t.Fatalf("ready %v, %q; want %q", ready, trafficKeys(tr), good)
	}
	if got := tr.RateLimits[0].Spec.Local[0].Requests; got != 50 {
		t.Errorf("requests %d, want 50", got)
	}
	if got := gaugeValue(t, s.trafficN.WithLabelValues(policy.KindRateLimitPolicy)); got != 1 {
		t.Errorf("fedmesh_source_traffic_objects{kind=RateLimitPolicy} = %v, want 1", got)
	}

	// Zero requests: the file is refused with the field named, counted,
	// and the last good policy stays in force.
	writeFiles(t, dir, map[string]string{"limits.yaml": strings.Replace(echoRateLimit, "requests: 50", "requests: 0", 1)})
	_, problems = s.Load()
	checkProblems(t, []probe{{File: "limits.yaml", Doc: 1, Object: "RateLimitPolicy demo/echo-limits", Reason: source.ReasonInvalid,
		Msg: `spec.local[0].requests "0": must be at least 1`}}, problems)
	if got := counterValue(t, s.rejected.WithLabelValues(string(source.ReasonInvalid))); got != 1 {
		t.Errorf("rejected{reason=invalid} = %v, want 1", got)
	}
	tr, _, _ = s.Traffic()
	if trafficKeys(tr) != good || tr.RateLimits[0].Spec.Local[0].Requests != 50 {
		t.Errorf("after a bad file: %q, want the last good policy", trafficKeys(tr))
	}
	if closed(ch) {
		t.Error("the change channel closed though nothing in force changed")
	}

	// A good change replaces it and signals.
	writeFiles(t, dir, map[string]string{"limits.yaml": strings.Replace(echoRateLimit, "requests: 50", "requests: 70", 1)})
	_, problems = s.Load()
	checkProblems(t, nil, problems)
	if tr, _, _ := s.Traffic(); tr.RateLimits[0].Spec.Local[0].Requests != 70 {
		t.Errorf("after the change: requests %d, want 70", tr.RateLimits[0].Spec.Local[0].Requests)
	}
	if !closed(ch) {
		t.Error("the change channel is not closed after the set changed")
	}
}
