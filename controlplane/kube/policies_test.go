package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
)

// policyObject makes an AuthorizationPolicy as the API server serves it,
// with server-set metadata and a status, from the YAML of its spec.
func policyObject(t testing.TB, ns, name string, uid types.UID, generation int64, spec string) *unstructured.Unstructured {
	t.Helper()
	var s map[string]any
	if err := yaml.Unmarshal([]byte(spec), &s); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": policy.APIVersion,
		"kind":       policy.Kind,
		"metadata": map[string]any{
			"name": name, "namespace": ns, "uid": string(uid), "generation": generation,
			"resourceVersion":   fmt.Sprint(100 + generation),
			"creationTimestamp": "2025-01-01T00:00:00Z",
			"labels":            map[string]any{"team": "a"},
			"managedFields": []any{map[string]any{
				"manager": "kubectl", "operation": "Update", "apiVersion": policy.APIVersion,
				"fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:spec": map[string]any{}},
			}},
		},
		"status": map[string]any{"conditions": []any{map[string]any{
			"type": "Accepted", "status": "True", "reason": "Accepted", "message": "old",
			"lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": int64(1),
		}}},
	}}
	if s != nil {
		u.Object["spec"] = s
	}
	return u
}

const (
	goodSpec = `
targetRefs: [{kind: Service, name: echo}]
action: DENY
rules:
- from: [{source: {principals: ["spiffe://fedmesh.local/ns/demo/sa/evil"]}}]
  to: [{operation: {ports: ["8080"], methods: [POST], paths: ["/admin/*"]}}]
`
	badSpec = `
targetRefs: [{kind: Service, name: echo}]
rules:
- from: [{source: {principals: ["spiffe://a*b"]}}]
`
)

