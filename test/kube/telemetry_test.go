package kube

import (
	"fmt"
	"testing"

	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/policy"
)

// TestTelemetryPolicies runs a control plane (Source and Sink, with
// leader election, as the control plane's ServiceAccount) against a real
// API server with deploy/'s TelemetryPolicy CRD: a policy targeting an
// existing Service and a namespace-wide one are in force, Accepted and
// ResolvedRefs are written back; a targetRef naming no Service is
// ResolvedRefs=False/BackendNotFound but in force; the CRD schema
// refuses a sampling share above 100; a bad edit it lets through (a
// reserved tag name) is refused with the field named, counted, and the
// last good version stays in force.
func TestTelemetryPolicies(t *testing.T) {
	policyScenario{
		kind: policy.KindTelemetryPolicy,
		names: func(tr policy.Traffic) (names []string) {
			for _, p := range tr.Telemetry {
				names = append(names, p.Name)
			}
			return names
		},
		echo: `
apiVersion: fedmesh.io/v1alpha1
kind: TelemetryPolicy
spec:
  targetRefs: [{kind: Service, name: echo}]
  tracing: {samplingPercent: 12.5, customTags: {team: payments}}
  accessLog: {enabled: true, filter: errors}
`,
		namespace: "apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nspec: {accessLog: {enabled: true}}\n",
		missing:   "apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nspec: {targetRefs: [{kind: Service, name: nope}], tracing: {samplingPercent: 100}}\n",
		checkEcho: func(tr policy.Traffic) error {
			if s := tr.Telemetry[0].Spec; s.Tracing == nil || s.Tracing.SamplingPercent == nil || *s.Tracing.SamplingPercent != 12.5 ||
				s.Tracing.CustomTags["team"] != "payments" || s.AccessLog == nil || s.AccessLog.Filter != policy.AccessLogErrors {
				return fmt.Errorf("%+v", s)
			}
			return nil
		},
		// The CRD schema refuses a sampling share above 100 at the API
		// server.
		schemaBad:   "apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nspec: {tracing: {samplingPercent: 150}}\n",
		schemaField: "samplingPercent",
		// A tag name reserved for the sidecar.
		badFrom: "team: payments", badTo: "fedmesh.cluster: spoofed",
		badField: `spec.tracing.customTags "fedmesh.cluster"`,
		checkLastGood: func(tr policy.Traffic) error {
			if tags := tr.Telemetry[0].Spec.Tracing.CustomTags; tags["team"] != "payments" || len(tags) != 1 {
				return fmt.Errorf("tags %v", tags)
			}
			return nil
		},
	}.run(startPolicyCP(t, "telemetry", kube.TelemetryPolicyResource))
}
