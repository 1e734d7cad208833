package filesource

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/topology"
)

// TestExamples loads each sample cluster of examples/local and checks what
// it exports: echo, with two replicas at 127.0.N.1 and .2; not the client.
func TestExamples(t *testing.T) {
	tests := []struct {
		name    string
		cluster string
		region  string
		zone    string
		net     string // 127.0.N.
		created time.Time
	}{
		{"east-1", "east-1", "us-east", "a", "127.0.1.", time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)},
		{"east-2", "east-2", "us-east", "b", "127.0.2.", time.Date(2026, 1, 5, 9, 10, 0, 0, time.UTC)},
		{"west-1", "west-1", "us-west", "a", "127.0.3.", time.Date(2026, 1, 5, 9, 20, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{
				Dir:     filepath.Join("..", "..", "..", "examples", "local", tt.name),
				Cluster: tt.cluster, Region: tt.region, Zone: "default-zone",
			})
			if err != nil {
				t.Fatal(err)
			}
			got, problems := s.Load()
			if len(problems) != 0 {
				t.Errorf("problems = %v, want none", problems)
			}
			loc := topology.Locality{Region: tt.region, Zone: tt.zone, Cluster: tt.cluster}
			replica := func(n string) catalog.Endpoint {
				return catalog.Endpoint{
					Address: tt.net + n, Port: 15006, PortName: "http", Locality: loc,
					Ready: true, Serving: true, ServiceAccount: "echo", Workload: "echo-" + n,
				}
			}
			want := []catalog.Export{{
				Service: catalog.Service{
					Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
					Ports:         []catalog.Port{{Name: "http", Protocol: catalog.TCP, AppProtocol: "http", Port: 8080}},
					ExportCreated: tt.created, Cluster: tt.cluster,
				},
				Endpoints: []catalog.Endpoint{replica("1"), replica("2")},
			}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("exports (-want +got):\n%s", diff)
			}
		})
	}
}
