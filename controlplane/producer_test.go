package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/store"
)

func parseTraffic(t testing.TB, docs ...string) policy.Traffic {
	t.Helper()
	var tr policy.Traffic
	for _, d := range docs {
		obj, err := policy.ParseObject([]byte(d))
		if err != nil {
			t.Fatalf("parse %q: %v", d, err)
		}
		if err := tr.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// route is an HTTPRoute ns/name with parentRef parent (of ns unless
// parentNS is set) and a 100-weight/weight split to echo-v2.
func route(ns, name, parent, parentNS string, weight int) string {
	pns := ""
	if parentNS != "" {
		pns = ", namespace: " + parentNS
	}
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: %s%s}]
  rules:
  - backendRefs: [{name: echo, namespace: demo, port: 8080, weight: %d}, {name: echo-v2, namespace: demo, port: 8080, weight: %d}]
`, name, ns, parent, pns, 100-weight, weight)
}

const (
	shopResilience = `apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
metadata: {name: shop-retries, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: shop}]
`
	shopYAML = `apiVersion: v1
kind: Service
metadata: {name: shop, namespace: demo}
spec:
  selector: {app: shop}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: shop, namespace: demo, creationTimestamp: "2026-01-01T00:00:00Z"}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: shop-1, namespace: demo, labels: {app: shop}}
