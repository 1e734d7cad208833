package plan

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// telPolicy is a valid TelemetryPolicy ns/name; targets name Services.
func telPolicy(t *testing.T, ns, name string, spec policy.TelemetrySpec, targets ...string) policy.TelemetryPolicy {
	t.Helper()
	p := policy.TelemetryPolicy{Spec: spec}
	p.Namespace, p.Name = ns, name
	for _, s := range targets {
		p.Spec.TargetRefs = append(p.Spec.TargetRefs, policy.TargetRef{Kind: policy.KindService, Name: s})
	}
	if err := policy.ValidateObject(&p); err != nil {
		t.Fatalf("test policy: %v", err)
	}
	return p
}

func sampling(v float64, tags map[string]string) *policy.TelemetryTracing {
	pc := policy.Percent(v)
	return &policy.TelemetryTracing{SamplingPercent: &pc, CustomTags: tags}
}

func fptr(v float64) *float64 { return &v }

func TestTelemetry(t *testing.T) {
	errorsLog := &policy.TelemetryAccessLog{Enabled: true, Filter: policy.AccessLogErrors}
	allLog := &policy.TelemetryAccessLog{Enabled: true}
	tests := []struct {
		name         string
		policies     func(t *testing.T) []policy.TelemetryPolicy
		ns, workload string
		want         *Telemetry
	}{
		{
			name:     "no policy: nil, today's output",
			policies: func(*testing.T) []policy.TelemetryPolicy { return nil },
			ns:       "demo", workload: "echo",
			want: nil,
		},
		{
			name: "a policy of another namespace does not apply",
			policies: func(t *testing.T) []policy.TelemetryPolicy {
				return []policy.TelemetryPolicy{telPolicy(t, "other", "t", policy.TelemetrySpec{AccessLog: allLog})}
			},
			ns: "demo", workload: "echo",
			want: nil,
		},
		{
			name: "mesh-wide policy of the root namespace",
			policies: func(t *testing.T) []policy.TelemetryPolicy {
				return []policy.TelemetryPolicy{telPolicy(t, policy.RootNamespace, "mesh", policy.TelemetrySpec{Tracing: sampling(1, map[string]string{"mesh": "m"})})}
			},
			ns:   "demo",
			want: &Telemetry{SamplingPercent: fptr(1), Tags: map[string]string{"mesh": "m"}},
		},
		{
			name: "namespace over root, field by field; tags merged",
			policies: func(t *testing.T) []policy.TelemetryPolicy {
				return []policy.TelemetryPolicy{
					telPolicy(t, "demo", "ns", policy.TelemetrySpec{Tracing: &policy.TelemetryTracing{CustomTags: map[string]string{"mesh": "overridden", "team": "t"}}, AccessLog: errorsLog}),
					telPolicy(t, policy.RootNamespace, "mesh", policy.TelemetrySpec{Tracing: sampling(1, map[string]string{"mesh": "m", "tier": "x"}), AccessLog: allLog}),
				}
			},
			ns: "demo", workload: "echo",
			want: &Telemetry{SamplingPercent: fptr(1), Tags: map[string]string{"mesh": "overridden", "team": "t", "tier": "x"}, AccessLog: &AccessLog{ErrorsOnly: true}},
		},
		{
			name: "a namespace turns the mesh-wide access log off",
			policies: func(t *testing.T) []policy.TelemetryPolicy {
				return []policy.TelemetryPolicy{
					telPolicy(t, "demo", "quiet", policy.TelemetrySpec{AccessLog: &policy.TelemetryAccessLog{}}),
					telPolicy(t, policy.RootNamespace, "mesh", policy.TelemetrySpec{AccessLog: allLog}),
				}
			},
			ns:   "demo",
			want: nil,
		},
		{
			name: "targetRefs select the workload serving the service, over the namespace",
			policies: func(t *testing.T) []policy.TelemetryPolicy {
				return []policy.TelemetryPolicy{
					telPolicy(t, "demo", "ns", policy.TelemetrySpec{Tracing: sampling(5, nil)}),
					telPolicy(t, "demo", "echo-full", policy.TelemetrySpec{Tracing: sampling(100, nil), AccessLog: allLog}, "echo"),
				}
			},
			ns: "demo", workload: "echo",
			want: &Telemetry{SamplingPercent: fptr(100), AccessLog: &AccessLog{}},
		},
		{
			name: "targetRefs: a workload serving another service gets the namespace level",
			policies: func(t *testing.T) []policy.TelemetryPolicy {
				return []policy.TelemetryPolicy{
					telPolicy(t, "demo", "ns", policy.TelemetrySpec{Tracing: sampling(5, nil)}),
					telPolicy(t, "demo", "other", policy.TelemetrySpec{Tracing: sampling(100, nil)}, "store"),
				}
			},
			ns: "demo", workload: "echo",
			want: &Telemetry{SamplingPercent: fptr(5)},
		},
		{
			name: "targetRefs: a node without a workload gets the namespace level",
			policies: func(t *testing.T) []policy.TelemetryPolicy {
				return []policy.TelemetryPolicy{telPolicy(t, "demo", "echo-full", policy.TelemetrySpec{Tracing: sampling(100, nil)}, "echo")}
			},
			ns:   "demo",
			want: nil,
		},
		{
			name: "two policies on one level: the first by name wins",
			policies: func(t *testing.T) []policy.TelemetryPolicy {
				return []policy.TelemetryPolicy{
					telPolicy(t, "demo", "b", policy.TelemetrySpec{Tracing: sampling(20, map[string]string{"b": "1", "x": "b"})}),
					telPolicy(t, "demo", "a", policy.TelemetrySpec{Tracing: sampling(10, map[string]string{"a": "1", "x": "a"})}),
				}
			},
			ns:   "demo",
			want: &Telemetry{SamplingPercent: fptr(10), Tags: map[string]string{"a": "1", "b": "1", "x": "a"}},
		},
		{
			name: "sampling zero is set, not unset",
			policies: func(t *testing.T) []policy.TelemetryPolicy {
				return []policy.TelemetryPolicy{
					telPolicy(t, "demo", "off", policy.TelemetrySpec{Tracing: sampling(0, nil)}),
					telPolicy(t, policy.RootNamespace, "mesh", policy.TelemetrySpec{Tracing: sampling(50, nil)}),
				}
			},
			ns:   "demo",
			want: &Telemetry{SamplingPercent: fptr(0)},
		},
	}
	v := testView("west-1", func(v *catalog.View) { v.Services[0].Endpoints[3].Workload = "echo" })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(testTD, topology.Policy{}, v).WithTraffic(policy.Traffic{Telemetry: tt.policies(t)})
			got := p.Telemetry(tt.ns, tt.workload)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("telemetry (-want +got):\n%s", diff)
			}
			if got.Key() != tt.want.Key() {
				t.Errorf("key %q, want %q", got.Key(), tt.want.Key())
			}
		})
	}
}

func TestTelemetryKey(t *testing.T) {
	a := &Telemetry{SamplingPercent: fptr(1), Tags: map[string]string{"x": "1", "a": "2"}}
	b := &Telemetry{Tags: map[string]string{"a": "2", "x": "1"}, SamplingPercent: fptr(1)}
	if a.Key() != b.Key() || a.Key() == "" {
		t.Errorf("equal telemetry, keys %q and %q", a.Key(), b.Key())
	}
	c := &Telemetry{SamplingPercent: fptr(1), Tags: map[string]string{"x": "1", "a": "2"}, AccessLog: &AccessLog{}}
	if c.Key() == a.Key() {
		t.Errorf("different telemetry, same key %q", a.Key())
	}
	var none *Telemetry
	if none.Key() != "" {
		t.Errorf("nil key %q", none.Key())
	}
}
