package plan

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/topology"
)

func TestGatewaySourceClusters(t *testing.T) {
	withCIDRs := func(cluster string, cidrs ...string) func(*catalog.View) {
		return func(v *catalog.View) {
			ci := v.Clusters[cluster]
			for _, c := range cidrs {
				ci.CIDRs = append(ci.CIDRs, netip.MustParsePrefix(c))
			}
			v.Clusters[cluster] = ci
		}
	}
	for _, tc := range []struct {
		name   string
		mutate []func(*catalog.View)
		want   map[string][]string
	}{{
		name: "derived only: gateways and endpoints",
		want: map[string][]string{
			"east-1": {"127.0.0.11", "127.0.1.1", "127.0.1.2"},
			"east-2": {"127.0.0.12", "127.0.2.1"},
			"west-1": {"127.0.0.13", "127.0.3.1", "127.0.3.2", "127.0.3.9"},
		},
	}, {
		name:   "declared ranges cover their own endpoints",
		mutate: []func(*catalog.View){withCIDRs("east-1", "127.0.1.0/24", "fd00:1::/64"), withCIDRs("west-1", "127.0.3.0/24")},
		want: map[string][]string{
			"east-1": {"127.0.0.11", "127.0.1.0/24", "fd00:1::/64"},
			"east-2": {"127.0.0.12", "127.0.2.1"},
			"west-1": {"127.0.0.13", "127.0.3.0/24"},
		},
	}, {
		// east-2's endpoint inside east-1's range stays as a host entry,
		// which the gateway's longest match prefers.
		name:   "another cluster's endpoint inside a range",
		mutate: []func(*catalog.View){withCIDRs("east-1", "127.0.0.0/16")},
		want: map[string][]string{
			"east-1": {"127.0.0.0/16"},
			"east-2": {"127.0.0.12", "127.0.2.1"},
			"west-1": {"127.0.0.13", "127.0.3.1", "127.0.3.2", "127.0.3.9"},
		},
	}, {
		// A range two clusters declare says nothing; their addresses are
		// known one by one.
		name:   "a range two clusters claim is left out",
		mutate: []func(*catalog.View){withCIDRs("east-1", "10.244.0.0/16", "127.0.1.0/24"), withCIDRs("east-2", "10.244.0.0/16")},
		want: map[string][]string{
			"east-1": {"127.0.0.11", "127.0.1.0/24"},
			"east-2": {"127.0.0.12", "127.0.2.1"},
			"west-1": {"127.0.0.13", "127.0.3.1", "127.0.3.2", "127.0.3.9"},
		},
	}, {
		name: "an address two clusters use is left out",
		mutate: []func(*catalog.View){func(v *catalog.View) {
			ci := v.Clusters["west-1"]
			ci.GatewayAddress = "127.0.1.1:15443" // east-1's echo replica
			v.Clusters["west-1"] = ci
		}},
		want: map[string][]string{
			"east-1": {"127.0.0.11", "127.0.1.2"},
			"east-2": {"127.0.0.12", "127.0.2.1"},
			"west-1": {"127.0.3.1", "127.0.3.2", "127.0.3.9"},
		},
	}, {
		name: "host-name gateways and mapped addresses",
		mutate: []func(*catalog.View){func(v *catalog.View) {
			ci := v.Clusters["east-1"]
			ci.GatewayAddress = "gw.east-1.example:15443"
			v.Clusters["east-1"] = ci
			v.Services[0].Endpoints[1].Address = "::ffff:127.0.1.7"
		}},
		want: map[string][]string{
			"east-1": {"127.0.1.1", "127.0.1.7"},
			"east-2": {"127.0.0.12", "127.0.2.1"},
			"west-1": {"127.0.0.13", "127.0.3.1", "127.0.3.2", "127.0.3.9"},
		},
	}, {
		name: "nothing known",
		mutate: []func(*catalog.View){func(v *catalog.View) {
			v.Clusters, v.Services = nil, nil
		}},
		want: nil,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(testTD, topology.Policy{}, testView("west-1", tc.mutate...))
			if diff := cmp.Diff(tc.want, p.GatewaySourceClusters()); diff != "" {
				t.Errorf("GatewaySourceClusters (-want +got):\n%s", diff)
			}
		})
	}
}
