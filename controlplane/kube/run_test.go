package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	mcsfake "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned/fake"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
)

func fakeClients(kubeObjs []runtime.Object, mcsObjs ...runtime.Object) Clients {
	return Clients{Kube: fake.NewSimpleClientset(kubeObjs...), MCS: mcsfake.NewSimpleClientset(mcsObjs...), Dynamic: fakeDynamic()}
}

// fakeDynamic is a dynamic client that serves AuthorizationPolicies and
// the traffic objects.
func fakeDynamic(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{
			PolicyResource:           "AuthorizationPolicyList",
			HTTPRouteResource:        "HTTPRouteList",
			GRPCRouteResource:        "GRPCRouteList",
			ResiliencePolicyResource: "ResiliencePolicyList",
			FaultInjectionResource:   "FaultInjectionList",
			TelemetryPolicyResource:  "TelemetryPolicyList",
			RateLimitPolicyResource:  "RateLimitPolicyList",
		}, objs...)
}

// run starts f on a goroutine and stops it at cleanup.
func run(t *testing.T, f func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

func TestSourceRun(t *testing.T) {
	clients := fakeClients(
		[]runtime.Object{
			svc("echo", httpPort(8080)),
			slice("echo", 9080, sliceEP{addr: "10.0.0.1", node: "n1", pod: "echo-1", ready: true}),
			pod("echo-1", "echo", "n1"),
			node("n1", "us-west", "us-west-1a"),
		},
		export("echo"), export("orphan"),
	)
	reg := prometheus.NewRegistry()
	src, err := NewSource(SourceConfig{Clients: clients, Cluster: "east-1", Region: "us-east", Debounce: time.Millisecond, Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var updates [][]catalog.Export
	run(t, func(ctx context.Context) error {
		return src.Run(ctx, func(e []catalog.Export) {
			mu.Lock()
			defer mu.Unlock()
			updates = append(updates, e)
		})
	})
	last := func() ([]catalog.Export, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(updates) == 0 {
			return nil, 0
		}
		return updates[len(updates)-1], len(updates)
	}
	poll.Until(t, 10*time.Second, "first update with echo's endpoint", func() error {
		e, _ := last()
		if len(e) != 1 || len(e[0].Endpoints) != 1 {
			return fmt.Errorf("exports %+v", e)
		}
		if got := endpointLine(e[0].Endpoints[0]); got != "10.0.0.1:9080 http sa=echo ready=true us-west/us-west-1a/east-1" {
			return fmt.Errorf("endpoint %s", got)
		}
		return nil
	})
	v, changed := src.Validity()
	if got := v[catalog.ServiceKey{Namespace: "demo", Name: "orphan"}]; got.Valid || got.Reason != ReasonNoService {
		t.Errorf("orphan validity %+v", got)
	}
	if got := counterValue(t, src.met.rejected.WithLabelValues("unmatched")); got < 1 {
		t.Errorf("unmatched rejections counted %v times", got)
	}
	if len(src.Problems()) != 1 {
		t.Errorf("problems %v", src.Problems())
	}

	// The Service for orphan arrives: validity changes and wakes watchers,
	// and a new export set is delivered.
	_, n := last()
	if _, err := clients.Kube.CoreV1().Services("demo").Create(context.Background(), svc("orphan", httpPort(80)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("validity change not signalled")
	}
	poll.Until(t, 10*time.Second, "update with orphan", func() error {
		e, m := last()
		if m <= n || len(e) != 2 {
			return fmt.Errorf("%d updates, exports %d", m, len(e))
		}
		return nil
	})
}

func TestSinkRun(t *testing.T) {
	se := export("echo")
	clients := fakeClients(nil, se)
	val := &staticValidity{v: map[catalog.ServiceKey]Validity{{Namespace: "demo", Name: "echo"}: {Valid: true, Reason: ReasonValid}}, ch: make(chan struct{})}
	sink, err := NewSink(SinkConfig{Clients: clients, Cluster: "west-1", Validity: val, MinRetry: time.Millisecond, MaxRetry: 10 * time.Millisecond, Logger: testLogger(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	run(t, sink.Run)
	ctx := context.Background()

	// Before any view only validity is written, nothing is imported.
	poll.Until(t, 10*time.Second, "Valid condition", func() error {
		got, err := clients.MCS.MulticlusterV1alpha1().ServiceExports("demo").Get(ctx, "echo", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c := meta.FindStatusCondition(got.Status.Conditions, "Valid"); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("conditions %v", got.Status.Conditions)
		}
		return nil
	})

	sink.Update(testView())
	poll.Until(t, 10*time.Second, "import with slices and Conflict", func() error {
		si, err := clients.MCS.MulticlusterV1alpha1().ServiceImports("demo").Get(ctx, "echo", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(si.Status.Clusters) != 2 {
			return fmt.Errorf("status %+v", si.Status)
		}
		slices, err := clients.Kube.DiscoveryV1().EndpointSlices("demo").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(slices.Items) != 3 {
			return fmt.Errorf("%d slices", len(slices.Items))
		}
		got, err := clients.MCS.MulticlusterV1alpha1().ServiceExports("demo").Get(ctx, "echo", metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, "Conflict")
		if c == nil || c.Reason != catalog.ReasonPortConflict || c.Message != "ports differ from east-1's" {
			return fmt.Errorf("conflict %+v", c)
		}
		return nil
	})

	// A slice that fedmesh did not write is never touched.
	foreign := slice("other", 80, sliceEP{addr: "10.9.0.1", ready: true})
	if _, err := clients.Kube.DiscoveryV1().EndpointSlices("demo").Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The service leaves the view: import and slices are deleted.
	sink.Update(&catalog.View{Local: "west-1"})
	poll.Until(t, 10*time.Second, "import deleted", func() error {
		_, err := clients.MCS.MulticlusterV1alpha1().ServiceImports("demo").Get(ctx, "echo", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get: %v", err)
		}
		slices, err := clients.Kube.DiscoveryV1().EndpointSlices("demo").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var names []string
		for _, s := range slices.Items {
			names = append(names, s.Name)
		}
		if d := cmp.Diff([]string{"other-abc"}, names); d != "" {
			return fmt.Errorf("slices left (-want +got):\n%s", d)
		}
		return nil
	})
}

type staticValidity struct {
	v  map[catalog.ServiceKey]Validity
	ch chan struct{}
}

func (s *staticValidity) Validity() (map[catalog.ServiceKey]Validity, <-chan struct{}) {
	return s.v, s.ch
}

func TestElectorOneLeader(t *testing.T) {
	cs := fake.NewSimpleClientset()
	leads := make(chan string, 10)
	var mu sync.Mutex
	running := 0
	for _, id := range []string{"a", "b"} {
		el, err := NewElector(ElectorConfig{Client: cs, Namespace: "fedmesh-system", Identity: id,
			LeaseDuration: time.Second, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 50 * time.Millisecond, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		run(t, func(ctx context.Context) error {
			return el.Run(ctx, func(lctx context.Context) {
				mu.Lock()
				running++
				n := running
				mu.Unlock()
				leads <- fmt.Sprintf("%s with %d running", id, n)
				<-lctx.Done()
				mu.Lock()
				running--
				mu.Unlock()
			})
		})
	}
	got := <-leads
	if got != "a with 1 running" && got != "b with 1 running" {
		t.Fatalf("lead: %s", got)
	}
	holder, err := leaseHolder(context.Background(), cs, "fedmesh-system", DefaultLeaseName)
	if err != nil {
		t.Fatal(err)
	}
	if holder != got[:1] {
		t.Errorf("lease held by %q, leader %q", holder, got[:1])
	}
}

func TestConfigErrors(t *testing.T) {
	good := fakeClients(nil)
	tests := []struct {
		name string
		err  error
	}{
		{"source without clients", func() error { _, err := NewSource(SourceConfig{Cluster: "c"}); return err }()},
		{"source bad cluster", func() error { _, err := NewSource(SourceConfig{Clients: good, Cluster: "Bad"}); return err }()},
		{"sink bad retry", func() error {
			_, err := NewSink(SinkConfig{Clients: good, Cluster: "c", MinRetry: time.Second, MaxRetry: time.Millisecond})
			return err
		}()},
		{"elector no identity", func() error { _, err := NewElector(ElectorConfig{Client: good.Kube, Namespace: "ns"}); return err }()},
		{"elector bad timings", func() error {
			_, err := NewElector(ElectorConfig{Client: good.Kube, Namespace: "ns", Identity: "a", LeaseDuration: time.Second, RenewDeadline: 2 * time.Second})
			return err
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("no error")
			}
			if !isConfigErr(tc.err) {
				t.Errorf("%v does not wrap ErrConfig", tc.err)
			}
		})
	}
}

func isConfigErr(err error) bool { return errors.Is(err, ErrConfig) }

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestNewModeWithKubeconfig(t *testing.T) {
	dir := t.TempDir()
	kc := dir + "/kubeconfig"
	const cfg = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := NewMode(ModeConfig{Kubeconfig: kc, Cluster: "east-1", LeaseNamespace: "fedmesh-system", Identity: "cp-0", Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if m.Elector == nil || m.Source == nil || m.Sink == nil || m.Reviewer == nil {
		t.Errorf("mode %+v", m)
	}
	if _, err := NewMode(ModeConfig{Kubeconfig: dir + "/missing", Cluster: "east-1"}); err == nil {
		t.Error("missing kubeconfig accepted")
	}
}
