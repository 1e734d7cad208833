package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/topology"
)

// TestAssignWorkload checks the workload name each assignment endpoint
// carries (EDS Endpoint.hostname): a local endpoint's own, a gateway
// entry's only when every endpoint behind it shares one, and never a name
// that is not a DNS-1123 subdomain.
func TestAssignWorkload(t *testing.T) {
	// setWorkload sets the workload of echo's endpoint at addr.
	setWorkload := func(addr, name string) func(*catalog.View) {
		return func(v *catalog.View) {
			for i := range v.Services[0].Endpoints {
				if e := &v.Services[0].Endpoints[i]; e.Address == addr {
					e.Workload = name
				}
			}
		}
	}
	tests := []struct {
		name    string
		cluster string
		role    string
		mutate  []func(*catalog.View)
		// want is "host:port=workload" per endpoint, in plan order.
		want []string
	}{
		{
			name:    "sidecar: local endpoints by name, one-workload gateway named, two-workload gateway not",
			cluster: "east-1", role: naming.RoleSidecar,
			want: []string{
				"127.0.1.1:15006=echo-127.0.1.1",
				"127.0.1.2:15006=echo-127.0.1.2",
				"127.0.0.12:15443=echo-127.0.2.1",
				"127.0.0.13:15443=",
			},
		},
		{
			name:    "sidecar: gateway named when every endpoint behind it shares the name",
			cluster: "east-1", role: naming.RoleSidecar,
			mutate: []func(*catalog.View){setWorkload("127.0.3.1", "echo-west"), setWorkload("127.0.3.2", "echo-west")},
			want: []string{
				"127.0.1.1:15006=echo-127.0.1.1",
				"127.0.1.2:15006=echo-127.0.1.2",
				"127.0.0.12:15443=echo-127.0.2.1",
				"127.0.0.13:15443=echo-west",
			},
		},
		{
			name:    "sidecar: one endpoint without a name leaves its gateway unnamed",
			cluster: "east-1", role: naming.RoleSidecar,
			mutate: []func(*catalog.View){setWorkload("127.0.3.1", ""), setWorkload("127.0.3.2", "echo-west")},
			want: []string{
				"127.0.1.1:15006=echo-127.0.1.1",
				"127.0.1.2:15006=echo-127.0.1.2",
				"127.0.0.12:15443=echo-127.0.2.1",
				"127.0.0.13:15443=",
			},
		},
		{
			name:    "sidecar: a name that is not a DNS-1123 subdomain is not sent, locally or through a gateway",
			cluster: "east-1", role: naming.RoleSidecar,
			mutate: []func(*catalog.View){
				setWorkload("127.0.1.1", "Echo_One"),
				setWorkload("127.0.1.2", strings.Repeat("a", 254)),
				setWorkload("127.0.2.1", "echo two"),
			},
			want: []string{
				"127.0.1.1:15006=",
				"127.0.1.2:15006=",
				"127.0.0.12:15443=",
				"127.0.0.13:15443=",
			},
		},
		{
			name:    "gateway: its own cluster's endpoints by name",
			cluster: "west-1", role: naming.RoleGateway,
			want: []string{
				"127.0.3.1:15006=echo-127.0.3.1",
				"127.0.3.2:15006=echo-127.0.3.2",
			},
		},
		{
			name:    "proxyless: every endpoint as it is, by name",
			cluster: "west-1", role: naming.RoleProxyless,
			want: []string{
				"127.0.3.1:15006=echo-127.0.3.1",
				"127.0.3.2:15006=echo-127.0.3.2",
				"127.0.1.1:15006=echo-127.0.1.1",
				"127.0.1.2:15006=echo-127.0.1.2",
				"127.0.2.1:15006=echo-127.0.2.1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := testView(tt.cluster, tt.mutate...)
			p := New(testTD, topology.Policy{}, v)
			svc := &v.Services[0]
			a := p.Assign(svc, svc.Ports[0], p.NodeLocality(tt.cluster, topology.Locality{}), tt.role)
			var got []string
			for _, l := range a.Localities {
				for _, e := range l.Endpoints {
					got = append(got, fmt.Sprintf("%s:%d=%s", e.Host, e.Port, e.Workload))
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("workloads (-want +got):\n%s", diff)
			}
		})
	}
}
