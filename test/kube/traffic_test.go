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
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
)

const trafficNS = "traffic"

// trafficObject is a traffic object of namespace traffic from its YAML
// (apiVersion, kind and spec; the name is set here).
func trafficObject(t *testing.T, name, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetName(name)
	u.SetNamespace(trafficNS)
	return u
}

func resourceOf(kind string) schema.GroupVersionResource {
	switch kind {
	case policy.KindHTTPRoute:
		return kube.HTTPRouteResource
	case policy.KindGRPCRoute:
		return kube.GRPCRouteResource
	case policy.KindResiliencePolicy:
		return kube.ResiliencePolicyResource
	case policy.KindTelemetryPolicy:
		return kube.TelemetryPolicyResource
	case policy.KindRateLimitPolicy:
		return kube.RateLimitPolicyResource
	}
	return kube.FaultInjectionResource
}

// routeParent reads fedmesh's status.parents entry of a route (the
// first, for its first parentRef) and the route's generation.
func routeParent(ctx context.Context, admin kube.Clients, kind, name string) (*gatewayv1.RouteParentStatus, int64, error) {
	u, err := admin.Dynamic.Resource(resourceOf(kind)).Namespace(trafficNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, 0, err
	}
	var st gatewayv1.RouteStatus
	if raw, ok, _ := unstructured.NestedMap(u.Object, "status"); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st); err != nil {
			return nil, 0, err
		}
	}
	for i := range st.Parents {
		if st.Parents[i].ControllerName == kube.ControllerName {
			return &st.Parents[i], u.GetGeneration(), nil
		}
	}
	return nil, u.GetGeneration(), fmt.Errorf("%s %s has no status.parents entry of %s (status %+v)", kind, name, kube.ControllerName, st)
}

// wantRouteCondition returns a poll condition: fedmesh's parent entry of
// the route carries a condition of type typ with this status and
// reason, observed at the route's current generation, whose message
// holds msg.
func wantRouteCondition(ctx context.Context, admin kube.Clients, kind, name, typ string, status metav1.ConditionStatus, reason, msg string) func() error {
	return func() error {
		p, gen, err := routeParent(ctx, admin, kind, name)
		if err != nil {
			return err
		}
		return checkCondition(kind+" "+name, p.Conditions, gen, typ, status, reason, msg)
	}
}

// wantTrafficCondition is wantRouteCondition for a policy's
// status.conditions.
func wantTrafficCondition(ctx context.Context, admin kube.Clients, kind, name, typ string, status metav1.ConditionStatus, reason, msg string) func() error {
	return func() error {
		u, err := admin.Dynamic.Resource(resourceOf(kind)).Namespace(trafficNS).Get(ctx, name, metav1.GetOptions{})
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
		return checkCondition(kind+" "+name, st.Conditions, u.GetGeneration(), typ, status, reason, msg)
	}
}

func checkCondition(what string, conds []metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) error {
	for _, c := range conds {
		if c.Type != typ {
			continue
		}
		switch {
		case c.Status != status || c.Reason != reason:
			return fmt.Errorf("%s: %s=%s reason %s, want %s reason %s (%s)", what, typ, c.Status, c.Reason, status, reason, c.Message)
		case c.ObservedGeneration != gen:
			return fmt.Errorf("%s: %s observedGeneration %d, object at generation %d", what, typ, c.ObservedGeneration, gen)
		case !strings.Contains(c.Message, msg):
			return fmt.Errorf("%s: %s message %q does not say %q", what, typ, c.Message, msg)
		}
		return nil
	}
	return fmt.Errorf("%s has no %s condition (has %+v)", what, typ, conds)
}

