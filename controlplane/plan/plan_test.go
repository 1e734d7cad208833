package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan/plantest"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/topology"
)

// The shared test federation (plantest.View) under short names.
const testTD = plantest.TrustDomain

var (
	locEast1 = plantest.East1
	locWest1 = plantest.West1
	ep       = plantest.Endpoint
	testView = plantest.View
	locAP1   = topology.Locality{Region: "ap", Zone: "a", Cluster: "ap-1"}
)

const echoSNI = plantest.EchoSNI

// summarize renders an assignment as one line per locality:
// "p0 us-east/a/east-1 w1: 127.0.1.1:15006 healthy, ..." with the weight
// and SNI of gateway entries.
func summarize(a *Assignment) []string {
	var out []string
	for _, l := range a.Localities {
		var eps []string
		for _, e := range l.Endpoints {
			s := fmt.Sprintf("%s:%d", e.Host, e.Port)
			if e.Healthy {
				s += " healthy"
			} else {
				s += " unhealthy"
			}
			if e.SNI != "" {
				s += fmt.Sprintf(" w%d sni=%s", e.Weight, e.SNI)
			}
			eps = append(eps, s)
		}
		out = append(out, fmt.Sprintf("p%d %s w%d: %s", l.Priority, l.Locality, l.Weight, strings.Join(eps, ", ")))
	}
	return out
}

