package plan

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan/plantest"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/topology"
)

func failoverPriorityPolicy(keys string) string {
	return fmt.Sprintf(`apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
metadata: {name: echo-failover, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  failover:
    failoverPriority: %s
`, keys)
}

// labelEcho gives echo's endpoints labels, by address.
func labelEcho(labels map[string]map[string]string) func(*catalog.View) {
	return func(v *catalog.View) {
		for i := range v.Services[0].Endpoints {
			e := &v.Services[0].Endpoints[i]
			e.Labels = labels[e.Address]
		}
	}
}

func tier(t string) map[string]string { return map[string]string{"tier": t} }

func TestAssignFailoverPriority(t *testing.T) {
	gold, silver := tier("gold"), tier("silver")
	// east-1 (the client's cluster) runs silver, east-2 and west-1 gold.
	bySite := map[string]map[string]string{
		"127.0.1.1": silver, "127.0.1.2": silver, "127.0.2.1": gold, "127.0.3.1": gold, "127.0.3.2": gold,
	}
	// west-1 runs both tiers.
	mixed := map[string]map[string]string{
		"127.0.1.1": silver, "127.0.1.2": silver, "127.0.2.1": gold, "127.0.3.1": gold, "127.0.3.2": silver,
	}
	site := func(s, t string) map[string]string { return map[string]string{"site": s, "tier": t} }
	twoKeys := map[string]map[string]string{
		"127.0.1.1": site("s2", "gold"), "127.0.1.2": site("s2", "gold"),
		"127.0.2.1": site("s1", "silver"), "127.0.3.1": site("s1", "gold"), "127.0.3.2": site("s1", "gold"),
	}
	const (
		e1 = "p%d us-east/a/east-1 w1: 127.0.1.1:15006 healthy, 127.0.1.2:15006 unhealthy"
		e2 = "p%d us-east/b/east-2 w1: 127.0.0.12:15443 healthy w1 sni=" + plantest.EchoSNI
		w1 = "p%d us-west/a/west-1 w2: 127.0.0.13:15443 healthy w2 sni=" + plantest.EchoSNI
	)
	p := func(format string, prio int) string { return fmt.Sprintf(format, prio) }
	tests := []struct {
		name   string
		keys   string // failoverPriority; "" for no policy
		labels map[string]map[string]string
		client map[string]string
		role   string
		want   []string
	}{
		{
			name: "no policy: locality order whatever the labels", labels: bySite, client: gold,
			want: []string{p(e1, 0), p(e2, 1), p(w1, 2)},
		},
		{
			name: "gold client: gold clusters first, by locality among them", keys: "[tier]", labels: bySite, client: gold,
			want: []string{p(e2, 0), p(w1, 1), p(e1, 2)},
		},
		{
			name: "silver client: its own cluster first", keys: "[tier]", labels: bySite, client: silver,
			want: []string{p(e1, 0), p(e2, 1), p(w1, 2)},
		},
		{
			name: "client without the label: locality order", keys: "[tier]", labels: bySite, client: map[string]string{"app": "client"},
			want: []string{p(e1, 0), p(e2, 1), p(w1, 2)},
		},
		{
			name: "a gateway ranks by the labels all behind it share: mixed west-1 matches nothing", keys: "[tier]", labels: mixed, client: gold,
			want: []string{p(e2, 0), p(e1, 1), p(w1, 2)},
		},
		{
			name: "proxyless clients rank every endpoint by its own labels", keys: "[tier]", labels: mixed, client: gold, role: naming.RoleProxyless,
			want: []string{
				"p0 us-east/b/east-2 w1: 127.0.2.1:15006 healthy",
				"p1 us-west/a/west-1 w1: 127.0.3.1:15006 healthy",
				"p2 us-east/a/east-1 w1: 127.0.1.1:15006 healthy, 127.0.1.2:15006 unhealthy",
				"p3 us-west/a/west-1 w1: 127.0.3.2:15006 healthy",
			},
		},
		{
			name: "most significant key first: site match beats tier match", keys: "[site, tier]", labels: twoKeys, client: site("s1", "gold"),
			want: []string{p(w1, 0), p(e2, 1), p(e1, 2)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var docs []string
			if tt.keys != "" {
				docs = append(docs, failoverPriorityPolicy(tt.keys))
			}
			v := plantest.View("east-1", withProducer(t, docs...), labelEcho(tt.labels))
			pl := New(testTD, topology.Policy{}, v)
			role := tt.role
			if role == "" {
				role = naming.RoleSidecar
			}
			client := topology.Node{Locality: plantest.East1, Labels: tt.client}
			a := pl.AssignTo(&v.Services[0], echoPort, client, role)
			if diff := cmp.Diff(tt.want, summarize(a)); diff != "" {
				t.Errorf("assignment (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAssignFailoverPriorityReason(t *testing.T) {
	v := plantest.View("east-1", withProducer(t, failoverPriorityPolicy("[tier]")), labelEcho(map[string]map[string]string{
		"127.0.1.1": tier("silver"), "127.0.1.2": tier("silver"), "127.0.2.1": tier("gold"), "127.0.3.1": tier("gold"), "127.0.3.2": tier("gold"),
	}))
	a := New(testTD, topology.Policy{}, v).AssignTo(&v.Services[0], echoPort, topology.Node{Locality: plantest.East1, Labels: tier("gold")}, naming.RoleSidecar)
	got := map[string]string{}
	for _, r := range a.Report.Endpoints {
		got[r.Address] = fmt.Sprintf("p%d %s", r.Priority, r.PriorityReason)
	}
	want := map[string]string{
		"127.0.1.1:15006": "p2 labels match none of tier; same cluster and zone",
		"127.0.1.2:15006": "p2 labels match none of tier; same cluster and zone",
		"127.0.2.1:15006": "p0 labels match tier; same region us-east",
		"127.0.3.1:15006": "p1 labels match tier; other region us-west",
		"127.0.3.2:15006": "p1 labels match tier; other region us-west",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func TestFailoverLabels(t *testing.T) {
	v := plantest.View("east-1", withProducer(t, failoverPriorityPolicy("[site, tier]")))
	p := New(testTD, topology.Policy{}, v)
	if got := p.FailoverLabels(&v.Services[0]); !cmp.Equal(got, []string{"site", "tier"}) {
		t.Errorf("echo's failover labels = %v, want [site tier]", got)
	}
	if got := p.FailoverLabels(&v.Services[1]); got != nil {
		t.Errorf("echo-v2 has no policy, failover labels = %v", got)
	}
	mesh := New(testTD, topology.Policy{FailoverPriority: []string{"rack"}}, v)
	if got := mesh.FailoverLabels(&v.Services[1]); !cmp.Equal(got, []string{"rack"}) {
		t.Errorf("the mesh policy's label priority applies to echo-v2: %v", got)
	}
}
