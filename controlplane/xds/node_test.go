package xds

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/topology"
)

func metaNode(id string, kv map[string]string, loc *corev3.Locality) *corev3.Node {
	f := map[string]*structpb.Value{}
	for k, v := range kv {
		f[k] = structpb.NewStringValue(v)
	}
	return &corev3.Node{Id: id, Metadata: &structpb.Struct{Fields: f}, Locality: loc}
}

func TestParseNode(t *testing.T) {
	base := map[string]string{naming.MetaCluster: "east-1", naming.MetaNamespace: "demo"}
	with := func(kv map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range kv {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		node    *corev3.Node
		want    Node
		wantErr string
	}{
		{
			name: "sidecar defaults",
			node: metaNode("n1", base, nil),
			want: Node{ID: "n1", Role: naming.RoleSidecar, Cluster: "east-1", Namespace: "demo", ServiceAccount: "default",
				Locality: topology.Locality{Cluster: "east-1"}},
		},
		{
			name: "everything",
			node: metaNode("n1", with(map[string]string{naming.MetaServiceAccount: "client", naming.MetaWorkload: "client-1",
				naming.MetaAppPorts: "http=8081,9090=19090", naming.MetaToken: "t", naming.MetaLabels: "tier=gold,fedmesh.io/rack=r1,canary="}),
				&corev3.Locality{Region: "us-east", Zone: "a", SubZone: "east-1"}),
			want: Node{ID: "n1", Role: naming.RoleSidecar, Cluster: "east-1", Namespace: "demo", ServiceAccount: "client",
				Workload: "client-1", Token: "t", AppPorts: map[string]int32{"http": 8081, "9090": 19090},
				Labels: map[string]string{"tier": "gold", "fedmesh.io/rack": "r1"}, Locality: locEast1},
		},
		{
			name: "gateway needs no namespace",
			node: metaNode("gw", map[string]string{naming.MetaCluster: "east-1", naming.MetaRole: naming.RoleGateway}, nil),
			want: Node{ID: "gw", Role: naming.RoleGateway, Cluster: "east-1", Locality: topology.Locality{Cluster: "east-1"}},
		},
		{name: "nil", node: nil, wantErr: "bad node: no node in the request"},
		{name: "no id", node: metaNode("", base, nil), wantErr: "bad node: node.id is empty"},
		{name: "no cluster", node: metaNode("n", map[string]string{naming.MetaNamespace: "demo"}, nil), wantErr: "bad node: metadata fedmesh.cluster is missing"},
		{name: "unknown role", node: metaNode("n", with(map[string]string{naming.MetaRole: "root"}), nil),
			wantErr: `bad node: metadata fedmesh.role "root" must be sidecar, gateway or proxyless`},
		{name: "bad namespace", node: metaNode("n", with(map[string]string{naming.MetaNamespace: "Demo"}), nil),
			wantErr: `bad node: metadata fedmesh.namespace "Demo" must be a DNS-1123 label: lower case alphanumeric characters or '-', starting and ending with an alphanumeric character`},
		{name: "sub_zone differs", node: metaNode("n", base, &corev3.Locality{SubZone: "west-1"}),
			wantErr: `bad node: node.locality.sub_zone "west-1" differs from metadata fedmesh.cluster "east-1"`},
		{name: "bad app port", node: metaNode("n", with(map[string]string{naming.MetaAppPorts: "http=0"}), nil),
			wantErr: `bad node: metadata fedmesh.app_ports item 0: port "0" is not a number from 1 to 65535`},
		{name: "app ports without =", node: metaNode("n", with(map[string]string{naming.MetaAppPorts: "http"}), nil),
			wantErr: `bad node: metadata fedmesh.app_ports item 0 "http" is not NAME=PORT`},
		{name: "label without =", node: metaNode("n", with(map[string]string{naming.MetaLabels: "tier"}), nil),
			wantErr: `bad node: metadata fedmesh.labels: label 0 "tier" is not KEY=VALUE`},
		{name: "bad label key", node: metaNode("n", with(map[string]string{naming.MetaLabels: "app=echo,Tier!=gold"}), nil),
			wantErr: `bad node: metadata fedmesh.labels: label 1: key "Tier!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{name: "bad label value", node: metaNode("n", with(map[string]string{naming.MetaLabels: "tier=gold plated"}), nil),
			wantErr: `bad node: metadata fedmesh.labels: label 0: value "gold plated" of key "tier": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`},
		{name: "label twice", node: metaNode("n", with(map[string]string{naming.MetaLabels: "tier=a,tier=b"}), nil),
			wantErr: `bad node: metadata fedmesh.labels: label 1: key "tier" given twice`},
		{name: "labels too long", node: metaNode("n", with(map[string]string{naming.MetaLabels: strings.Repeat("a", maxMetaLabels+1)}), nil),
			wantErr: fmt.Sprintf("bad node: metadata fedmesh.labels is %d bytes, longer than %d", maxMetaLabels+1, maxMetaLabels)},
		{name: "non-string metadata", node: &corev3.Node{Id: "n", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			naming.MetaCluster: structpb.NewNumberValue(1)}}}, wantErr: "bad node: metadata fedmesh.cluster must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNode(tt.node)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadNode) {
					t.Fatalf("err = %v, want %q wrapping ErrBadNode", err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("node (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseNode: any metadata is parsed or refused with ErrBadNode, and a
// parsed node survives a round trip through NodeMetadata.
func FuzzParseNode(f *testing.F) {
	f.Add("n1", "east-1", "demo", "client", "sidecar", "client-1", "http=8080", "us-east", "a", "east-1", "tier=gold,x.io/k=v")
	f.Add("gw", "east-1", "", "", "gateway", "", "", "", "", "", "")
	f.Add("x", "EAST", "demo", "a..b", "proxyless", "w", "http=99999,", "r", "z", "other", "a=,=b")
	f.Add("", "", "", "", "", "", "=,=", "", "", "", ",,")
	f.Fuzz(func(t *testing.T, id, cluster, ns, sa, role, workload, appPorts, region, zone, subZone, labels string) {
		pn := metaNode(id, map[string]string{
			naming.MetaCluster: cluster, naming.MetaNamespace: ns, naming.MetaServiceAccount: sa,
			naming.MetaRole: role, naming.MetaWorkload: workload, naming.MetaAppPorts: appPorts,
			naming.MetaLabels: labels,
		}, &corev3.Locality{Region: region, Zone: zone, SubZone: subZone})
		n, err := ParseNode(pn)
		if err != nil {
			if !errors.Is(err, ErrBadNode) {
				t.Fatalf("error %v does not wrap ErrBadNode", err)
			}
			return
		}
		again, err := ParseNode(&corev3.Node{Id: n.ID, Metadata: NodeMetadata(n), Locality: &corev3.Locality{
			Region: n.Locality.Region, Zone: n.Locality.Zone, SubZone: n.Locality.Cluster}})
		if err != nil {
			t.Fatalf("round trip of %+v: %v", n, err)
		}
		if diff := cmp.Diff(n, again, cmp.Comparer(func(a, b map[string]int32) bool {
			return FormatAppPorts(a) == FormatAppPorts(b)
		})); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
