package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
)

const telemetryNS = "telemetry"

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
	cp := startPolicyCP(t, telemetryNS, kube.TelemetryPolicyResource)
	tps, src, reg, object := cp.objs, cp.src, cp.reg, cp.object
	ctx := context.Background()

	// inForce checks the TelemetryPolicys in force, and keeps them in got.
	var got []policy.TelemetryPolicy
	inForce := func(want string) func() error {
		return cp.inForce(want, func(tr policy.Traffic) []string {
			got = tr.Telemetry
			var names []string
			for _, p := range tr.Telemetry {
				names = append(names, p.Name)
			}
			return names
		})
	}
	poll.Until(t, 30*time.Second, "no TelemetryPolicy, ready", inForce(""))
	echoDoc := `
apiVersion: fedmesh.io/v1alpha1
kind: TelemetryPolicy
spec:
  targetRefs: [{kind: Service, name: echo}]
  tracing: {samplingPercent: 12.5, customTags: {team: payments}}
  accessLog: {enabled: true, filter: errors}
`
	for _, o := range []*unstructured.Unstructured{
		object("echo", echoDoc),
		object("namespace", "apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nspec: {accessLog: {enabled: true}}\n"),
		object("missing", "apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nspec: {targetRefs: [{kind: Service, name: nope}], tracing: {samplingPercent: 100}}\n"),
	} {
		if _, err := tps.Create(ctx, o, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	poll.Until(t, 30*time.Second, "the three policies in force", inForce("echo, missing, namespace"))
	if s := got[0].Spec; s.Tracing == nil || s.Tracing.SamplingPercent == nil || *s.Tracing.SamplingPercent != 12.5 ||
		s.Tracing.CustomTags["team"] != "payments" || s.AccessLog == nil || s.AccessLog.Filter != policy.AccessLogErrors {
		t.Errorf("echo in force: %+v", s)
	}

	cond := func(name, typ string, status metav1.ConditionStatus, reason, msg string) func() error {
		return func() error {
			u, err := tps.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			var st struct {
				Conditions []metav1.Condition `json:"conditions"`
			}
			if raw, ok, _ := unstructured.NestedMap(u.Object, "status"); ok {
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st); err != nil {
					return err
				}
			}
			return checkCondition("TelemetryPolicy "+name, st.Conditions, u.GetGeneration(), typ, status, reason, msg)
		}
	}
	for _, w := range []struct {
		name, typ string
		status    metav1.ConditionStatus
		reason    string
		msg       string
	}{
		{"echo", kube.PolicyConditionAccepted, metav1.ConditionTrue, kube.PolicyReasonAccepted, "in force"},
		{"echo", kube.PolicyConditionResolvedRefs, metav1.ConditionTrue, kube.PolicyReasonResolvedRefs, ""},
		{"namespace", kube.PolicyConditionAccepted, metav1.ConditionTrue, kube.PolicyReasonAccepted, ""},
		{"missing", kube.PolicyConditionAccepted, metav1.ConditionTrue, kube.PolicyReasonAccepted, ""},
		{"missing", kube.PolicyConditionResolvedRefs, metav1.ConditionFalse, kube.PolicyReasonBackendNotFound, "spec.targetRefs[0]: Service telemetry/nope does not exist"},
	} {
		poll.Until(t, 30*time.Second, w.name+" "+w.typ, cond(w.name, w.typ, w.status, w.reason, w.msg))
	}

	// The CRD schema refuses a sampling share above 100 at the API
	// server.
	if _, err := tps.Create(ctx, object("too-much", "apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nspec: {tracing: {samplingPercent: 150}}\n"),
		metav1.CreateOptions{FieldValidation: "Strict"}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "samplingPercent") {
		t.Errorf("sampling 150: %v, want the API server's refusal naming samplingPercent", err)
	}

	// A bad edit the schema lets through: a tag name reserved for the
	// sidecar. Refused whole; the last good version stays in force.
	cur, err := tps.Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := object("echo", strings.Replace(echoDoc, "team: payments", "fedmesh.cluster: spoofed", 1))
	bad.SetResourceVersion(cur.GetResourceVersion())
	if _, err := tps.Update(ctx, bad, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
		t.Fatalf("the API server refuses the bad edit, which it should let through: %v", err)
	}
	const field = `spec.tracing.customTags "fedmesh.cluster"`
	poll.Until(t, 30*time.Second, "the bad edit refused", cond("echo", kube.PolicyConditionAccepted, metav1.ConditionFalse, kube.PolicyReasonInvalid, field))
	if err := cond("echo", kube.PolicyConditionAccepted, metav1.ConditionFalse, kube.PolicyReasonInvalid, "the last accepted version (generation 1) stays in force")(); err != nil {
		t.Error(err)
	}
	poll.Until(t, 10*time.Second, "the bad edit listed with its field", func() error {
		for _, p := range src.Problems() {
			if p.Object == "TelemetryPolicy telemetry/echo" && p.Reason == source.ReasonInvalid && strings.Contains(p.Error(), field) {
				return nil
			}
		}
		return fmt.Errorf("problems %v", src.Problems())
	})
	if err := inForce("echo, missing, namespace")(); err != nil {
		t.Error(err)
	}
	if tags := got[0].Spec.Tracing.CustomTags; tags["team"] != "payments" || len(tags) != 1 {
		t.Errorf("echo in force after the bad edit has tags %v, want the last good version's", tags)
	}
	if n := counter2(t, reg, "fedmesh_kube_source_traffic_rejected_total", "kind", policy.KindTelemetryPolicy, "reason", "invalid"); n != 1 {
		t.Errorf("traffic rejected{TelemetryPolicy,invalid} = %v, want 1", n)
	}

	// A delete removes the policy.
	if err := tps.Delete(ctx, "namespace", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the deleted policy gone", inForce("echo, missing"))
}
