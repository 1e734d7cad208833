package kube

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fedmesh/fedmesh/policy"
)

const rateLimitDoc = `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
spec:
  targetRefs: [{kind: Service, name: echo}]
  local: [{name: per-caller, key: {type: Principal}, requests: 50, interval: 1s}]
  quotas: [{name: shared, requests: 600, interval: 1m}]
`

// TestEvaluateRateLimitPolicy: a RateLimitPolicy is in force with
// Accepted and ResolvedRefs; a bad edit is refused with the field named
// and the last good version stays; a missing target does not refuse it.
func TestEvaluateRateLimitPolicy(t *testing.T) {
	refs := trafficRefs{
		service:       func(ns, name string) bool { return ns == "demo" && name == "echo" },
		serviceImport: func(string, string) bool { return false },
	}
	good := trafficObj(t, "limits", 1, rateLimitDoc)
	ev := evaluateTraffic(trafficObjects{policy.KindRateLimitPolicy: {good}}, nil, refs)
	want := summary{
		Status: map[string][]string{"RateLimitPolicy limits": {
			"Accepted=True Accepted gen=1: the policy is in force",
			"ResolvedRefs=True ResolvedRefs gen=1: every targetRef names an existing Service or ServiceImport",
		}},
		LastGood: []string{"u-limits"},
	}
	if d := cmp.Diff(want, summarize(ev)); d != "" {
		t.Errorf("good policy (-want +got):\n%s", d)
	}
	if len(ev.inForce.RateLimits) != 1 || ev.inForce.RateLimits[0].Spec.Local[0].Requests != 50 {
		t.Fatalf("in force: %+v", ev.inForce.RateLimits)
	}

	bad := trafficObj(t, "limits", 2, strings.Replace(rateLimitDoc, "requests: 50", "requests: 0", 1))
	ev = evaluateTraffic(trafficObjects{policy.KindRateLimitPolicy: {bad}}, ev.lastGood, refs)
	got := summarize(ev)
	st := got.Status["RateLimitPolicy limits"]
	if len(st) != 2 || !strings.HasPrefix(st[0], "Accepted=False Invalid gen=2: ") || !strings.Contains(st[0], `spec.local[0].requests "0": must be at least 1`) ||
		!strings.Contains(st[0], "the last accepted version (generation 1) stays in force") {
		t.Errorf("bad edit status %q", st)
	}
	if len(ev.inForce.RateLimits) != 1 || ev.inForce.RateLimits[0].Spec.Local[0].Requests != 50 || len(ev.problems) != 1 {
		t.Errorf("after a bad edit: in force %+v, problems %v; want the last good policy and one problem", ev.inForce.RateLimits, ev.problems)
	}
	if _, ok := ev.lastGood[types.UID("u-limits")]; !ok {
		t.Error("the last good version was dropped")
	}

	other := trafficObj(t, "limits", 3, strings.Replace(rateLimitDoc, "name: echo}", "name: other}", 1))
	got = summarize(evaluateTraffic(trafficObjects{policy.KindRateLimitPolicy: {other}}, nil, refs))
	if st := got.Status["RateLimitPolicy limits"]; len(st) != 2 || st[0] != "Accepted=True Accepted gen=3: the policy is in force" ||
		st[1] != "ResolvedRefs=False BackendNotFound gen=3: spec.targetRefs[0]: Service demo/other does not exist" {
		t.Errorf("missing target: %q", st)
	}
}