// trafficWrites sums the sink's status writes of the traffic kinds in
// reg.
func trafficWrites(t *testing.T, reg *prometheus.Registry) float64 {
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
				if l.GetName() == "kind" && l.GetValue() != "AuthorizationPolicy" && l.GetValue() != "ServiceExport" &&
					l.GetValue() != "ServiceImport" && l.GetValue() != "EndpointSlice" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// counter2 reads one counter of reg by two labels' values.
func counter2(t *testing.T, reg *prometheus.Registry, name, l1, v1, l2, v2 string) float64 {
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
			got := map[string]string{}
			for _, l := range m.Label {
				got[l.GetName()] = l.GetValue()
			}
			if got[l1] == v1 && got[l2] == v2 {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s=%q,%s=%q}", name, l1, v1, l2, v2)
	return 0
}

// TestTrafficObjects runs two control plane replicas (a Source and a
// Sink each, with leader election, as the control plane's
// ServiceAccount) against a real API server with Gateway API's own
// HTTPRoute and GRPCRoute CRDs and fedmesh's ResiliencePolicy and
// FaultInjection CRDs from deploy/. A weighted HTTPRoute using a
// FaultInjection, a GRPCRoute, a ResiliencePolicy and the FaultInjection
// are in force in both replicas and the leader alone writes Accepted and
// ResolvedRefs back, once per object; a backend that does not exist is
// ResolvedRefs=False/BackendNotFound; a bad edit the CRD schema lets
// through (an ExtensionRef fedmesh does not implement) is refused with
// the field named, counted, and the last good version stays in force; a
// new route naming a missing FaultInjection is not in force.
func TestTrafficObjects(t *testing.T) {
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
	if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: trafficNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// Leave the namespace empty, so that the test can run again in the
	// same cluster (-count).
	cleanup := func() {
		for _, kind := range []string{policy.KindHTTPRoute, policy.KindGRPCRoute, policy.KindResiliencePolicy, policy.KindFaultInjection} {
			if err := admin.Dynamic.Resource(resourceOf(kind)).Namespace(trafficNS).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
				t.Errorf("delete the %ss: %v", kind, err)
			}
		}
	}
	cleanup()
	t.Cleanup(cleanup)
	for _, name := range []string{"echo", "echo-v1", "grpc-echo"} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: trafficNS},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}},
		}
		if _, err := admin.Kube.CoreV1().Services(trafficNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	// echo-v2 runs in another cluster only: a ServiceImport, as the
	// sink writes them.
	si := &mcsv1alpha1.ServiceImport{
		ObjectMeta: metav1.ObjectMeta{Name: "echo-v2", Namespace: trafficNS},
		Spec: mcsv1alpha1.ServiceImportSpec{Type: mcsv1alpha1.ClusterSetIP,
			Ports: []mcsv1alpha1.ServicePort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := admin.MCS.MulticlusterV1alpha1().ServiceImports(trafficNS).Create(ctx, si, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	type replica struct {
		id   string
		src  *kube.Source
		sink *kube.Sink
		reg  *prometheus.Registry
	}
	start := func(id string) *replica {
		r := &replica{id: id, reg: prometheus.NewRegistry()}
		log := testLogger(t).With("replica", id)
		if r.src, err = kube.NewSource(kube.SourceConfig{
			Clients: clients, Cluster: "east-1", Namespace: trafficNS, Debounce: 20 * time.Millisecond,
			Logger: log, Registerer: r.reg,
		}); err != nil {
			t.Fatal(err)
		}
		el, err := kube.NewElector(kube.ElectorConfig{
			Client: clients.Kube, Namespace: "fedmesh-system", Identity: id,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
			Logger: log,
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.sink, err = kube.NewSink(kube.SinkConfig{
			Clients: clients, Cluster: "east-1", Namespace: trafficNS, Traffic: r.src, Elector: el,
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
	r1, r2 := start("traffic-0"), start("traffic-1")
	replicas := []*replica{r1, r2}

	// inForce checks the names in force, kind by kind.
	inForce := func(r *replica, want string) func() error {
		return func() error {
			tr, ready, _ := r.src.Traffic()
			if !ready {
				return fmt.Errorf("%s: traffic not read yet", r.id)
			}
			var got []string
			for _, x := range tr.HTTPRoutes {
				got = append(got, "HTTPRoute "+x.Name)
			}
			for _, x := range tr.GRPCRoutes {
				got = append(got, "GRPCRoute "+x.Name)
			}
			for _, x := range tr.Resilience {
				got = append(got, "ResiliencePolicy "+x.Name)
			}
			for _, x := range tr.Faults {
				got = append(got, "FaultInjection "+x.Name)
			}
			if g := strings.Join(got, ", "); g != want {
				return fmt.Errorf("%s: in force [%s], want [%s]", r.id, g, want)
			}
			return nil
		}
	}
	for _, r := range replicas {
		poll.Until(t, 30*time.Second, "no traffic objects, ready", inForce(r, ""))
	}

	create := func(u *unstructured.Unstructured) {
		t.Helper()
		if _, err := admin.Dynamic.Resource(resourceOf(u.GetKind())).Namespace(trafficNS).Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	// The FaultInjection first, in force before the route that uses it,
	// so that the route is never seen without it.
	create(trafficObject(t, "delay-half", `
apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
spec:
  delay: {fixed: 100ms, percentage: 50}
  abort: {httpStatus: 503, percentage: 10.5}
  headers: [{name: x-chaos, value: "on"}]
`))
	for _, r := range replicas {
		poll.Until(t, 30*time.Second, "the FaultInjection in force", inForce(r, "FaultInjection delay-half"))
	}
	canary := `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "1"}]}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080}]
  - backendRefs:
    - {name: echo-v1, port: 8080, weight: 90}
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080, weight: 10}
    filters: [{type: ExtensionRef, extensionRef: {group: fedmesh.io, kind: FaultInjection, name: delay-half}}]
    timeouts: {request: 2s}
    retry: {attempts: 3, codes: [503]}
`
	create(trafficObject(t, "echo-canary", canary))
	create(trafficObject(t, "grpc-echo", `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
spec:
  parentRefs: [{group: "", kind: Service, name: grpc-echo}]
  rules:
  - matches: [{method: {service: echo.Echo, method: Say}}]
    backendRefs: [{name: grpc-echo, port: 8080}]
`))
	create(trafficObject(t, "echo-resilience", `
apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
spec:
  targetRefs: [{kind: Service, name: echo}]
  retry: {attempts: 2, statusCodes: [503], perTryTimeout: 500ms}
  connectionLimits: {maxRequests: 100}
  loadBalancer: {algorithm: RingHash, hashKey: {header: x-user}}
  failover: {regions: [us-west, eu-central]}
`))
	create(trafficObject(t, "missing-backend", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    backendRefs: [{name: nope, port: 8080}]
`))

	const all = "HTTPRoute echo-canary, HTTPRoute missing-backend, GRPCRoute grpc-echo, ResiliencePolicy echo-resilience, FaultInjection delay-half"
	for _, r := range replicas {
		poll.Until(t, 30*time.Second, "every object in force", inForce(r, all))
	}
	// The route in force is the one written, with the API server's
	// defaults.
	tr, _, _ := r1.src.Traffic()
	rule := tr.HTTPRoutes[0].Spec.Rules[1]
	if len(rule.BackendRefs) != 2 || *rule.BackendRefs[0].Weight != 90 || *rule.BackendRefs[1].Weight != 10 ||
		rule.Retry == nil || *rule.Retry.Attempts != 3 || rule.Timeouts == nil || *rule.Timeouts.Request != "2s" {
		t.Errorf("echo-canary rule 1 in force: %+v", rule)
	}
	if p := tr.Resilience[0].Spec; p.LoadBalancer == nil || p.LoadBalancer.Algorithm != policy.LBRingHash || p.LoadBalancer.HashKey.Header != "x-user" {
		t.Errorf("echo-resilience in force: %+v", p)
	}
	if f := tr.Faults[0].Spec; f.Abort == nil || f.Abort.Percentage != 10.5 || *f.Abort.HTTPStatus != 503 {
		t.Errorf("delay-half in force: %+v", f)
	}

	accepted, resolved := string(gatewayv1.RouteConditionAccepted), string(gatewayv1.RouteConditionResolvedRefs)
	for _, w := range []struct {
		kind, name, typ string
		status          metav1.ConditionStatus
		reason, inText  string
	}{
		{policy.KindHTTPRoute, "echo-canary", accepted, metav1.ConditionTrue, string(gatewayv1.RouteReasonAccepted), "in force"},
		{policy.KindHTTPRoute, "echo-canary", resolved, metav1.ConditionTrue, string(gatewayv1.RouteReasonResolvedRefs), ""},
		{policy.KindGRPCRoute, "grpc-echo", accepted, metav1.ConditionTrue, string(gatewayv1.RouteReasonAccepted), ""},
		{policy.KindGRPCRoute, "grpc-echo", resolved, metav1.ConditionTrue, string(gatewayv1.RouteReasonResolvedRefs), ""},
		{policy.KindHTTPRoute, "missing-backend", accepted, metav1.ConditionTrue, string(gatewayv1.RouteReasonAccepted), ""},
		{policy.KindHTTPRoute, "missing-backend", resolved, metav1.ConditionFalse, string(gatewayv1.RouteReasonBackendNotFound),
			"spec.rules[0].backendRefs[0]: Service traffic/nope does not exist"},
	} {
		poll.Until(t, 30*time.Second, w.name+" "+w.typ, wantRouteCondition(ctx, admin, w.kind, w.name, w.typ, w.status, w.reason, w.inText))
	}
	for _, w := range []struct {
		kind, name, typ string
		status          metav1.ConditionStatus
		reason          string
	}{
		{policy.KindResiliencePolicy, "echo-resilience", kube.PolicyConditionAccepted, metav1.ConditionTrue, kube.PolicyReasonAccepted},
		{policy.KindResiliencePolicy, "echo-resilience", kube.PolicyConditionResolvedRefs, metav1.ConditionTrue, kube.PolicyReasonResolvedRefs},
		{policy.KindFaultInjection, "delay-half", kube.PolicyConditionAccepted, metav1.ConditionTrue, kube.PolicyReasonAccepted},
	} {
		poll.Until(t, 30*time.Second, w.name+" "+w.typ, wantTrafficCondition(ctx, admin, w.kind, w.name, w.typ, w.status, w.reason, ""))
	}
	p, _, err := routeParent(ctx, admin, policy.KindHTTPRoute, "echo-canary")
	if err != nil {
		t.Fatal(err)
	}
	if p.ParentRef.Name != "echo" || p.ParentRef.Kind == nil || *p.ParentRef.Kind != "Service" || p.ParentRef.Port == nil || *p.ParentRef.Port != 8080 {
		t.Errorf("echo-canary's parent entry names %+v, want its parentRef (Service echo port 8080)", p.ParentRef)
	}

	// Five objects, each written once: the leader's own writes, which
	// its source sees as changes, cause no more, and the follower
	// writes nothing. Both replicas' writes are counted together, in
	// case the lease moves on a loaded machine.
	writes := func() float64 { return trafficWrites(t, r1.reg) + trafficWrites(t, r2.reg) }
	if n := writes(); n != 5 {
		t.Errorf("the replicas wrote traffic status %v times, want 5", n)
	}

	// A bad edit the CRD's schema lets through: an ExtensionRef filter of
	// a kind fedmesh does not implement. It is refused whole; the last
	// good version stays in force.
	cur, err := admin.Dynamic.Resource(kube.HTTPRouteResource).Namespace(trafficNS).Get(ctx, "echo-canary", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := trafficObject(t, "echo-canary", strings.Replace(canary, "{group: fedmesh.io, kind: FaultInjection, name: delay-half}",
		"{group: example.com, kind: RateLimit, name: slow}", 1))
	bad.SetResourceVersion(cur.GetResourceVersion())
	if _, err := admin.Dynamic.Resource(kube.HTTPRouteResource).Namespace(trafficNS).Update(ctx, bad, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
		t.Fatalf("the API server refuses the bad edit, which it should let through: %v", err)
	}
	const field = `spec.rules[1].filters[0].extensionRef "example.com/RateLimit"`
	poll.Until(t, 30*time.Second, "the bad edit refused", wantRouteCondition(ctx, admin, policy.KindHTTPRoute, "echo-canary", accepted,
		metav1.ConditionFalse, string(gatewayv1.RouteReasonUnsupportedValue), field))
	poll.Until(t, 30*time.Second, "the bad edit's ref reported", wantRouteCondition(ctx, admin, policy.KindHTTPRoute, "echo-canary", resolved,
		metav1.ConditionFalse, string(gatewayv1.RouteReasonInvalidKind), "spec.rules[1].filters[0].extensionRef"))
	if err := wantRouteCondition(ctx, admin, policy.KindHTTPRoute, "echo-canary", accepted, metav1.ConditionFalse,
		string(gatewayv1.RouteReasonUnsupportedValue), "the last accepted version (generation 1) stays in force")(); err != nil {
		t.Error(err)
	}
	for _, r := range replicas {
		poll.Until(t, 10*time.Second, "the bad edit listed with its field", func() error {
			for _, p := range r.src.Problems() {
				if p.Object == "HTTPRoute traffic/echo-canary" && p.Reason == source.ReasonInvalid && strings.Contains(p.Error(), field) {
					return nil
				}
			}
			return fmt.Errorf("%s: problems %v", r.id, r.src.Problems())
		})
		if err := inForce(r, all)(); err != nil {
			t.Errorf("after the bad edit: %v", err)
		}
		tr, _, _ := r.src.Traffic()
		f := tr.HTTPRoutes[0].Spec.Rules[1].Filters
		if len(f) != 1 || f[0].ExtensionRef == nil || f[0].ExtensionRef.Name != "delay-half" {
			t.Errorf("%s: echo-canary in force after the bad edit has filters %+v, want the last good version's", r.id, f)
		}
		if got := counter2(t, r.reg, "fedmesh_kube_source_traffic_rejected_total", "kind", policy.KindHTTPRoute, "reason", "invalid"); got != 1 {
			t.Errorf("%s: traffic rejected{HTTPRoute,invalid} = %v, want 1", r.id, got)
		}
	}

	// A new route naming a FaultInjection that does not exist is not in
	// force at all.
	create(trafficObject(t, "never-good", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - backendRefs: [{name: echo-v1, port: 8080}]
    filters: [{type: ExtensionRef, extensionRef: {group: fedmesh.io, kind: FaultInjection, name: nope}}]
`))
	poll.Until(t, 30*time.Second, "never-good refused", wantRouteCondition(ctx, admin, policy.KindHTTPRoute, "never-good", accepted,
		metav1.ConditionFalse, string(gatewayv1.RouteReasonUnsupportedValue), "the route is not in force"))
	poll.Until(t, 30*time.Second, "never-good's missing fault reported", wantRouteCondition(ctx, admin, policy.KindHTTPRoute, "never-good", resolved,
		metav1.ConditionFalse, string(gatewayv1.RouteReasonBackendNotFound), "FaultInjection traffic/nope is not in force"))
	for _, r := range replicas {
		// The leader wrote the conditions; each replica refuses the route
		// when its own informer brings it.
		poll.Until(t, 10*time.Second, r.id+" counts never-good refused", func() error {
			if got := counter2(t, r.reg, "fedmesh_kube_source_traffic_rejected_total", "kind", policy.KindHTTPRoute, "reason", "unmatched"); got != 1 {
				return fmt.Errorf("traffic rejected{HTTPRoute,unmatched} = %v, want 1", got)
			}
			return nil
		})
		if err := inForce(r, all)(); err != nil {
			t.Errorf("after never-good: %v", err)
		}
	}

	// The fault it names appears: it is accepted.
	create(trafficObject(t, "nope", "apiVersion: fedmesh.io/v1alpha1\nkind: FaultInjection\nspec: {abort: {httpStatus: 500, percentage: 1}}\n"))
	poll.Until(t, 30*time.Second, "never-good accepted once its fault exists", wantRouteCondition(ctx, admin, policy.KindHTTPRoute, "never-good", accepted,
		metav1.ConditionTrue, string(gatewayv1.RouteReasonAccepted), ""))

	// A delete removes the object.
	if err := admin.Dynamic.Resource(kube.GRPCRouteResource).Namespace(trafficNS).Delete(ctx, "grpc-echo", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range replicas {
		poll.Until(t, 30*time.Second, "the deleted route gone", inForce(r,
			"HTTPRoute echo-canary, HTTPRoute missing-backend, HTTPRoute never-good, ResiliencePolicy echo-resilience, FaultInjection delay-half, FaultInjection nope"))
	}
}
