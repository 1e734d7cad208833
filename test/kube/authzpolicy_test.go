package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
)

const authzNS = "authz"

// authzPolicy is an AuthorizationPolicy of namespace authz from the YAML
// of its spec.
func authzPolicy(t *testing.T, name, spec string) *unstructured.Unstructured {
	t.Helper()
	var s map[string]any
	if err := yaml.Unmarshal([]byte(spec), &s); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": policy.APIVersion, "kind": policy.Kind,
		"metadata": map[string]any{"name": name, "namespace": authzNS},
		"spec":     s,
	}}
}

// policyConditions reads an AuthorizationPolicy's conditions and
// generation as the API server has them.
func policyConditions(ctx context.Context, admin kube.Clients, name string) (map[string]metav1.Condition, *unstructured.Unstructured, error) {
	u, err := admin.Dynamic.Resource(kube.PolicyResource).Namespace(authzNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	var st struct {
		Conditions []metav1.Condition `json:"conditions"`
	}
	if raw, ok, _ := unstructured.NestedMap(u.Object, "status"); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st); err != nil {
			return nil, nil, err
		}
	}
	out := map[string]metav1.Condition{}
	for _, c := range st.Conditions {
		out[c.Type] = c
	}
	return out, u, nil
}

// wantCondition returns a poll condition: the named policy carries a
// condition of type typ with this status and reason, observed at the
// object's current generation, whose message holds msg.
func wantCondition(ctx context.Context, admin kube.Clients, name, typ string, status metav1.ConditionStatus, reason, msg string) func() error {
	return func() error {
		conds, u, err := policyConditions(ctx, admin, name)
		if err != nil {
			return err
		}
		c, ok := conds[typ]
		switch {
		case !ok:
			return fmt.Errorf("%s has no %s condition (has %v)", name, typ, conds)
		case c.Status != status || c.Reason != reason:
			return fmt.Errorf("%s: %s=%s reason %s, want %s reason %s (%s)", name, typ, c.Status, c.Reason, status, reason, c.Message)
		case c.ObservedGeneration != u.GetGeneration():
			return fmt.Errorf("%s: %s observedGeneration %d, object at generation %d", name, typ, c.ObservedGeneration, u.GetGeneration())
		case !strings.Contains(c.Message, msg):
			return fmt.Errorf("%s: %s message %q does not say %q", name, typ, c.Message, msg)
		}
		return nil
	}
}