func TestAssign(t *testing.T) {
	fence := func(v *catalog.View) {
		for i := range v.Services[0].Endpoints {
			e := &v.Services[0].Endpoints[i]
			if e.Locality.Cluster == "west-1" {
				e.Healthy, e.HealthReason = false, "cluster west-1 fenced: unreachable for 30s"
			}
		}
	}
	tests := []struct {
		name    string
		view    *catalog.View
		cluster string
		loc     topology.Locality
		role    string
		want    []string
	}{
		{
			name: "east-1 sidecar: own cluster, then same region, then other region",
			view: testView("east-1"), cluster: "east-1", loc: locEast1, role: naming.RoleSidecar,
			want: []string{
				"p0 us-east/a/east-1 w1: 127.0.1.1:15006 healthy, 127.0.1.2:15006 unhealthy",
				"p1 us-east/b/east-2 w1: 127.0.0.12:15443 healthy w1 sni=" + echoSNI,
				"p2 us-west/a/west-1 w2: 127.0.0.13:15443 healthy w2 sni=" + echoSNI,
			},
		},
		{
			name: "locality filled from the view when the node sends only its cluster",
			view: testView("east-1"), cluster: "east-1", role: naming.RoleSidecar,
			want: []string{
				"p0 us-east/a/east-1 w1: 127.0.1.1:15006 healthy, 127.0.1.2:15006 unhealthy",
				"p1 us-east/b/east-2 w1: 127.0.0.12:15443 healthy w1 sni=" + echoSNI,
				"p2 us-west/a/west-1 w2: 127.0.0.13:15443 healthy w2 sni=" + echoSNI,
			},
		},
		{
			name: "west-1 sidecar: priorities are relative to the node",
			view: testView("west-1"), cluster: "west-1", loc: locWest1, role: naming.RoleSidecar,
			want: []string{
				"p0 us-west/a/west-1 w2: 127.0.3.1:15006 healthy, 127.0.3.2:15006 healthy",
				"p1 us-east/a/east-1 w1: 127.0.0.11:15443 healthy w1 sni=" + echoSNI,
				"p1 us-east/b/east-2 w1: 127.0.0.12:15443 healthy w1 sni=" + echoSNI,
			},
		},
		{
			name: "fenced peer: its gateway entry is unhealthy, kept, weight 1",
			view: testView("east-1", fence), cluster: "east-1", loc: locEast1, role: naming.RoleSidecar,
			want: []string{
				"p0 us-east/a/east-1 w1: 127.0.1.1:15006 healthy, 127.0.1.2:15006 unhealthy",
				"p1 us-east/b/east-2 w1: 127.0.0.12:15443 healthy w1 sni=" + echoSNI,
				"p2 us-west/a/west-1 w1: 127.0.0.13:15443 unhealthy w1 sni=" + echoSNI,
			},
		},
		{
			name: "remote cluster without a gateway address is left out, levels stay dense",
			view: testView("east-1", func(v *catalog.View) {
				ci := v.Clusters["east-2"]
				ci.GatewayAddress = ""
				v.Clusters["east-2"] = ci
			}),
			cluster: "east-1", loc: locEast1, role: naming.RoleSidecar,
			want: []string{
				"p0 us-east/a/east-1 w1: 127.0.1.1:15006 healthy, 127.0.1.2:15006 unhealthy",
				"p1 us-west/a/west-1 w2: 127.0.0.13:15443 healthy w2 sni=" + echoSNI,
			},
		},
		{
			name: "measured RTT orders other regions",
			view: testView("east-1", func(v *catalog.View) {
				v.Clusters["ap-1"] = catalog.ClusterInfo{Name: "ap-1", Locality: locAP1, GatewayAddress: "127.0.0.14:15443", RTT: 5_000_000}
				ci := v.Clusters["west-1"]
				ci.RTT = 50_000_000
				v.Clusters["west-1"] = ci
				v.Services[0].Endpoints = append(v.Services[0].Endpoints, ep("127.0.4.1", locAP1, true, ""))
			}),
			cluster: "east-1", loc: locEast1, role: naming.RoleSidecar,
			want: []string{
				"p0 us-east/a/east-1 w1: 127.0.1.1:15006 healthy, 127.0.1.2:15006 unhealthy",
				"p1 us-east/b/east-2 w1: 127.0.0.12:15443 healthy w1 sni=" + echoSNI,
				"p2 ap/a/ap-1 w1: 127.0.0.14:15443 healthy w1 sni=" + echoSNI,
				"p3 us-west/a/west-1 w2: 127.0.0.13:15443 healthy w2 sni=" + echoSNI,
			},
		},
		{
			name: "proxyless client gets every endpoint's own address",
			view: testView("east-1"), cluster: "east-1", loc: locEast1, role: naming.RoleProxyless,
			want: []string{
				"p0 us-east/a/east-1 w1: 127.0.1.1:15006 healthy, 127.0.1.2:15006 unhealthy",
				"p1 us-east/b/east-2 w1: 127.0.2.1:15006 healthy",
				"p2 us-west/a/west-1 w2: 127.0.3.1:15006 healthy, 127.0.3.2:15006 healthy",
			},
		},
		{
			name: "gateway gets only its own cluster's endpoints",
			view: testView("west-1"), cluster: "west-1", loc: locWest1, role: naming.RoleGateway,
			want: []string{
				"p0 us-west/a/west-1 w2: 127.0.3.1:15006 healthy, 127.0.3.2:15006 healthy",
			},
		},
		{
			name: "no healthy endpoint in a locality: weight 1, never 0",
			view: testView("east-1", func(v *catalog.View) {
				v.Services[0].Endpoints[0].Healthy = false
			}),
			cluster: "east-1", loc: locEast1, role: naming.RoleSidecar,
			want: []string{
				"p0 us-east/a/east-1 w1: 127.0.1.1:15006 unhealthy, 127.0.1.2:15006 unhealthy",
				"p1 us-east/b/east-2 w1: 127.0.0.12:15443 healthy w1 sni=" + echoSNI,
				"p2 us-west/a/west-1 w2: 127.0.0.13:15443 healthy w2 sni=" + echoSNI,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(testTD, topology.Policy{}, tt.view)
			svc := &tt.view.Services[0]
			a := p.Assign(svc, svc.Ports[0], p.NodeLocality(tt.cluster, tt.loc), tt.role)
			if diff := cmp.Diff(tt.want, summarize(a)); diff != "" {
				t.Errorf("assignment (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAssignNames(t *testing.T) {
	v := testView("west-1")
	p := New(testTD, topology.Policy{}, v)
	svc := &v.Services[0]
	for role, want := range map[string]string{
		naming.RoleSidecar:   "outbound|8080||echo.demo.svc.clusterset.local",
		naming.RoleProxyless: "outbound|8080||echo.demo.svc.clusterset.local",
		naming.RoleGateway:   echoSNI,
	} {
		if got := p.Assign(svc, svc.Ports[0], locWest1, role).Name; got != want {
			t.Errorf("role %s: name %q, want %q", role, got, want)
		}
	}
}

func TestAssignIdentityAndCluster(t *testing.T) {
	v := testView("east-1")
	p := New(testTD, topology.Policy{}, v)
	a := p.Assign(&v.Services[0], v.Services[0].Ports[0], locEast1, naming.RoleSidecar)
	var got []string
	for _, l := range a.Localities {
		for _, e := range l.Endpoints {
			got = append(got, fmt.Sprintf("%s:%d %s %s", e.Host, e.Port, e.Cluster, e.Identity))
		}
	}
	want := []string{
		"127.0.1.1:15006 east-1 spiffe://fedmesh.test/ns/demo/sa/echo",
		"127.0.1.2:15006 east-1 spiffe://fedmesh.test/ns/demo/sa/echo",
		"127.0.0.12:15443 east-2 spiffe://fedmesh.test/ns/demo/sa/echo",
		"127.0.0.13:15443 west-1 spiffe://fedmesh.test/ns/demo/sa/echo",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
}

func TestExplain(t *testing.T) {
	conflict := func(v *catalog.View) {
		svc := &v.Services[0]
		for i := range svc.Endpoints {
			if svc.Endpoints[i].Locality.Cluster == "west-1" {
				svc.Endpoints[i].PortName = "web" // west-1 exported other ports; the oldest export won
			}
		}
	}
	noGateway := func(v *catalog.View) {
		ci := v.Clusters["east-2"]
		ci.GatewayAddress = "127.0.0.12"
		v.Clusters["east-2"] = ci
	}
	tests := []struct {
		name string
		view *catalog.View
		want []string
	}{
		{
			name: "priority, health and route of every endpoint",
			view: testView("east-1"),
			want: []string{
				"127.0.1.1:15006 p0 (same cluster and zone) healthy=true (ready) via=127.0.1.1:15006",
				"127.0.1.2:15006 p0 (same cluster and zone) healthy=false (not ready) via=127.0.1.2:15006",
				"127.0.2.1:15006 p1 (same region us-east) healthy=true (1 of 1 endpoints behind the gateway healthy (this one: ready)) via=127.0.0.12:15443",
				"127.0.3.1:15006 p2 (other region us-west) healthy=true (2 of 2 endpoints behind the gateway healthy (this one: ready)) via=127.0.0.13:15443",
				"127.0.3.2:15006 p2 (other region us-west) healthy=true (2 of 2 endpoints behind the gateway healthy (this one: ready)) via=127.0.0.13:15443",
			},
		},
		{
			name: "endpoints of a conflicting export's port are explained, not sent",
			view: testView("east-1", conflict),
			want: []string{
				"127.0.1.1:15006 p0 (same cluster and zone) healthy=true (ready) via=127.0.1.1:15006",
				"127.0.1.2:15006 p0 (same cluster and zone) healthy=false (not ready) via=127.0.1.2:15006",
				"127.0.2.1:15006 p1 (same region us-east) healthy=true (1 of 1 endpoints behind the gateway healthy (this one: ready)) via=127.0.0.12:15443",
				`127.0.3.1:15006 p-1 not sent: port name "web" is not a port of the merged service`,
				`127.0.3.2:15006 p-1 not sent: port name "web" is not a port of the merged service`,
			},
		},
		{
			name: "a gateway address without a port is named",
			view: testView("east-1", noGateway),
			want: []string{
				"127.0.1.1:15006 p0 (same cluster and zone) healthy=true (ready) via=127.0.1.1:15006",
				"127.0.1.2:15006 p0 (same cluster and zone) healthy=false (not ready) via=127.0.1.2:15006",
				`127.0.2.1:15006 p-1 not sent: cluster east-2 gateway address "127.0.0.12" is not host:port`,
				"127.0.3.1:15006 p1 (other region us-west) healthy=true (2 of 2 endpoints behind the gateway healthy (this one: ready)) via=127.0.0.13:15443",
				"127.0.3.2:15006 p1 (other region us-west) healthy=true (2 of 2 endpoints behind the gateway healthy (this one: ready)) via=127.0.0.13:15443",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(testTD, topology.Policy{}, tt.view)
			svc := &tt.view.Services[0]
			a := p.Assign(svc, svc.Ports[0], locEast1, naming.RoleSidecar)
			var got []string
			for _, r := range a.Report.Endpoints {
				if !r.Sent {
					got = append(got, fmt.Sprintf("%s p%d not sent: %s", r.Address, r.Priority, r.NotSentReason))
					continue
				}
				got = append(got, fmt.Sprintf("%s p%d (%s) healthy=%v (%s) via=%s", r.Address, r.Priority, r.PriorityReason, r.Healthy, r.HealthReason, r.SentAs))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("explanations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInbound(t *testing.T) {
	v := testView("west-1", func(v *catalog.View) {
		v.Services[0].Endpoints[3].Workload = "echo"
		v.Services[0].Ports = append(v.Services[0].Ports, catalog.Port{Name: "admin", Port: 9901})
		admin := v.Services[0].Endpoints[3]
		admin.PortName, admin.Port = "admin", 15007
		v.Services[0].Endpoints = append(v.Services[0].Endpoints, admin)
	})
	p := New(testTD, topology.Policy{}, v)
	appPort := func(port catalog.Port) int32 { return port.Port + 1000 }
	got := p.Inbound("demo", "echo", appPort)
	want := Inbound{
		Listeners: []InboundListener{
			{Address: "127.0.3.1", Port: 15006, Chains: []InboundChain{{SNI: echoSNI, HTTP: true, Cluster: "inbound|8080||echo.demo.svc.clusterset.local"}}},
			{Address: "127.0.3.1", Port: 15007, Chains: []InboundChain{{SNI: "9901.echo.demo.svc.clusterset.local", Cluster: "inbound|9901||echo.demo.svc.clusterset.local"}}},
		},
		Clusters: []InboundCluster{
			{Name: "inbound|8080||echo.demo.svc.clusterset.local", Host: "127.0.3.1", AppPort: 9080},
			{Name: "inbound|9901||echo.demo.svc.clusterset.local", Host: "127.0.3.1", AppPort: 10901},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inbound (-want +got):\n%s", diff)
	}
	if got := p.Inbound("demo", "", appPort); len(got.Listeners)+len(got.Clusters) != 0 {
		t.Errorf("a node without a workload got inbound %+v", got)
	}
	if got := p.Inbound("other", "echo", appPort); len(got.Listeners) != 0 {
		t.Errorf("a workload of another namespace got listeners %+v", got.Listeners)
	}
	// A workload of the same name in another cluster is not this node's.
	pe := New(testTD, topology.Policy{}, testView("east-1", func(v *catalog.View) { v.Services[0].Endpoints[3].Workload = "echo" }))
	if got := pe.Inbound("demo", "echo", appPort); len(got.Listeners) != 0 {
		t.Errorf("east-1 planned west-1's workload: %+v", got.Listeners)
	}
}

func TestServicePortsAndGateway(t *testing.T) {
	v := testView("west-1")
	p := New(testTD, topology.Policy{}, v)
	var got []string
	for _, svc := range p.GatewayServices() {
		for _, sp := range p.ServicePorts(svc) {
			got = append(got, fmt.Sprintf("%s http=%v ids=%v", sp.SNI(), sp.HTTP, sp.Identities))
		}
	}
	want := []string{
		echoSNI + " http=true ids=[spiffe://fedmesh.test/ns/demo/sa/echo]",
		"5432.store.demo.svc.clusterset.local http=false ids=[spiffe://fedmesh.test/ns/demo/sa/store]",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("west-1 gateway service ports (-want +got):\n%s", diff)
	}
	if got := New(testTD, topology.Policy{}, testView("east-2")).GatewayServices(); len(got) != 1 || got[0].Name != "echo" {
		t.Errorf("east-2 gateway services: %v, want only echo", got)
	}
}

func TestSameClientView(t *testing.T) {
	base := New(testTD, topology.Policy{}, testView("east-1"))
	tests := []struct {
		name   string
		mutate func(*catalog.View)
		want   bool
	}{
		{name: "endpoint health changed", mutate: func(v *catalog.View) { v.Services[0].Endpoints[0].Healthy = false }, want: true},
		{name: "new service account", mutate: func(v *catalog.View) { v.Services[0].Endpoints[0].ServiceAccount = "other" }, want: false},
		{name: "port added", mutate: func(v *catalog.View) {
			v.Services[1].Ports = append(v.Services[1].Ports, catalog.Port{Name: "x", Port: 1})
		}, want: false},
		{name: "service removed", mutate: func(v *catalog.View) { v.Services = v.Services[:1] }, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := New(testTD, topology.Policy{}, testView("east-1", tt.mutate))
			if got := next.SameClientView(base); got != tt.want {
				t.Errorf("SameClientView = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPolicyRTTFromView(t *testing.T) {
	v := testView("east-1", func(v *catalog.View) {
		ci := v.Clusters["west-1"]
		ci.RTT = 7_000_000
		v.Clusters["west-1"] = ci
	})
	configured := topology.Policy{}
	p := New(testTD, configured, v)
	if got := p.policy.RTT["west-1"]; got != 7_000_000 {
		t.Errorf("RTT of west-1 = %v, want the view's 7ms", got)
	}
	if configured.RTT != nil {
		t.Errorf("New changed the caller's policy: %v", configured.RTT)
	}
}