// TestPolicyFromObject checks that an object from the API server converts
// to exactly what policy.Parse makes of the same policy written as a file,
// whatever the server adds (managed fields, status, resource version).
func TestPolicyFromObject(t *testing.T) {
	got, reason, err := PolicyFromObject(policyObject(t, "demo", "deny-admin", "u1", 3, goodSpec))
	if err != nil || reason != "" {
		t.Fatalf("PolicyFromObject: %q %v", reason, err)
	}
	want, err := policy.Parse([]byte("apiVersion: fedmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: deny-admin, namespace: demo}\nspec:\n" +
		indent(goodSpec)))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("policy (-want +got):\n%s", d)
	}
	if got.Spec.Rules[0].To[0].Operation.Ports[0] != 8080 {
		t.Errorf("port %v, want 8080 from the string \"8080\"", got.Spec.Rules[0].To[0].Operation.Ports)
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

func TestPolicyFromObjectRefuses(t *testing.T) {
	for _, tc := range []struct {
		name       string
		obj        func() *unstructured.Unstructured
		wantReason source.Reason
		wantIn     []string // substrings of the error
	}{
		{
			name:       "bad principal glob",
			obj:        func() *unstructured.Unstructured { return policyObject(t, "demo", "p", "u", 1, badSpec) },
			wantReason: source.ReasonInvalid,
			wantIn:     []string{"spec.rules[0].from[0].source.principals[0]", `"*" may only stand alone`},
		},
		{
			name: "wrong targetRef kind and action",
			obj: func() *unstructured.Unstructured {
				return policyObject(t, "demo", "p", "u", 1, "targetRefs: [{kind: Deployment, name: echo}]\naction: MAYBE\n")
			},
			wantReason: source.ReasonInvalid,
			wantIn:     []string{"spec.targetRefs[0].kind", "spec.action"},
		},
		{
			name: "unknown field",
			obj: func() *unstructured.Unstructured {
				return policyObject(t, "demo", "p", "u", 1, "rules: [{froms: []}]\n")
			},
			wantReason: source.ReasonParse,
			wantIn:     []string{`unknown field "spec.rules[0].froms"`},
		},
		{
			name:       "mistyped field",
			obj:        func() *unstructured.Unstructured { return policyObject(t, "demo", "p", "u", 1, "rules: {}\n") },
			wantReason: source.ReasonParse,
			wantIn:     []string{"spec.rules"},
		},
		{
			name: "port out of range",
			obj: func() *unstructured.Unstructured {
				return policyObject(t, "demo", "p", "u", 1, "rules: [{to: [{operation: {ports: [70000]}}]}]\n")
			},
			wantReason: source.ReasonInvalid,
			wantIn:     []string{"spec.rules[0].to[0].operation.ports[0]", "out of range"},
		},
		{
			name: "wrong version",
			obj: func() *unstructured.Unstructured {
				u := policyObject(t, "demo", "p", "u", 1, goodSpec)
				u.SetAPIVersion("fedmesh.io/v2")
				return u
			},
			wantReason: source.ReasonParse,
			wantIn:     []string{"fedmesh.io/v2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, reason, err := PolicyFromObject(tc.obj())
			if err == nil {
				t.Fatalf("accepted %+v", p)
			}
			if reason != tc.wantReason {
				t.Errorf("reason %q, want %q (%v)", reason, tc.wantReason, err)
			}
			if tc.wantReason == source.ReasonInvalid && !errors.Is(err, catalog.ErrInvalid) {
				t.Errorf("error %v does not wrap catalog.ErrInvalid", err)
			}
			if tc.wantReason == source.ReasonParse && !errors.Is(err, policy.ErrParse) {
				t.Errorf("error %v does not wrap policy.ErrParse", err)
			}
			for _, w := range tc.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// conditionLine renders a condition without its time, for comparing.
func conditionLine(c metav1.Condition) string {
	return fmt.Sprintf("%s=%s %s gen=%d: %s", c.Type, c.Status, c.Reason, c.ObservedGeneration, c.Message)
}

func TestEvaluatePolicies(t *testing.T) {
	services := map[string]bool{"demo/echo": true}
	exists := func(ns, name string) bool { return services[ns+"/"+name] }
	good := policyObject(t, "demo", "a-good", "u-good", 2, goodSpec)
	goodPolicy, _, err := PolicyFromObject(good)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		inForce    []string // keys
		conditions map[string][]string
		problems   []string
		lastGood   []types.UID
	}
	for _, tc := range []struct {
		name     string
		objs     []*unstructured.Unstructured
		lastGood map[types.UID]acceptedPolicy
		want     want
	}{
		{
			name: "good and never-good bad",
			objs: []*unstructured.Unstructured{
				policyObject(t, "demo", "b-bad", "u-bad", 1, badSpec),
				good,
			},
			want: want{
				inForce: []string{"demo/a-good"},
				conditions: map[string][]string{
					"demo/a-good": {
						"Accepted=True Accepted gen=2: the policy is in force",
						"ResolvedRefs=True ResolvedRefs gen=2: every targetRef names an existing Service",
					},
					"demo/b-bad": {
						`Accepted=False Invalid gen=1: AuthorizationPolicy demo/b-bad: invalid: spec.rules[0].from[0].source.principals[0] "spiffe://a*b": "*" may only stand alone or at the start or end: a glob is "*", "prefix*", "*suffix" or an exact value; the policy is not in force`,
						"ResolvedRefs=True ResolvedRefs gen=1: every targetRef names an existing Service",
					},
				},
				problems: []string{`AuthorizationPolicy demo/b-bad: invalid: spec.rules[0].from[0].source.principals[0] "spiffe://a*b": "*" may only stand alone or at the start or end: a glob is "*", "prefix*", "*suffix" or an exact value`},
				lastGood: []types.UID{"u-good"},
			},
		},
		{
			name:     "bad edit keeps the last accepted version",
			objs:     []*unstructured.Unstructured{policyObject(t, "demo", "a-good", "u-good", 3, badSpec)},
			lastGood: map[types.UID]acceptedPolicy{"u-good": {generation: 2, policy: *goodPolicy}},
			want: want{
				inForce: []string{"demo/a-good"},
				conditions: map[string][]string{"demo/a-good": {
					`Accepted=False Invalid gen=3: AuthorizationPolicy demo/a-good: invalid: spec.rules[0].from[0].source.principals[0] "spiffe://a*b": "*" may only stand alone or at the start or end: a glob is "*", "prefix*", "*suffix" or an exact value; the last accepted version (generation 2) stays in force`,
					"ResolvedRefs=True ResolvedRefs gen=3: every targetRef names an existing Service",
				}},
				problems: []string{`AuthorizationPolicy demo/a-good: invalid: spec.rules[0].from[0].source.principals[0] "spiffe://a*b": "*" may only stand alone or at the start or end: a glob is "*", "prefix*", "*suffix" or an exact value`},
				lastGood: []types.UID{"u-good"},
			},
		},
		{
			name: "recreated under a new UID: the old version is not resurrected",
			objs: []*unstructured.Unstructured{policyObject(t, "demo", "a-good", "u-new", 1, badSpec)},
			lastGood: map[types.UID]acceptedPolicy{
				"u-good": {generation: 2, policy: *goodPolicy},
			},
			want: want{
				conditions: map[string][]string{"demo/a-good": {
					`Accepted=False Invalid gen=1: AuthorizationPolicy demo/a-good: invalid: spec.rules[0].from[0].source.principals[0] "spiffe://a*b": "*" may only stand alone or at the start or end: a glob is "*", "prefix*", "*suffix" or an exact value; the policy is not in force`,
					"ResolvedRefs=True ResolvedRefs gen=1: every targetRef names an existing Service",
				}},
				problems: []string{`AuthorizationPolicy demo/a-good: invalid: spec.rules[0].from[0].source.principals[0] "spiffe://a*b": "*" may only stand alone or at the start or end: a glob is "*", "prefix*", "*suffix" or an exact value`},
			},
		},
		{
			name: "targetRefs that do not resolve",
			objs: []*unstructured.Unstructured{
				policyObject(t, "demo", "missing", "u1", 1, "targetRefs: [{kind: Service, name: echo}, {kind: Service, name: nope}]\n"),
				policyObject(t, "demo", "kind", "u2", 1, "targetRefs: [{kind: Deployment, name: echo}]\n"),
				policyObject(t, "fedmesh-system", "mesh-deny", "u3", 1, "{}"),
				policyObject(t, "demo", "ns-deny", "u4", 4, "{}"),
			},
			want: want{
				inForce: []string{"demo/missing", "demo/ns-deny", "fedmesh-system/mesh-deny"},
				conditions: map[string][]string{
					"demo/missing": {
						"Accepted=True Accepted gen=1: the policy is in force",
						"ResolvedRefs=False BackendNotFound gen=1: spec.targetRefs[1]: Service demo/nope does not exist",
					},
					"demo/kind": {
						`Accepted=False Invalid gen=1: AuthorizationPolicy demo/kind: invalid: spec.targetRefs[0].kind "Deployment": must be Service; the policy is not in force`,
						`ResolvedRefs=False InvalidKind gen=1: spec.targetRefs[0]: group "" kind "Deployment" is not a Service of the core group`,
					},
					"fedmesh-system/mesh-deny": {
						"Accepted=True Accepted gen=1: the policy is in force",
						"ResolvedRefs=True ResolvedRefs gen=1: no targetRefs: the policy applies to every service of the mesh",
					},
					"demo/ns-deny": {
						"Accepted=True Accepted gen=4: the policy is in force",
						"ResolvedRefs=True ResolvedRefs gen=4: no targetRefs: the policy applies to every service of its namespace",
					},
				},
				problems: []string{`AuthorizationPolicy demo/kind: invalid: spec.targetRefs[0].kind "Deployment": must be Service`},
				lastGood: []types.UID{"u1", "u3", "u4"},
			},
		},
		{
			name: "unreadable targetRefs",
			objs: []*unstructured.Unstructured{policyObject(t, "demo", "p", "u1", 1, "targetRefs: 3\n")},
			want: want{
				conditions: map[string][]string{"demo/p": {
					"Accepted=False Invalid gen=1: AuthorizationPolicy demo/p: parse: cannot parse AuthorizationPolicy: json: cannot unmarshal number into Go struct field AuthorizationPolicySpec.spec.targetRefs of type []policy.TargetRef; the policy is not in force",
					"ResolvedRefs=Unknown Pending gen=1: spec.targetRefs could not be read",
				}},
				problems: []string{"AuthorizationPolicy demo/p: parse: cannot parse AuthorizationPolicy: json: cannot unmarshal number into Go struct field AuthorizationPolicySpec.spec.targetRefs of type []policy.TargetRef"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := evaluatePolicies(tc.objs, tc.lastGood, exists)
			var got want
			for _, p := range ev.inForce {
				got.inForce = append(got.inForce, p.Key())
			}
			got.conditions = map[string][]string{}
			for _, st := range ev.statuses {
				k := st.Object.GetNamespace() + "/" + st.Object.GetName()
				for _, c := range st.Conditions {
					got.conditions[k] = append(got.conditions[k], conditionLine(c))
				}
			}
			for _, p := range ev.problems {
				got.problems = append(got.problems, p.Error())
			}
			for uid := range ev.lastGood {
				got.lastGood = append(got.lastGood, uid)
			}
			opts := cmp.Options{cmp.AllowUnexported(want{}), cmpopts.SortSlices(func(a, b types.UID) bool { return a < b }), cmpopts.EquateEmpty()}
			if d := cmp.Diff(tc.want, got, opts); d != "" {
				t.Errorf("evaluation (-want +got):\n%s", d)
			}
			if len(ev.refused) != len(ev.problems) {
				t.Errorf("%d refusals for %d problems", len(ev.refused), len(ev.problems))
			}
		})
	}
}

// TestPolicyWithConditions checks that conditions are written only when
// they change, keep their transition time while their status stays, and
// leave other writers' conditions alone.
func TestPolicyWithConditions(t *testing.T) {
	obj := policyObject(t, "demo", "p", "u", 2, goodSpec)
	foreign := map[string]any{"type": "Example", "status": "True", "reason": "Other", "message": "another writer's",
		"lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": int64(1)}
	if err := unstructured.SetNestedSlice(obj.Object, append(obj.Object["status"].(map[string]any)["conditions"].([]any), foreign), "status", "conditions"); err != nil {
		t.Fatal(err)
	}
	ev := evaluatePolicies([]*unstructured.Unstructured{obj}, nil, func(string, string) bool { return true })
	written, changed, err := policyWithConditions(ev.statuses[0])
	if err != nil || !changed {
		t.Fatalf("first write: changed %v, err %v", changed, err)
	}
	conds := decodeConditions(t, written)
	var lines []string
	for _, c := range conds {
		lines = append(lines, conditionLine(c))
	}
	want := []string{
		"Accepted=True Accepted gen=2: the policy is in force",
		"Example=True Other gen=1: another writer's",
		"ResolvedRefs=True ResolvedRefs gen=2: every targetRef names an existing Service",
	}
	if d := cmp.Diff(want, lines, cmpopts.SortSlices(func(a, b string) bool { return a < b })); d != "" {
		t.Errorf("conditions (-want +got):\n%s", d)
	}
	for _, c := range conds {
		if c.Type == PolicyConditionAccepted && !c.LastTransitionTime.Equal(&metav1.Time{Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}) {
			t.Errorf("Accepted stayed True but its transition time moved to %v", c.LastTransitionTime)
		}
	}
	if written.GetResourceVersion() != obj.GetResourceVersion() {
		t.Errorf("resourceVersion %q, want the read one %q (optimistic concurrency)", written.GetResourceVersion(), obj.GetResourceVersion())
	}
	// Written once, the same conditions need no second write.
	again := evaluatePolicies([]*unstructured.Unstructured{written}, nil, func(string, string) bool { return true })
	if _, changed, err := policyWithConditions(again.statuses[0]); changed || err != nil {
		t.Errorf("second write: changed %v, err %v; want no write", changed, err)
	}
}

func decodeConditions(t *testing.T, u *unstructured.Unstructured) []metav1.Condition {
	t.Helper()
	var st struct {
		Conditions []metav1.Condition `json:"conditions"`
	}
	raw, _, _ := unstructured.NestedMap(u.Object, "status")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st); err != nil {
		t.Fatal(err)
	}
	return st.Conditions
}

// TestSourcePolicies runs the source on fake clients: the policies are
// in force once read, a bad one is refused and counted once, and the
// sink writes the conditions.
func TestSourcePolicies(t *testing.T) {
	clients := fakeClients([]runtime.Object{svc("echo", httpPort(8080))})
	good := policyObject(t, "demo", "good", "u-good", 1, goodSpec)
	bad := policyObject(t, "demo", "bad", "u-bad", 1, badSpec)
	clients.Dynamic = fakeDynamic(good, bad)
	reg := prometheus.NewRegistry()
	src, err := NewSource(SourceConfig{Clients: clients, Cluster: "east-1", Debounce: time.Millisecond, Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, ready, _ := src.AuthorizationPolicies(); ready {
		t.Fatal("ready before Run")
	}
	sink, err := NewSink(SinkConfig{Clients: clients, Cluster: "east-1", Policies: src, Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	run(t, func(ctx context.Context) error { return src.Run(ctx, func([]catalog.Export) {}) })
	run(t, sink.Run)
	poll.Until(t, 10*time.Second, "the good policy in force", func() error {
		ps, ready, _ := src.AuthorizationPolicies()
		if !ready || len(ps) != 1 || ps[0].Key() != "demo/good" {
			return fmt.Errorf("ready %v, policies %d", ready, len(ps))
		}
		return nil
	})
	poll.Until(t, 10*time.Second, "conditions written", func() error {
		u, err := clients.Dynamic.Resource(PolicyResource).Namespace("demo").Get(context.Background(), "bad", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range decodeConditions(t, u) {
			if c.Type == PolicyConditionAccepted && c.Status == metav1.ConditionFalse && c.Reason == PolicyReasonInvalid &&
				strings.Contains(c.Message, "spec.rules[0].from[0].source.principals[0]") {
				return nil
			}
		}
		b, _ := json.Marshal(u.Object["status"])
		return fmt.Errorf("status %s", b)
	})
	probs := src.Problems()
	if len(probs) != 1 || probs[0].Object != "AuthorizationPolicy demo/bad" || probs[0].Reason != source.ReasonInvalid {
		t.Errorf("problems %v, want the bad policy, invalid", probs)
	}
	if got := counterValue(t, src.pol.rejected.WithLabelValues(string(source.ReasonInvalid))); got != 1 {
		t.Errorf("rejected{invalid} = %v, want 1 (counted once, whatever the rebuilds)", got)
	}
}

// FuzzPolicyFromObject feeds arbitrary objects to the conversion: it
// never panics, and what it accepts is valid and converts again to the
// same policy.
func FuzzPolicyFromObject(f *testing.F) {
	for _, spec := range []string{goodSpec, badSpec, "{}", "rules: [{when: [{key: 'request.headers[x]', values: [a]}]}]"} {
		u := policyObject(f, "demo", "p", "u", 1, spec)
		b, err := json.Marshal(u.Object)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return
		}
		p, reason, err := PolicyFromObject(u)
		if err != nil {
			if reason != source.ReasonInvalid && reason != source.ReasonParse {
				t.Fatalf("reason %q for %v", reason, err)
			}
			return
		}
		if err := policy.Validate(p); err != nil {
			t.Fatalf("accepted an invalid policy: %v", err)
		}
		_ = evaluatePolicies([]*unstructured.Unstructured{u}, nil, func(string, string) bool { return false })
	})
}

// TestSourcePoliciesWithoutCRD: while the API server does not serve the
// CRD, no policy can exist, so the empty set is ready (inbound listeners
// are served); once it is served, its policies are read.
func TestSourcePoliciesWithoutCRD(t *testing.T) {
	clients := fakeClients(nil)
	dyn := fakeDynamic(policyObject(t, "demo", "p", "u", 1, "{}"))
	var served atomic.Bool
	dyn.PrependReactor("list", PolicyResource.Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		if served.Load() {
			return false, nil, nil
		}
		return true, nil, apierrors.NewNotFound(PolicyResource.GroupResource(), "")
	})
	clients.Dynamic = dyn
	src, err := NewSource(SourceConfig{Clients: clients, Cluster: "east-1", Debounce: time.Millisecond, PolicyProbe: 10 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	exported := make(chan struct{})
	var once sync.Once
	run(t, func(ctx context.Context) error {
		return src.Run(ctx, func([]catalog.Export) { once.Do(func() { close(exported) }) })
	})
	poll.Until(t, 10*time.Second, "ready with no policies", func() error {
		ps, ready, _ := src.AuthorizationPolicies()
		if !ready || len(ps) != 0 {
			return fmt.Errorf("ready %v, %d policies", ready, len(ps))
		}
		return nil
	})
	<-exported // exports do not wait for the CRD
	served.Store(true)
	poll.Until(t, 10*time.Second, "the policy read once the CRD is served", func() error {
		ps, ready, _ := src.AuthorizationPolicies()
		if !ready || len(ps) != 1 {
			return fmt.Errorf("ready %v, %d policies", ready, len(ps))
		}
		return nil
	})
}
