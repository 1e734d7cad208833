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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
)

// policyCP is a control plane (Source and Sink, with leader election, as
// the control plane's ServiceAccount) on a real API server, reading the
// fedmesh policies of one namespace that holds a Service echo (port
// 8080): the harness of the per-kind policy CRD tests.
type policyCP struct {
	t    *testing.T
	ns   string
	src  *kube.Source
	reg  *prometheus.Registry
	objs dynamic.ResourceInterface // the policy kind's objects in ns, as the admin
}

// startPolicyCP creates namespace ns with Service echo, empties it of
// objects of resource res (now and at the end) and runs the control plane.
func startPolicyCP(t *testing.T, ns string, res schema.GroupVersionResource) *policyCP {
	t.Helper()
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
	if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	objs := admin.Dynamic.Resource(res).Namespace(ns)
	cleanup := func() {
		if err := objs.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			t.Errorf("delete the %s: %v", res.Resource, err)
		}
	}
	cleanup()
	t.Cleanup(cleanup)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := admin.Kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	log := testLogger(t)
	src, err := kube.NewSource(kube.SourceConfig{
		Clients: clients, Cluster: "east-1", Namespace: ns, Debounce: 20 * time.Millisecond, Logger: log, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	el, err := kube.NewElector(kube.ElectorConfig{
		Client: clients.Kube, Namespace: "fedmesh-system", Identity: ns + "-0",
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := kube.NewSink(kube.SinkConfig{
		Clients: clients, Cluster: "east-1", Namespace: ns, Traffic: src, Elector: el,
		MinRetry: 20 * time.Millisecond, MaxRetry: time.Second, Logger: log, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- src.Run(rctx, func([]catalog.Export) {}) }()
	go func() { done <- sink.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("control plane: %v", err)
			}
		}
	})
	return &policyCP{t: t, ns: ns, src: src, reg: reg, objs: objs}
}

// inForce returns a poll condition: the source is ready and the names of
// the policies names picks from its traffic are want, joined by ", ".
func (p *policyCP) inForce(want string, names func(policy.Traffic) []string) func() error {
	return func() error {
		tr, ready, _ := p.src.Traffic()
		if !ready {
			return fmt.Errorf("traffic not read yet")
		}
		if g := strings.Join(names(tr), ", "); g != want {
			return fmt.Errorf("in force [%s], want [%s]", g, want)
		}
		return nil
	}
}

// object returns the YAML doc as an object named name in the harness's
// namespace.
func (p *policyCP) object(name, doc string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		p.t.Fatal(err)
	}
	u.SetName(name)
	u.SetNamespace(p.ns)
	return u
}

// policyScenario is the life of one policy kind on the harness: three
// objects created (echo targeting Service echo, namespace with no
// targetRefs, missing targeting a Service that does not exist), their
// conditions written back, an object the CRD schema refuses, a bad edit
// of echo the schema lets through (refused by the source with its field
// named, counted, the last good version kept), and a delete.
type policyScenario struct {
	kind string
	// names picks the names of the kind's policies from the traffic in
	// force, in order.
	names func(policy.Traffic) []string
	// echo, namespace and missing are the three objects' YAML.
	echo, namespace, missing string
	// checkEcho checks echo's spec in force (the first of the kind).
	checkEcho func(policy.Traffic) error
	// schemaBad is an object the CRD schema refuses; schemaField is
	// named in the API server's refusal.
	schemaBad, schemaField string
	// badFrom, badTo make the bad edit of echo; badField is named in the
	// refusal.
	badFrom, badTo, badField string
	// checkLastGood checks echo's spec in force after the bad edit.
	checkLastGood func(policy.Traffic) error
}

// run plays the scenario.
func (sc policyScenario) run(p *policyCP) {
	t := p.t
	ctx := context.Background()
	var tr policy.Traffic
	inForce := func(want string) func() error {
		return p.inForce(want, func(got policy.Traffic) []string {
			tr = got
			return sc.names(got)
		})
	}
	poll.Until(t, 30*time.Second, "no "+sc.kind+", ready", inForce(""))
	for _, o := range []*unstructured.Unstructured{p.object("echo", sc.echo), p.object("namespace", sc.namespace), p.object("missing", sc.missing)} {
		if _, err := p.objs.Create(ctx, o, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	poll.Until(t, 30*time.Second, "the three policies in force", inForce("echo, missing, namespace"))
	if err := sc.checkEcho(tr); err != nil {
		t.Errorf("echo in force: %v", err)
	}

	cond := func(name, typ string, status metav1.ConditionStatus, reason, msg string) func() error {
		return func() error {
			u, err := p.objs.Get(ctx, name, metav1.GetOptions{})
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
			return checkCondition(sc.kind+" "+name, st.Conditions, u.GetGeneration(), typ, status, reason, msg)
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
		{"missing", kube.PolicyConditionResolvedRefs, metav1.ConditionFalse, kube.PolicyReasonBackendNotFound, "spec.targetRefs[0]: Service " + p.ns + "/nope does not exist"},
	} {
		poll.Until(t, 30*time.Second, w.name+" "+w.typ, cond(w.name, w.typ, w.status, w.reason, w.msg))
	}

	if _, err := p.objs.Create(ctx, p.object("schema-bad", sc.schemaBad), metav1.CreateOptions{FieldValidation: "Strict"}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), sc.schemaField) {
		t.Errorf("%s: %v, want the API server's refusal naming %s", sc.schemaBad, err, sc.schemaField)
	}

	// A bad edit the schema lets through: refused whole; the last good
	// version stays in force.
	cur, err := p.objs.Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := p.object("echo", strings.Replace(sc.echo, sc.badFrom, sc.badTo, 1))
	bad.SetResourceVersion(cur.GetResourceVersion())
	if _, err := p.objs.Update(ctx, bad, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
		t.Fatalf("the API server refuses the bad edit, which it should let through: %v", err)
	}
	poll.Until(t, 30*time.Second, "the bad edit refused", cond("echo", kube.PolicyConditionAccepted, metav1.ConditionFalse, kube.PolicyReasonInvalid, sc.badField))
	if err := cond("echo", kube.PolicyConditionAccepted, metav1.ConditionFalse, kube.PolicyReasonInvalid, "the last accepted version (generation 1) stays in force")(); err != nil {
		t.Error(err)
	}
	object := sc.kind + " " + p.ns + "/echo"
	poll.Until(t, 10*time.Second, "the bad edit listed with its field", func() error {
		for _, prob := range p.src.Problems() {
			if prob.Object == object && prob.Reason == source.ReasonInvalid && strings.Contains(prob.Error(), sc.badField) {
				return nil
			}
		}
		return fmt.Errorf("problems %v", p.src.Problems())
	})
	if err := inForce("echo, missing, namespace")(); err != nil {
		t.Error(err)
	}
	if err := sc.checkLastGood(tr); err != nil {
		t.Errorf("echo in force after the bad edit: %v, want the last good version", err)
	}
	if n := counter2(t, p.reg, "fedmesh_kube_source_traffic_rejected_total", "kind", sc.kind, "reason", "invalid"); n != 1 {
		t.Errorf("traffic rejected{%s,invalid} = %v, want 1", sc.kind, n)
	}

	// A delete removes the policy.
	if err := p.objs.Delete(ctx, "namespace", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the deleted policy gone", inForce("echo, missing"))
}