spec: {address: 127.0.1.2, ports: {http: 15006}, serviceAccount: shop}
`
)

func exportOf(name string) catalog.Export {
	return catalog.Export{Service: catalog.Service{Namespace: "demo", Name: name, Cluster: "east-1", Type: catalog.ClusterSetIP,
		Ports: []catalog.Port{{Name: "http", Port: 8080}}}}
}

// encodeProducer is what an export of demo/name must carry for tr.
func encodeProducer(t testing.TB, tr policy.Traffic, name string) *catalog.Policies {
	t.Helper()
	p, err := policy.EncodePolicies(policy.ProducerOf(&tr, "demo", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProducersJoin(t *testing.T) {
	docs := []string{
		route("demo", "canary", "echo", "", 10),
		route("client", "consumer", "echo", "demo", 50), // a consumer route: travels nowhere
		route("demo", "ghost-route", "ghost", "", 10),   // demo/ghost is not exported
		shopResilience,
	}
	tr := parseTraffic(t, docs...)
	p := newProducers(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}), true)

	p.setExports([]catalog.Export{exportOf("echo"), exportOf("shop")})
	select {
	case set := <-p.out:
		t.Fatalf("exports %+v sent before the traffic source was ready", set)
	default:
	}
	// A traffic source that never gets ready holds the exports only
	// until stopWaiting: then they go without policies.
	p.stopWaiting()
	if set := <-p.out; len(set) != 2 || set[0].Policies != nil || set[1].Policies != nil {
		t.Fatalf("exports after giving up waiting: %+v, want both without policies", set)
	}
	p.setTraffic(tr, true)
	set := <-p.out
	want := map[string]*catalog.Policies{"echo": encodeProducer(t, tr, "echo"), "shop": encodeProducer(t, tr, "shop")}
	if want["echo"] == nil || want["shop"] == nil {
		t.Fatal("test set has no producer policies")
	}
	for _, e := range set {
		if diff := cmp.Diff(want[e.Service.Name], e.Policies); diff != "" {
			t.Errorf("policies of %s (-want +got):\n%s", e.Service.Name, diff)
		}
	}
	wantUnpublished := []Unpublished{{Kind: policy.KindHTTPRoute, Namespace: "demo", Name: "ghost-route", Service: "demo/ghost"}}
	if diff := cmp.Diff(wantUnpublished, p.Unpublished()); diff != "" {
		t.Errorf("unpublished (-want +got):\n%s", diff)
	}

	// shop stops being exported: its policy is unpublished; the route
	// goes: echo carries none.
	p.setExports([]catalog.Export{exportOf("echo")})
	<-p.out
	p.setTraffic(parseTraffic(t, shopResilience), true)
	set = <-p.out
	if len(set) != 1 || set[0].Policies != nil {
		t.Errorf("exports %+v, want echo without policies", set)
	}
	wantUnpublished = []Unpublished{{Kind: policy.KindResiliencePolicy, Namespace: "demo", Name: "shop-retries", Service: "demo/shop"}}
	if diff := cmp.Diff(wantUnpublished, p.Unpublished()); diff != "" {
		t.Errorf("unpublished (-want +got):\n%s", diff)
	}
}

// modRevision returns the etcd revision that last wrote the export of
// demo/name.
func modRevision(t *testing.T, st *store.Store, name string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := st.Client().Get(ctx, store.ExportKey("east-1", catalog.ServiceKey{Namespace: "demo", Name: name}))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get export of %s: %v (%d keys)", name, err, len(resp.Kvs))
	}
	return resp.Kvs[0].ModRevision
}

// TestMemberPublishesProducerPolicies runs a control plane with a real
// etcd whose file source has routes: each export carries its service's
// producer policies, a changed route rewrites only that service's export,
// and the traffic page lists every object with its origin.
func TestMemberPublishesProducerPolicies(t *testing.T) {
	m := startMember(t, memberOptions{files: map[string]string{"echo.yaml": echoYAML, "shop.yaml": shopYAML}})
	stored := func(name string) (*catalog.Policies, error) {
		st := m.srv.Store()
		if st == nil {
			return nil, fmt.Errorf("store not open")
		}
		es, _, err := st.ListExports(context.Background(), "east-1")
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.Service.Name == name {
				return e.Policies, nil
			}
		}
		return nil, fmt.Errorf("no export of %s", name)
	}
	waitPolicies := func(what, name string, want *catalog.Policies) {
		t.Helper()
		poll.Until(t, 30*time.Second, what, func() error {
			got, err := stored(name)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				return fmt.Errorf("stored policies of %s (-want +got):\n%s", name, diff)
			}
			return nil
		})
	}

	docs := []string{route("demo", "canary", "echo", "", 10), route("client", "consumer", "echo", "demo", 50),
		route("demo", "ghost-route", "ghost", "", 10), shopResilience}
	m.write(t, "traffic.yaml", strings.Join(docs, "---\n"))
	tr := parseTraffic(t, docs...)
	waitPolicies("echo published with its route", "echo", encodeProducer(t, tr, "echo"))
	waitPolicies("shop published with its policy", "shop", encodeProducer(t, tr, "shop"))

	shopRev := modRevision(t, m.srv.Store(), "shop")
	echoRev := modRevision(t, m.srv.Store(), "echo")
	docs[0] = route("demo", "canary", "echo", "", 90)
	m.write(t, "traffic.yaml", strings.Join(docs, "---\n"))
	tr = parseTraffic(t, docs...)
	waitPolicies("echo's new route published", "echo", encodeProducer(t, tr, "echo"))
	if got := modRevision(t, m.srv.Store(), "echo"); got <= echoRev {
		t.Errorf("echo's export not rewritten: revision %d, was %d", got, echoRev)
	}
	if got := modRevision(t, m.srv.Store(), "shop"); got != shopRev {
		t.Errorf("shop's export rewritten at revision %d (was %d) though its policies did not change", got, shopRev)
	}

	var page TrafficPage
	poll.Until(t, 30*time.Second, "traffic page with a view", func() error {
		if err := m.operatorGet(TrafficPath, &page); err != nil {
			return err
		}
		if page.ViewRevision == 0 {
			return fmt.Errorf("no view yet")
		}
		return nil
	})
	type row struct{ Kind, NS, Name, Origin, Cluster, Service string }
	var rows []row
	notes := map[string]string{}
	for _, o := range page.Objects {
		rows = append(rows, row{o.Kind, o.Namespace, o.Name, o.Origin, o.Cluster, o.Service})
		notes[o.Name] = o.Note
		var obj bytes.Buffer
		if err := json.Compact(&obj, o.Object); err != nil {
			t.Errorf("%s %s: object: %v", o.Kind, o.Name, err)
		}
		if o.Name == "canary" && (!o.Published || o.Rules != 1 || !strings.Contains(obj.String(), `{"name":"echo-v2","namespace":"demo","port":8080,"weight":90}`)) {
			t.Errorf("canary: published %v, %d rules, %s; want published, 1 rule, weight 90 to echo-v2", o.Published, o.Rules, obj.String())
		}
	}
	wantRows := []row{
		{"HTTPRoute", "client", "consumer", OriginLocal, "east-1", ""},
		{"HTTPRoute", "demo", "canary", OriginLocal, "east-1", "demo/echo"},
		{"HTTPRoute", "demo", "ghost-route", OriginLocal, "east-1", "demo/ghost"},
		{"ResiliencePolicy", "demo", "shop-retries", OriginLocal, "east-1", "demo/shop"},
	}
	if diff := cmp.Diff(wantRows, rows); diff != "" {
		t.Errorf("traffic objects (-want +got):\n%s", diff)
	}
	if !strings.Contains(notes["ghost-route"], "not published (this cluster does not export demo/ghost)") {
		t.Errorf("ghost-route's note %q does not say it is not published", notes["ghost-route"])
	}
	if !page.SourceTraffic || !page.SourceReady {
		t.Errorf("page says source traffic %v, ready %v", page.SourceTraffic, page.SourceReady)
	}
}

// TestTrafficObjectsFromTheView lists what the view brings: another
// cluster's producer policies with their origin, this cluster's own
// left to the local list, and the policy conflict on both.
func TestTrafficObjectsFromTheView(t *testing.T) {
	west := parseTraffic(t, route("demo", "canary", "echo", "", 100))
	local := parseTraffic(t, route("demo", "canary", "echo", "", 10), shopResilience)
	westPol := encodeProducer(t, west, "echo")
	view := &catalog.View{Revision: 3, Local: "east-1", Services: []catalog.ImportedService{
		{Namespace: "demo", Name: "echo", Clusters: []string{"east-1", "west-1"}, Policies: westPol, PoliciesCluster: "west-1",
			Conditions: []catalog.Condition{
				{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonPolicyConflict, Cluster: "east-1", Message: "producer policies from east-1 (digest x) differ from those in force, from west-1 (digest y), the oldest export that carries any"},
				{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonPolicyConflict, Cluster: "west-1", Message: "producer policies of the oldest export that carries any, from west-1, are in force; conflicting producer policies: east-1"},
			}},
		{Namespace: "demo", Name: "shop", Clusters: []string{"east-1"}, Policies: encodeProducer(t, local, "shop"), PoliciesCluster: "east-1"},
	}}
	type row struct{ Kind, Name, Origin, Cluster, Service, Digest string }
	var rows []row
	notes := map[string]string{}
	for _, o := range trafficObjects("east-1", &local, nil, view) {
		rows = append(rows, row{o.Kind, o.Name, o.Origin, o.Cluster, o.Service, o.Digest})
		notes[o.Origin+"/"+o.Name] = o.Note
	}
	want := []row{
		{"HTTPRoute", "canary", OriginExport, "west-1", "demo/echo", westPol.Digest},
		{"HTTPRoute", "canary", OriginLocal, "east-1", "demo/echo", ""},
		{"ResiliencePolicy", "shop-retries", OriginLocal, "east-1", "demo/shop", ""},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if n := notes["local/canary"]; !strings.HasPrefix(n, "PolicyConflict: producer policies from east-1") {
		t.Errorf("local canary's note %q does not report the conflict", n)
	}
	conflicts := policyConflicts(view)
	if len(conflicts) != 2 || conflicts[0].InForce != "west-1" || conflicts[1].Cluster != "west-1" {
		t.Errorf("conflicts %+v, want both sides with west-1 in force", conflicts)
	}
}
