package kube

import (
	"fmt"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/policy"
)

// TestRateLimitPolicies runs a control plane (Source and Sink, with
// leader election, as the control plane's ServiceAccount) against a real
// API server with deploy/'s RateLimitPolicy CRD: a policy targeting an
// existing Service and a namespace-wide TCP one are in force, Accepted
// and ResolvedRefs are written back; a targetRef naming no Service is
// ResolvedRefs=False/BackendNotFound but in force; the CRD schema refuses
// zero requests; a bad edit it lets through (two limits of one name) is
// refused with the field named, counted, and the last good version stays
// in force.
func TestRateLimitPolicies(t *testing.T) {
	policyScenario{
		kind: policy.KindRateLimitPolicy,
		names: func(tr policy.Traffic) (names []string) {
			for _, p := range tr.RateLimits {
				names = append(names, p.Name)
			}
			return names
		},
		echo: `
apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
spec:
  targetRefs: [{kind: Service, name: echo}]
  local:
  - {name: per-caller, key: {type: Principal}, requests: 50, interval: 1s, burst: 100}
  - {name: writes, match: {methods: [POST], ports: ["8080"]}, requests: 5, interval: 1m}
  quotas:
  - {name: shared, principals: ["spiffe://fedmesh.local/ns/batch/*"], requests: 600, interval: 1m}
`,
		namespace: "apiVersion: fedmesh.io/v1alpha1\nkind: RateLimitPolicy\nspec: {tcp: {connectionsPerSecond: 20}}\n",
		missing:   "apiVersion: fedmesh.io/v1alpha1\nkind: RateLimitPolicy\nspec: {targetRefs: [{kind: Service, name: nope}], local: [{name: a, requests: 1, interval: 1s}]}\n",
		checkEcho: func(tr policy.Traffic) error {
			if s := tr.RateLimits[0].Spec; len(s.Local) != 2 || s.Local[0].Burst != 100 || s.Local[1].Match == nil || s.Local[1].Match.Ports[0] != 8080 ||
				len(s.Quotas) != 1 || s.Quotas[0].Interval.Duration != time.Minute {
				return fmt.Errorf("%+v", s)
			}
			return nil
		},
		// The CRD schema refuses zero requests at the API server.
		schemaBad:   "apiVersion: fedmesh.io/v1alpha1\nkind: RateLimitPolicy\nspec: {local: [{name: a, requests: 0, interval: 1s}]}\n",
		schemaField: "requests",
		// Two limits of one name.
		badFrom: "name: writes", badTo: "name: per-caller",
		badField: `spec.local[1].name "per-caller": the same name as spec.local[0]`,
		checkLastGood: func(tr policy.Traffic) error {
			if l := tr.RateLimits[0].Spec.Local; len(l) != 2 || l[1].Name != "writes" {
				return fmt.Errorf("limits %+v", l)
			}
			return nil
		},
	}.run(startPolicyCP(t, "ratelimit", kube.RateLimitPolicyResource))
}
