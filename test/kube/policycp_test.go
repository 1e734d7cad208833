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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/kube"
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
