package xds

import (
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/policy"
)

const storeCluster = "outbound|5432||store.demo.svc.clusterset.local"

// withTierFailover labels echo's endpoints (east-1 silver, east-2 and
// west-1 gold) and gives echo a producer ResiliencePolicy whose failover
// ranks by the tier label first; store has no policy.
func withTierFailover(t testing.TB) func(*catalog.View) {
	obj, err := policy.ParseObject([]byte(`apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
metadata: {name: echo-failover, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  failover: {failoverPriority: [tier]}
`))
	if err != nil {
		t.Fatal(err)
	}
	var tr policy.Traffic
	if err := tr.Add(obj); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.EncodePolicies(tr)
	if err != nil {
		t.Fatal(err)
	}
	return func(v *catalog.View) {
		echo := &v.Services[0]
		echo.Policies, echo.PoliciesCluster = pol, "west-1"
		for i := range echo.Endpoints {
			e := &echo.Endpoints[i]
			e.Labels = map[string]string{"tier": "gold"}
			if e.Locality.Cluster == "east-1" {
				e.Labels["tier"] = "silver"
			}
		}
	}
}

func withLabels(n Node, id string, labels map[string]string) Node {
	n.ID, n.Labels = id, labels
	return n
}

// Two sidecars of one locality whose labels differ on the failover key
// receive different priorities for echo from the running server, and
// the same assignment of store, which no failoverPriority concerns.
func TestFailoverPriorityByClientLabels(t *testing.T) {
	h := startServer(t, nil)
	v := testView("east-1", withTierFailover(t))
	v.Revision = 2
	if err := h.srv.UpdateView(v); err != nil {
		t.Fatal(err)
	}
	gold := h.dial(t, withLabels(clientNode(), "sidecar~gold", map[string]string{"tier": "gold", "app": "client"}))
	silver := h.dial(t, withLabels(clientNode(), "sidecar~silver", map[string]string{"tier": "silver"}))
	got := map[string][]string{}
	stores := map[string]*endpointv3.ClusterLoadAssignment{}
	for name, a := range map[string]*adsStream{"gold": gold, "silver": silver} {
		a.request(resourcev3.EndpointType, []string{echoCluster, storeCluster}, "", "")
		resp, err := a.recv()
		if err != nil {
			t.Fatal(err)
		}
		got[name] = summarizeCLA(claFrom(t, resp, echoCluster))
		stores[name] = claFrom(t, resp, storeCluster)
	}
	want := map[string][]string{
		"gold": {
			"p0 us-east/b/east-2 w1: 127.0.0.12:15443 HEALTHY w1 sni=" + echoSNI,
			"p1 us-west/a/west-1 w2: 127.0.0.13:15443 HEALTHY w2 sni=" + echoSNI,
			"p2 us-east/a/east-1 w1: 127.0.1.1:15006 HEALTHY, 127.0.1.2:15006 UNHEALTHY",
		},
		"silver": {
			"p0 us-east/a/east-1 w1: 127.0.1.1:15006 HEALTHY, 127.0.1.2:15006 UNHEALTHY",
			"p1 us-east/b/east-2 w1: 127.0.0.12:15443 HEALTHY w1 sni=" + echoSNI,
			"p2 us-west/a/west-1 w2: 127.0.0.13:15443 HEALTHY w2 sni=" + echoSNI,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("echo by client labels (-want +got):\n%s", diff)
	}
	if !proto.Equal(stores["gold"], stores["silver"]) {
		t.Error("store, with no failoverPriority, differs between the gold and silver sidecars")
	}
}

// The generator renders a service without failoverPriority once per
// locality whatever the clients' labels, and one with it once per value
// of its keys: labels no policy names never split the cache.
func TestFailoverPriorityCacheSharing(t *testing.T) {
	g, err := NewGenerator(DefaultSettings(testTD), testView("east-1", withTierFailover(t)))
	if err != nil {
		t.Fatal(err)
	}
	build := func(id string, labels map[string]string) *Built {
		t.Helper()
		b, err := g.Build(withLabels(sidecarNode("east-1", locEast1), id, labels), nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	goldA := build("a", map[string]string{"tier": "gold", "app": "a"})
	goldB := build("b", map[string]string{"tier": "gold", "app": "b"})
	silver := build("c", map[string]string{"tier": "silver"})
	none := build("d", nil)
	eds := func(b *Built, name string) *resource { return b.Snapshot.sets[typeEndpoint].lookup(name) }
	got := map[string]bool{
		"store shared by gold and silver":                 eds(goldA, storeCluster) == eds(silver, storeCluster),
		"store shared with an unlabelled node":            eds(goldA, storeCluster) == eds(none, storeCluster),
		"echo shared by nodes agreeing on tier":           eds(goldA, echoCluster) == eds(goldB, echoCluster),
		"echo differs between gold and silver":            eds(goldA, echoCluster) != eds(silver, echoCluster),
		"whole EDS part shared by nodes agreeing on tier": goldA.Snapshot.GetVersion(resourcev3.EndpointType) == goldB.Snapshot.GetVersion(resourcev3.EndpointType),
	}
	want := map[string]bool{}
	for k := range got {
		want[k] = true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sharing (-want +got):\n%s", diff)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	renders := map[string]int{}
	for _, m := range g.svcEDS {
		for key := range m {
			renders[key.String()]++
		}
	}
	// echo: gold, silver, no tier; store and the rest: once.
	if renders["demo/echo"] != 3 || renders["demo/store"] != 1 {
		t.Errorf("assignments rendered per service = %v, want echo 3 and store 1", renders)
	}
	if len(g.eds) != 3 {
		t.Errorf("EDS parts = %d, want 3 (gold, silver, no tier)", len(g.eds))
	}
}
