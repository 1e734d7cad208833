package filesource

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/policy"
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
					Labels: map[string]string{"app": "echo"},
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

// TestPolicyExamples loads examples/policies as a cluster directory would
// hold them: every policy is valid, and together they decide as the
// README says.
func TestPolicyExamples(t *testing.T) {
	s, err := New(Config{Dir: filepath.Join("..", "..", "..", "examples", "policies"), Cluster: "west-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, problems := s.Load(); len(problems) != 0 {
		t.Fatalf("problems = %v, want none", problems)
	}
	ps, ready, _ := s.AuthorizationPolicies()
	if !ready || len(ps) != 4 {
		t.Fatalf("ready %v, %d policies, want 4", ready, len(ps))
	}
	client := "spiffe://fedmesh.local/ns/demo/sa/client"
	tests := []struct {
		name    string
		req     policy.Request
		allowed bool
		policy  string
	}{
		{"client reads", policy.Request{Principal: client, Cluster: "east-2", Method: "GET", Path: "/"}, true, "demo/echo-clients"},
		{"client writes", policy.Request{Principal: client, Cluster: "east-2", Method: "POST", Path: "/"}, false, ""},
		{"client from an unlisted cluster", policy.Request{Principal: client, Cluster: "west-2", Method: "GET", Path: "/"}, false, ""},
		{"client's admin", policy.Request{Principal: client, Cluster: "east-1", Method: "GET", Path: "/admin/users"}, false, "demo/deny-admin"},
		{"ops' admin", policy.Request{Principal: "spiffe://fedmesh.local/ns/ops/sa/admin", Cluster: "east-1", Method: "GET", Path: "/admin"}, false, ""},
		{"demo health", policy.Request{Principal: "spiffe://fedmesh.local/ns/demo/sa/other", Cluster: "west-9", Method: "GET", Path: "/health"}, true, "demo/echo-clients"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Namespace, tt.req.Service, tt.req.Port = "demo", "echo", 8080
			d := policy.Evaluate(ps, tt.req)
			if d.Allowed != tt.allowed || d.Policy != tt.policy {
				t.Errorf("decision %+v, want allowed %v by %q", d, tt.allowed, tt.policy)
			}
		})
	}
}
