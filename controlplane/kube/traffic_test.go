package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
)

// trafficObj makes a traffic object as the API server serves it, with
// server-set metadata and a status, from its YAML (apiVersion, kind,
// spec). The UID is the name's.
func trafficObj(t testing.TB, name string, generation int64, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetName(name)
	u.SetNamespace("demo")
	u.SetUID(types.UID("u-" + name))
	u.SetGeneration(generation)
	u.SetResourceVersion(fmt.Sprint(100 + generation))
	u.SetLabels(map[string]string{"team": "a"})
	u.Object["status"] = map[string]any{"note": "anything"}
	return u
}

const (
	faultDoc = `
apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
spec: {abort: {httpStatus: 503, percentage: 10}}
`
	resilienceDoc = `
apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
spec:
  targetRefs: [{kind: Service, name: echo}, {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2}]
  retry: {attempts: 2}
`
	routeDoc = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - backendRefs:
    - {name: echo, port: 8080, weight: 90}
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080, weight: 10}
    filters: [{type: ExtensionRef, extensionRef: {group: fedmesh.io, kind: FaultInjection, name: abort}}]
`
	grpcDoc = `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
spec:
  parentRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2}]
  rules:
  - backendRefs: [{name: gone, port: 8080}]
`
)

// describe renders conditions as "Type=Status Reason gen=N: message".
func describe(conds []metav1.Condition) []string {
	var out []string
	for _, c := range conds {
		out = append(out, fmt.Sprintf("%s=%s %s gen=%d: %s", c.Type, c.Status, c.Reason, c.ObservedGeneration, c.Message))
	}
	return out
}

// summary is what a test compares of a trafficEval.
type summary struct {
	InForce  []string
	Status   map[string][]string
	Problems []string
	LastGood []string
}

func summarize(ev trafficEval) summary {
	s := summary{Status: map[string][]string{}}
	for _, r := range ev.inForce.HTTPRoutes {
		s.InForce = append(s.InForce, fmt.Sprintf("HTTPRoute %s/%s rules=%d", r.Namespace, r.Name, len(r.Spec.Rules)))
	}
	for _, r := range ev.inForce.GRPCRoutes {
		s.InForce = append(s.InForce, "GRPCRoute "+r.Namespace+"/"+r.Name)
	}
	for _, p := range ev.inForce.Resilience {
		s.InForce = append(s.InForce, "ResiliencePolicy "+p.Key())
	}
	for _, f := range ev.inForce.Faults {
		s.InForce = append(s.InForce, "FaultInjection "+f.Key())
	}
	for _, st := range ev.statuses {
		key := st.Object.GetKind() + " " + st.Object.GetName()
		if st.Parents == nil {
			s.Status[key] = describe(st.Conditions)
		}
		for _, p := range st.Parents {
			pk := key + " parent " + string(p.ParentRef.Name)
			if p.ControllerName != ControllerName {
				pk += " controller " + string(p.ControllerName)
			}
			s.Status[pk] = describe(p.Conditions)
		}
	}
	for _, p := range ev.problems {
		s.Problems = append(s.Problems, p.Error())
	}
	for uid := range ev.lastGood {
		s.LastGood = append(s.LastGood, string(uid))
	}
	sort.Strings(s.LastGood)
	return s
}

func TestEvaluateTraffic(t *testing.T) {
	refs := trafficRefs{
		service:       func(ns, name string) bool { return ns == "demo" && name == "echo" },
		serviceImport: func(ns, name string) bool { return ns == "demo" && name == "echo-v2" },
	}
	good := trafficObj(t, "canary", 1, routeDoc)
	goodRoute, _, err := TrafficObjectFromUnstructured(good)
	if err != nil {
		t.Fatal(err)
	}
	const (
		routeOK    = "Accepted=True Accepted gen=%d: the route is in force"
		resolvedOK = "ResolvedRefs=True ResolvedRefs gen=%d: every backend and filter reference resolves"
	)
	for _, tc := range []struct {
		name     string
		objs     trafficObjects
		lastGood map[types.UID]acceptedTraffic
		want     summary
	}{
		{
			name: "every kind valid",
			objs: trafficObjects{
				policy.KindHTTPRoute:        {good},
				policy.KindGRPCRoute:        {trafficObj(t, "grpc", 4, grpcDoc)},
				policy.KindResiliencePolicy: {trafficObj(t, "resilience", 2, resilienceDoc)},
				policy.KindFaultInjection:   {trafficObj(t, "abort", 3, faultDoc)},
			},
			want: summary{
				InForce: []string{"HTTPRoute demo/canary rules=1", "GRPCRoute demo/grpc", "ResiliencePolicy demo/resilience", "FaultInjection demo/abort"},
				Status: map[string][]string{
					"FaultInjection abort": {"Accepted=True Accepted gen=3: the fault is in force"},
					"ResiliencePolicy resilience": {
						"Accepted=True Accepted gen=2: the policy is in force",
						"ResolvedRefs=True ResolvedRefs gen=2: every targetRef names an existing Service or ServiceImport",
					},
					"HTTPRoute canary parent echo": {fmt.Sprintf(routeOK, 1), fmt.Sprintf(resolvedOK, 1)},
					// A missing backend does not refuse the route.
					"GRPCRoute grpc parent echo-v2": {
						"Accepted=True Accepted gen=4: the route is in force",
						"ResolvedRefs=False BackendNotFound gen=4: spec.rules[0].backendRefs[0]: Service demo/gone does not exist",
					},
				},
				LastGood: []string{"u-abort", "u-canary", "u-grpc", "u-resilience"},
			},
		},
		{
			name: "a route whose FaultInjection does not exist is refused",
			objs: trafficObjects{policy.KindHTTPRoute: {good}},
			want: summary{
				Status: map[string][]string{"HTTPRoute canary parent echo": {
					`Accepted=False UnsupportedValue gen=1: HTTPRoute demo/canary: unmatched: spec.rules[0].filters[0].extensionRef.name "abort": no FaultInjection of that name is in force in namespace demo; the route is not in force`,
					"ResolvedRefs=False BackendNotFound gen=1: spec.rules[0].filters[0].extensionRef: FaultInjection demo/abort is not in force",
				}},
				Problems: []string{`HTTPRoute demo/canary: unmatched: spec.rules[0].filters[0].extensionRef.name "abort": no FaultInjection of that name is in force in namespace demo`},
			},
		},
		{
			name: "a bad edit keeps the last good version",
			objs: trafficObjects{
				policy.KindHTTPRoute:      {trafficObj(t, "canary", 2, strings.Replace(routeDoc, "name: abort}", "name: gone}", 1))},
				policy.KindFaultInjection: {trafficObj(t, "abort", 3, faultDoc)},
			},
			lastGood: map[types.UID]acceptedTraffic{"u-canary": {generation: 1, obj: goodRoute}},
			want: summary{
				InForce: []string{"HTTPRoute demo/canary rules=1", "FaultInjection demo/abort"},
				Status: map[string][]string{
					"FaultInjection abort": {"Accepted=True Accepted gen=3: the fault is in force"},
					"HTTPRoute canary parent echo": {
						`Accepted=False UnsupportedValue gen=2: HTTPRoute demo/canary: unmatched: spec.rules[0].filters[0].extensionRef.name "gone": no FaultInjection of that name is in force in namespace demo; the last accepted version (generation 1) stays in force`,
						"ResolvedRefs=False BackendNotFound gen=2: spec.rules[0].filters[0].extensionRef: FaultInjection demo/gone is not in force",
					},
				},
				Problems: []string{`HTTPRoute demo/canary: unmatched: spec.rules[0].filters[0].extensionRef.name "gone": no FaultInjection of that name is in force in namespace demo`},
				LastGood: []string{"u-abort", "u-canary"},
			},
		},
		{
			name: "a refused FaultInjection edit keeps its last good version, and the route that uses it",
			objs: trafficObjects{
				policy.KindHTTPRoute:      {good},
				policy.KindFaultInjection: {trafficObj(t, "abort", 4, "apiVersion: fedmesh.io/v1alpha1\nkind: FaultInjection\nspec: {abort: {httpStatus: 503, percentage: 10, color: red}}\n")},
			},
			lastGood: map[types.UID]acceptedTraffic{"u-abort": {generation: 3, obj: mustTraffic(t, trafficObj(t, "abort", 3, faultDoc))}},
			want: summary{
				InForce: []string{"HTTPRoute demo/canary rules=1", "FaultInjection demo/abort"},
				Status: map[string][]string{
					"FaultInjection abort":         {`Accepted=False Invalid gen=4: FaultInjection demo/abort: parse: cannot parse traffic object: FaultInjection: unknown field "spec.abort.color"; the last accepted version (generation 3) stays in force`},
					"HTTPRoute canary parent echo": {fmt.Sprintf(routeOK, 1), fmt.Sprintf(resolvedOK, 1)},
				},
				Problems: []string{`FaultInjection demo/abort: parse: cannot parse traffic object: FaultInjection: unknown field "spec.abort.color"`},
				LastGood: []string{"u-abort", "u-canary"},
			},
		},
		{
			name: "an unknown field is refused; a new object has no last good version",
			objs: trafficObjects{
				policy.KindResiliencePolicy: {trafficObj(t, "resilience", 1, resilienceDoc+"  color: blue\n")},
				policy.KindFaultInjection:   {trafficObj(t, "abort", 1, "apiVersion: fedmesh.io/v1alpha1\nkind: FaultInjection\nspec: {delay: {fixed: 1s, percentage: 5, extra: 1}}\n")},
			},
			want: summary{
				Status: map[string][]string{
					"FaultInjection abort": {`Accepted=False Invalid gen=1: FaultInjection demo/abort: parse: cannot parse traffic object: FaultInjection: unknown field "spec.delay.extra"; the fault is not in force`},
					"ResiliencePolicy resilience": {
						`Accepted=False Invalid gen=1: ResiliencePolicy demo/resilience: parse: cannot parse traffic object: ResiliencePolicy: unknown field "spec.color"; the policy is not in force`,
						// Read leniently, the refs still resolve.
						"ResolvedRefs=True ResolvedRefs gen=1: every targetRef names an existing Service or ServiceImport",
					},
				},
				Problems: []string{
					`FaultInjection demo/abort: parse: cannot parse traffic object: FaultInjection: unknown field "spec.delay.extra"`,
					`ResiliencePolicy demo/resilience: parse: cannot parse traffic object: ResiliencePolicy: unknown field "spec.color"`,
				},
			},
		},
		{
			name: "a missing targetRef does not refuse a policy",
			objs: trafficObjects{policy.KindResiliencePolicy: {trafficObj(t, "resilience", 1, strings.Replace(resilienceDoc, "name: echo}", "name: other}", 1))}},
			want: summary{
				InForce: []string{"ResiliencePolicy demo/resilience"},
				Status: map[string][]string{"ResiliencePolicy resilience": {
					"Accepted=True Accepted gen=1: the policy is in force",
					"ResolvedRefs=False BackendNotFound gen=1: spec.targetRefs[0]: Service demo/other does not exist",
				}},
				LastGood: []string{"u-resilience"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := summarize(evaluateTraffic(tc.objs, tc.lastGood, refs))
			if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b map[string][]string) bool {
				return cmp.Equal(a, b) || (len(a) == 0 && len(b) == 0)
			})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func mustTraffic(t testing.TB, u *unstructured.Unstructured) any {
	t.Helper()
	obj, _, err := TrafficObjectFromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// TestEvaluateTrafficExtensionKind checks that a route whose
// ExtensionRef is not a FaultInjection is refused with the field named
// and ResolvedRefs InvalidKind.
func TestEvaluateTrafficExtensionKind(t *testing.T) {
	refs := trafficRefs{service: func(string, string) bool { return true }, serviceImport: func(string, string) bool { return true }}
	route := trafficObj(t, "canary", 1, strings.Replace(routeDoc, "{group: fedmesh.io, kind: FaultInjection, name: abort}", "{group: example.com, kind: Limit, name: x}", 1))
	ev := evaluateTraffic(trafficObjects{policy.KindHTTPRoute: {route}}, nil, refs)
	if !ev.inForce.Empty() {
		t.Errorf("in force: %+v", ev.inForce)
	}
	const field = `spec.rules[0].filters[0].extensionRef "example.com/Limit"`
	if len(ev.problems) != 1 || ev.problems[0].Reason != source.ReasonInvalid || !strings.Contains(ev.problems[0].Error(), field) {
		t.Fatalf("problems %v, want one, invalid, naming %s", ev.problems, field)
	}
	if len(ev.statuses) != 1 || len(ev.statuses[0].Parents) != 1 {
		t.Fatalf("statuses %+v, want one parent entry", ev.statuses)
	}
	got := describe(ev.statuses[0].Parents[0].Conditions)
	if !strings.HasPrefix(got[0], "Accepted=False UnsupportedValue gen=1: ") || !strings.Contains(got[0], field) || !strings.HasSuffix(got[0], "; the route is not in force") {
		t.Errorf("Accepted: %s", got[0])
	}
	if want := `ResolvedRefs=False InvalidKind gen=1: spec.rules[0].filters[0].extensionRef: group "example.com" kind "Limit" is not a fedmesh.io FaultInjection`; got[1] != want {
		t.Errorf("ResolvedRefs: %s, want %s", got[1], want)
	}
}

func TestParentStatuses(t *testing.T) {
	accepted := metav1.Condition{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", Message: "in force", ObservedGeneration: 3}
	resolved := metav1.Condition{Type: "ResolvedRefs", Status: metav1.ConditionTrue, Reason: "ResolvedRefs", Message: "ok", ObservedGeneration: 3}
	g := func(s string) *gatewayv1.Group { v := gatewayv1.Group(s); return &v }
	k := func(s string) *gatewayv1.Kind { v := gatewayv1.Kind(s); return &v }
	parents := []gatewayv1.ParentReference{
		{Group: g(""), Kind: k("Service"), Name: "echo"},
		{Name: "ingress"}, // a Gateway, by the Gateway API's defaults
		{Group: g(policy.GatewayGroup), Kind: k("ListenerSet"), Name: "ls"},
		{Group: g(policy.MCSGroup), Kind: k("ServiceImport"), Name: "echo-v2"},
		{Group: g(""), Kind: k("Pod"), Name: "p"},
	}
	got := map[string][]string{}
	for _, p := range parentStatuses(parents, accepted, resolved) {
		if p.ControllerName != ControllerName {
			t.Errorf("controllerName %q", p.ControllerName)
		}
		got[string(p.ParentRef.Name)] = describe(p.Conditions)
	}
	want := map[string][]string{
		"echo":    {"Accepted=True Accepted gen=3: in force", "ResolvedRefs=True ResolvedRefs gen=3: ok"},
		"echo-v2": {"Accepted=True Accepted gen=3: in force", "ResolvedRefs=True ResolvedRefs gen=3: ok"},
		"p": {`Accepted=False UnsupportedValue gen=3: parentRef group "" kind "Pod": fedmesh attaches routes to a Service or a multicluster.x-k8s.io ServiceImport`,
			"ResolvedRefs=True ResolvedRefs gen=3: ok"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parent entries (-want +got):\n%s", d)
	}
}

// TestTrafficObjectFromUnstructured checks that an object from the API
// server converts to exactly what policy.ParseObject makes of the same
// object written as a file, whatever the server adds.
func TestTrafficObjectFromUnstructured(t *testing.T) {
	for _, doc := range []string{faultDoc, resilienceDoc, routeDoc, grpcDoc} {
		u := trafficObj(t, "x", 7, doc)
		u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: "Update"}})
		u.SetCreationTimestamp(metav1.NewTime(time.Unix(1e9, 0)))
		got, _, err := TrafficObjectFromUnstructured(u)
		if err != nil {
			t.Fatalf("%s: %v", u.GetKind(), err)
		}
		file := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &file.Object); err != nil {
			t.Fatal(err)
		}
		file.SetName("x")
		file.SetNamespace("demo")
		data, err := json.Marshal(file.Object)
		if err != nil {
			t.Fatal(err)
		}
		want, err := policy.ParseObject(data)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-file +object):\n%s", u.GetKind(), d)
		}
	}
}

func TestRouteWithParents(t *testing.T) {
	old := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	route := trafficObj(t, "r", 2, routeDoc)
	other := map[string]any{
		"parentRef":      map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ingress"},
		"controllerName": "example.com/gateway",
		"conditions": []any{map[string]any{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "theirs",
			"lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": int64(2)}},
	}
	ours := func(status, msg string, extra ...any) map[string]any {
		conds := []any{
			map[string]any{"type": "Accepted", "status": status, "reason": "Accepted", "message": msg,
				"lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": int64(2)},
			map[string]any{"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": "ok",
				"lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": int64(2)},
		}
		return map[string]any{
			"parentRef":      map[string]any{"group": "", "kind": "Service", "name": "echo"},
			"controllerName": string(ControllerName),
			"conditions":     append(conds, extra...),
		}
	}
	group, kind := gatewayv1.Group(""), gatewayv1.Kind("Service")
	want := []gatewayv1.RouteParentStatus{{
		ParentRef:      gatewayv1.ParentReference{Group: &group, Kind: &kind, Name: "echo"},
		ControllerName: ControllerName,
		Conditions: []metav1.Condition{
			{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", Message: "in force", ObservedGeneration: 2},
			{Type: "ResolvedRefs", Status: metav1.ConditionTrue, Reason: "ResolvedRefs", Message: "ok", ObservedGeneration: 2},
		},
	}}
	for _, tc := range []struct {
		name    string
		parents []any
		changed bool
	}{
		{"no status yet", nil, true},
		{"already so", []any{other, ours("True", "in force")}, false},
		{"message differs", []any{other, ours("True", "old")}, true},
		{"a stale parent of ours is dropped", []any{other, ours("True", "in force"),
			map[string]any{"parentRef": map[string]any{"name": "gone"}, "controllerName": string(ControllerName),
				"conditions": []any{map[string]any{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "x", "lastTransitionTime": "2025-01-01T00:00:00Z"}}}}, true},
		{"a condition type fedmesh does not set is dropped", []any{other, ours("True", "in force",
			map[string]any{"type": "Extra", "status": "True", "reason": "X", "message": "x", "lastTransitionTime": "2025-01-01T00:00:00Z"})}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := route.DeepCopy()
			u.Object["status"] = map[string]any{"parents": tc.parents}
			if tc.parents == nil {
				delete(u.Object, "status")
			}
			obj, changed, err := routeWithParents(TrafficStatus{Resource: HTTPRouteResource, Object: u, Parents: want})
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.changed {
				t.Fatalf("changed = %v, want %v", changed, tc.changed)
			}
			if !changed {
				return
			}
			var st gatewayv1.RouteStatus
			data, _ := json.Marshal(obj.Object["status"])
			if err := json.Unmarshal(data, &st); err != nil {
				t.Fatal(err)
			}
			var mine []gatewayv1.RouteParentStatus
			for _, p := range st.Parents {
				if p.ControllerName != ControllerName {
					if tc.parents == nil || p.ControllerName != "example.com/gateway" {
						t.Errorf("unexpected entry %+v", p)
					}
					continue
				}
				mine = append(mine, p)
			}
			if tc.parents != nil && len(st.Parents) != 2 {
				t.Errorf("%d entries, want the other controller's and ours", len(st.Parents))
			}
			for i := range mine {
				for j, c := range mine[i].Conditions {
					// A kept status keeps its transition time.
					if tc.parents != nil && !c.LastTransitionTime.Equal(&old) {
						t.Errorf("%s: lastTransitionTime %v, want the old one", c.Type, c.LastTransitionTime)
					}
					mine[i].Conditions[j].LastTransitionTime = metav1.Time{}
				}
			}
			if d := cmp.Diff(want, mine); d != "" {
				t.Errorf("our entries (-want +got):\n%s", d)
			}
		})
	}
}

// FuzzEvaluateTraffic feeds arbitrary objects of every kind through the
// source's evaluation: it must never panic, must put in force only what
// policy.ParseObject accepts, and must refuse or accept every object.
func FuzzEvaluateTraffic(f *testing.F) {
	for _, doc := range []string{faultDoc, resilienceDoc, routeDoc, grpcDoc} {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j)
	}
	f.Add([]byte(`{"apiVersion":"gateway.networking.k8s.io/v1","kind":"HTTPRoute","spec":{"rules":[{"filters":[{"type":"ExtensionRef"}]}]}}`))
	f.Add([]byte(`{"apiVersion":"gateway.networking.k8s.io/v1","kind":"GRPCRoute","spec":{"parentRefs":[{}],"rules":null}}`))
	refs := trafficRefs{service: func(string, string) bool { return true }, serviceImport: func(string, string) bool { return false }}
	f.Fuzz(func(t *testing.T, data []byte) {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return
		}
		u.SetName("x")
		u.SetNamespace("demo")
		u.SetUID("u")
		objs := trafficObjects{u.GetKind(): {u}}
		ev := evaluateTraffic(objs, nil, refs)
		n := len(ev.inForce.HTTPRoutes) + len(ev.inForce.GRPCRoutes) + len(ev.inForce.Resilience) + len(ev.inForce.Faults)
		if n+len(ev.problems) != len(ev.statuses) {
			t.Fatalf("%d in force, %d refused, %d statuses", n, len(ev.problems), len(ev.statuses))
		}
		for _, p := range ev.problems {
			if p.Reason != source.ReasonParse && p.Reason != source.ReasonInvalid && p.Reason != source.ReasonUnmatched {
				t.Fatalf("problem with reason %q: %v", p.Reason, p)
			}
		}
	})
}

// TestSourceTrafficWithoutCRD: while the API server does not serve every
// traffic CRD, no traffic object is read and the empty set is ready;
// once all are served, the objects are read, and the source's Problems
// list the refused ones.
func TestSourceTrafficWithoutCRD(t *testing.T) {
	clients := fakeClients(nil)
	bad := trafficObj(t, "bad", 1, "apiVersion: fedmesh.io/v1alpha1\nkind: FaultInjection\nspec: {abort: {httpStatus: 503, percentage: 10, color: red}}\n")
	dyn := fakeDynamic(trafficObj(t, "abort", 1, faultDoc), bad)
	var served atomic.Bool
	dyn.PrependReactor("list", HTTPRouteResource.Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		if served.Load() {
			return false, nil, nil
		}
		return true, nil, apierrors.NewNotFound(HTTPRouteResource.GroupResource(), "")
	})
	clients.Dynamic = dyn
	reg := prometheus.NewRegistry()
	src, err := NewSource(SourceConfig{Clients: clients, Cluster: "east-1", Debounce: time.Millisecond, PolicyProbe: 10 * time.Millisecond,
		Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	run(t, func(ctx context.Context) error { return src.Run(ctx, func([]catalog.Export) {}) })
	poll.Until(t, 10*time.Second, "ready with no traffic objects", func() error {
		tr, ready, _ := src.Traffic()
		if !ready || !tr.Empty() {
			return fmt.Errorf("ready %v, %+v", ready, tr)
		}
		return nil
	})
	served.Store(true)
	poll.Until(t, 10*time.Second, "the FaultInjection read once every CRD is served", func() error {
		tr, ready, _ := src.Traffic()
		if !ready || len(tr.Faults) != 1 || tr.Faults[0].Key() != "demo/abort" {
			return fmt.Errorf("ready %v, %+v", ready, tr)
		}
		return nil
	})
	found := false
	for _, p := range src.Problems() {
		if p.Object == "FaultInjection demo/bad" && p.Reason == source.ReasonParse {
			found = true
		}
	}
	if !found {
		t.Errorf("problems %v, want FaultInjection demo/bad", src.Problems())
	}
	if got := gatherCounter(t, reg, "fedmesh_kube_source_traffic_rejected_total", map[string]string{"kind": policy.KindFaultInjection, "reason": "parse"}); got != 1 {
		t.Errorf("rejected{FaultInjection,parse} = %v, want 1", got)
	}
	statuses, _ := src.TrafficStatus()
	if len(statuses) != 2 {
		t.Errorf("%d statuses, want one per object", len(statuses))
	}
}

// gatherCounter reads the counter of reg with exactly these labels.
func gatherCounter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
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
			if cmp.Equal(got, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}