// policyWrites sums the sink's AuthorizationPolicy status writes in reg.
func policyWrites(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "fedmesh_kube_sink_writes_total" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "kind" && l.GetValue() == "AuthorizationPolicy" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestAuthorizationPolicies runs two control plane replicas (a Source and
// a Sink each, with leader election, as the control plane's
// ServiceAccount) against a real API server with deploy/'s CRD and RBAC.
// A good policy is in force and a bad one refused with its field named;
// the leader, and only it, writes Accepted and ResolvedRefs with
// observedGeneration, once per change; an update replaces the policy, a
// bad edit keeps the last accepted version, a delete removes it.
func TestAuthorizationPolicies(t *testing.T) {
	c, _ := clusters(t)
	clients, err := kube.NewClients(asControlPlane(c))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kube.NewClients(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: authzNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// Leave the namespace empty, so that the test can run again in the
	// same cluster (-count).
	pc := admin.Dynamic.Resource(kube.PolicyResource).Namespace(authzNS)
	cleanup := func() {
		if err := pc.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			t.Errorf("delete the policies: %v", err)
		}
		if err := admin.Kube.CoreV1().Services(authzNS).Delete(ctx, "nope", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete Service nope: %v", err)
		}
	}
	cleanup()
	t.Cleanup(cleanup)
	echo := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: authzNS},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := admin.Kube.CoreV1().Services(authzNS).Create(ctx, echo, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	type replica struct {
		id   string
		src  *kube.Source
		sink *kube.Sink
		el   *kube.Elector
		reg  *prometheus.Registry
	}
	start := func(id string) *replica {
		r := &replica{id: id, reg: prometheus.NewRegistry()}
		log := testLogger(t).With("replica", id)
		if r.src, err = kube.NewSource(kube.SourceConfig{
			Clients: clients, Cluster: "east-1", Namespace: authzNS, Debounce: 20 * time.Millisecond,
			Logger: log, Registerer: r.reg,
		}); err != nil {
			t.Fatal(err)
		}
		if r.el, err = kube.NewElector(kube.ElectorConfig{
			Client: clients.Kube, Namespace: "fedmesh-system", Identity: id,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
			Logger: log,
		}); err != nil {
			t.Fatal(err)
		}
		if r.sink, err = kube.NewSink(kube.SinkConfig{
			Clients: clients, Cluster: "east-1", Namespace: authzNS, Policies: r.src, Elector: r.el,
			MinRetry: 20 * time.Millisecond, MaxRetry: time.Second, Logger: log, Registerer: r.reg,
		}); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 2)
		go func() { done <- r.src.Run(rctx, func([]catalog.Export) {}) }()
		go func() { done <- r.sink.Run(rctx) }()
		t.Cleanup(func() {
			cancel()
			for range 2 {
				if err := <-done; err != nil {
					t.Errorf("replica %s: %v", id, err)
				}
			}
		})
		return r
	}
	r1, r2 := start("authz-0"), start("authz-1")

	inForce := func(r *replica, want ...string) func() error {
		return func() error {
			ps, ready, _ := r.src.AuthorizationPolicies()
			if !ready {
				return fmt.Errorf("%s: policies not read yet", r.id)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.Key()+" "+string(p.Spec.EffectiveAction()))
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				return fmt.Errorf("%s: in force %v, want %v", r.id, got, want)
			}
			return nil
		}
	}
	// Before any policy exists, both replicas are ready with none.
	poll.Until(t, 30*time.Second, "no policies, ready", inForce(r1))
	poll.Until(t, 30*time.Second, "no policies, ready", inForce(r2))

	for _, p := range []*unstructured.Unstructured{
		authzPolicy(t, "good", `
targetRefs: [{kind: Service, name: echo}]
action: DENY
rules:
- from: [{source: {principals: ["spiffe://fedmesh.local/ns/authz/sa/evil"]}}]
  to: [{operation: {paths: ["/admin/*"]}}]
`),
		// Valid for the API server's schema; refused by fedmesh's
		// validation ("a*b" is no glob fedmesh matches).
		authzPolicy(t, "bad", `
targetRefs: [{kind: Service, name: echo}]
rules:
- from: [{source: {principals: ["spiffe://fedmesh.local/ns/*/sa/client"]}}]
`),
		authzPolicy(t, "missing-target", "targetRefs: [{kind: Service, name: nope}]\n"),
	} {
		if _, err := pc.Create(ctx, p, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("create %s: %v", p.GetName(), err)
		}
	}

	for _, r := range []*replica{r1, r2} {
		poll.Until(t, 30*time.Second, "the good policies in force", inForce(r, "authz/good DENY", "authz/missing-target ALLOW"))
		poll.Until(t, 10*time.Second, "the bad policy refused with its field", func() error {
			for _, p := range r.src.Problems() {
				if p.Object == "AuthorizationPolicy authz/bad" && p.Reason == source.ReasonInvalid &&
					strings.Contains(p.Error(), "spec.rules[0].from[0].source.principals[0]") {
					return nil
				}
			}
			return fmt.Errorf("%s: problems %v", r.id, r.src.Problems())
		})
		if got := counter(t, r.reg, "fedmesh_kube_source_policies_rejected_total", "reason", "invalid"); got != 1 {
			t.Errorf("%s: policies rejected{invalid} = %v, want 1", r.id, got)
		}
	}

	const field = `spec.rules[0].from[0].source.principals[0] "spiffe://fedmesh.local/ns/*/sa/client"`
	for _, w := range []struct {
		name, typ      string
		status         metav1.ConditionStatus
		reason, inText string
	}{
		{"good", kube.PolicyConditionAccepted, metav1.ConditionTrue, kube.PolicyReasonAccepted, "in force"},
		{"good", kube.PolicyConditionResolvedRefs, metav1.ConditionTrue, kube.PolicyReasonResolvedRefs, ""},
		{"bad", kube.PolicyConditionAccepted, metav1.ConditionFalse, kube.PolicyReasonInvalid, field},
		{"bad", kube.PolicyConditionResolvedRefs, metav1.ConditionTrue, kube.PolicyReasonResolvedRefs, ""},
		{"missing-target", kube.PolicyConditionAccepted, metav1.ConditionTrue, kube.PolicyReasonAccepted, ""},
		{"missing-target", kube.PolicyConditionResolvedRefs, metav1.ConditionFalse, kube.PolicyReasonBackendNotFound, "Service authz/nope does not exist"},
	} {
		poll.Until(t, 30*time.Second, w.name+" "+w.typ, wantCondition(ctx, admin, w.name, w.typ, w.status, w.reason, w.inText))
	}

	// Three objects, each written once: the leader's own writes, which
	// its source sees as changes, do not cause more, and the follower
	// writes nothing. The lease may move between the replicas on a loaded
	// machine; a new leader finds the conditions right and writes
	// nothing, so the writes of both replicas together are counted.
	writes := func() float64 { return policyWrites(t, r1.reg) + policyWrites(t, r2.reg) }
	if n := writes(); n != 3 {
		t.Errorf("the replicas wrote policy status %v times, want 3", n)
	}
	_, badBefore, err := policyConditions(ctx, admin, "bad")
	if err != nil {
		t.Fatal(err)
	}

	// An update replaces the policy; its conditions follow its generation.
	update := func(name, spec string) {
		t.Helper()
		cur, err := pc.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		next := authzPolicy(t, name, spec)
		next.SetResourceVersion(cur.GetResourceVersion())
		if _, err := pc.Update(ctx, next, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("update %s: %v", name, err)
		}
	}
	update("good", `
targetRefs: [{kind: Service, name: echo}]
action: AUDIT
rules:
- to: [{operation: {methods: [DELETE]}}]
`)
	for _, r := range []*replica{r1, r2} {
		poll.Until(t, 30*time.Second, "the updated policy in force", inForce(r, "authz/good AUDIT", "authz/missing-target ALLOW"))
	}
	poll.Until(t, 30*time.Second, "good Accepted at generation 2", func() error {
		if err := wantCondition(ctx, admin, "good", kube.PolicyConditionAccepted, metav1.ConditionTrue, kube.PolicyReasonAccepted, "")(); err != nil {
			return err
		}
		conds, _, err := policyConditions(ctx, admin, "good")
		if err != nil {
			return err
		}
		if g := conds[kube.PolicyConditionAccepted].ObservedGeneration; g != 2 {
			return fmt.Errorf("observedGeneration %d, want 2", g)
		}
		return nil
	})
	if n := writes(); n != 4 {
		t.Errorf("after one update the replicas wrote policy status %v times, want 4", n)
	}
	if _, badAfter, err := policyConditions(ctx, admin, "bad"); err != nil {
		t.Fatal(err)
	} else if badAfter.GetResourceVersion() != badBefore.GetResourceVersion() {
		t.Errorf("the bad policy, unchanged, was written again (resourceVersion %s -> %s)", badBefore.GetResourceVersion(), badAfter.GetResourceVersion())
	}

	// A bad edit is refused; the last accepted version stays in force.
	update("good", "rules: [{to: [{operation: {paths: [\"/a*b\"]}}]}]\n")
	poll.Until(t, 30*time.Second, "the bad edit refused", wantCondition(ctx, admin, "good", kube.PolicyConditionAccepted,
		metav1.ConditionFalse, kube.PolicyReasonInvalid, "the last accepted version (generation 2) stays in force"))
	for _, r := range []*replica{r1, r2} {
		if err := inForce(r, "authz/good AUDIT", "authz/missing-target ALLOW")(); err != nil {
			t.Errorf("after a bad edit: %v", err)
		}
	}

	// A Service that appears resolves the ref.
	nope := echo.DeepCopy()
	nope.Name, nope.ResourceVersion = "nope", ""
	if _, err := admin.Kube.CoreV1().Services(authzNS).Create(ctx, nope, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "missing-target resolved", wantCondition(ctx, admin, "missing-target",
		kube.PolicyConditionResolvedRefs, metav1.ConditionTrue, kube.PolicyReasonResolvedRefs, ""))

	// A delete removes the policy.
	if err := pc.Delete(ctx, "good", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*replica{r1, r2} {
		poll.Until(t, 30*time.Second, "the deleted policy gone", inForce(r, "authz/missing-target ALLOW"))
	}
}

// counter reads one counter of reg by a label's value.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}
