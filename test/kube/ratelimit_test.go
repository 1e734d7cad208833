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

const rateLimitNS = "ratelimit"

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
	cp := startPolicyCP(t, rateLimitNS, kube.RateLimitPolicyResource)
	rps, src, reg, object := cp.objs, cp.src, cp.reg, cp.object
	ctx := context.Background()

	// inForce checks the RateLimitPolicys in force, and keeps them in got.
	var got []policy.RateLimitPolicy
	inForce := func(want string) func() error {
		return cp.inForce(want, func(tr policy.Traffic) []string {
			got = tr.RateLimits
			var names []string
			for _, p := range tr.RateLimits {
				names = append(names, p.Name)
			}
			return names
		})
	}
	poll.Until(t, 30*time.Second, "no RateLimitPolicy, ready", inForce(""))
	echoDoc := `
apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
spec:
  targetRefs: [{kind: Service, name: echo}]
  local:
  - {name: per-caller, key: {type: Principal}, requests: 50, interval: 1s, burst: 100}
  - {name: writes, match: {methods: [POST], ports: ["8080"]}, requests: 5, interval: 1m}
  quotas:
  - {name: shared, principals: ["spiffe://fedmesh.local/ns/batch/*"], requests: 600, interval: 1m}
`
	for _, o := range []*unstructured.Unstructured{
		object("echo", echoDoc),
		object("namespace", "apiVersion: fedmesh.io/v1alpha1\nkind: RateLimitPolicy\nspec: {tcp: {connectionsPerSecond: 20}}\n"),
		object("missing", "apiVersion: fedmesh.io/v1alpha1\nkind: RateLimitPolicy\nspec: {targetRefs: [{kind: Service, name: nope}], local: [{name: a, requests: 1, interval: 1s}]}\n"),
	} {
		if _, err := rps.Create(ctx, o, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	poll.Until(t, 30*time.Second, "the three policies in force", inForce("echo, missing, namespace"))
	if s := got[0].Spec; len(s.Local) != 2 || s.Local[0].Burst != 100 || s.Local[1].Match == nil || s.Local[1].Match.Ports[0] != 8080 ||
		len(s.Quotas) != 1 || s.Quotas[0].Interval.Duration != time.Minute {
		t.Errorf("echo in force: %+v", s)
	}

	cond := func(name, typ string, status metav1.ConditionStatus, reason, msg string) func() error {
		return func() error {
			u, err := rps.Get(ctx, name, metav1.GetOptions{})
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
			return checkCondition("RateLimitPolicy "+name, st.Conditions, u.GetGeneration(), typ, status, reason, msg)
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
		{"missing", kube.PolicyConditionResolvedRefs, metav1.ConditionFalse, kube.PolicyReasonBackendNotFound, "spec.targetRefs[0]: Service ratelimit/nope does not exist"},
	} {
		poll.Until(t, 30*time.Second, w.name+" "+w.typ, cond(w.name, w.typ, w.status, w.reason, w.msg))
	}

	// The CRD schema refuses zero requests at the API server.
	if _, err := rps.Create(ctx, object("zero", "apiVersion: fedmesh.io/v1alpha1\nkind: RateLimitPolicy\nspec: {local: [{name: a, requests: 0, interval: 1s}]}\n"),
		metav1.CreateOptions{FieldValidation: "Strict"}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "requests") {
		t.Errorf("zero requests: %v, want the API server's refusal naming requests", err)
	}

	// A bad edit the schema lets through: two limits of one name.
	// Refused whole; the last good version stays in force.
	cur, err := rps.Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := object("echo", strings.Replace(echoDoc, "name: writes", "name: per-caller", 1))
	bad.SetResourceVersion(cur.GetResourceVersion())
	if _, err := rps.Update(ctx, bad, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
		t.Fatalf("the API server refuses the bad edit, which it should let through: %v", err)
	}
	const field = `spec.local[1].name "per-caller": the same name as spec.local[0]`
	poll.Until(t, 30*time.Second, "the bad edit refused", cond("echo", kube.PolicyConditionAccepted, metav1.ConditionFalse, kube.PolicyReasonInvalid, field))
	if err := cond("echo", kube.PolicyConditionAccepted, metav1.ConditionFalse, kube.PolicyReasonInvalid, "the last accepted version (generation 1) stays in force")(); err != nil {
		t.Error(err)
	}
	poll.Until(t, 10*time.Second, "the bad edit listed with its field", func() error {
		for _, p := range src.Problems() {
			if p.Object == "RateLimitPolicy ratelimit/echo" && p.Reason == source.ReasonInvalid && strings.Contains(p.Error(), field) {
				return nil
			}
		}
		return fmt.Errorf("problems %v", src.Problems())
	})
	if err := inForce("echo, missing, namespace")(); err != nil {
		t.Error(err)
	}
	if l := got[0].Spec.Local; len(l) != 2 || l[1].Name != "writes" {
		t.Errorf("echo in force after the bad edit has limits %+v, want the last good version's", l)
	}
	if n := counter2(t, reg, "fedmesh_kube_source_traffic_rejected_total", "kind", policy.KindRateLimitPolicy, "reason", "invalid"); n != 1 {
		t.Errorf("traffic rejected{RateLimitPolicy,invalid} = %v, want 1", n)
	}

	// A delete removes the policy.
	if err := rps.Delete(ctx, "namespace", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the deleted policy gone", inForce("echo, missing"))
}
