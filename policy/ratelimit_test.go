package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/catalog"
)

const goodRateLimit = `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: rl, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  local:
  - name: per-caller
    key: {type: Principal}
    requests: 100
    interval: 1s
    burst: 200
  - name: api-writes
    match:
      methods: [POST, PUT]
      paths: [/api/*]
      ports: ["8080"]
      headers: [{name: X-Tenant, values: [blue, "green*"]}]
    requests: 10
    interval: 1m
  - name: per-tenant
    key: {type: Header, header: x-tenant}
    requests: 5
    interval: 500ms
  quotas:
  - name: batch
    principals: [spiffe://fedmesh.local/ns/batch/sa/*]
    match: {grpc: {service: demo.v1.Echo, method: Say}}
    requests: 600
    interval: 1m
  tcp:
    ports: [5432]
    connectionsPerSecond: 20
    burst: 40
`

func TestParseRateLimitPolicy(t *testing.T) {
	p := mustParse[RateLimitPolicy](t, goodRateLimit)
	want := RateLimitSpec{
		TargetRefs: []TargetRef{{Kind: KindService, Name: "echo"}},
		Local: []LocalRateLimit{
			{Name: "per-caller", Key: &RateLimitKey{Type: KeyPrincipal}, Requests: 100, Interval: metav1.Duration{Duration: time.Second}, Burst: 200},
			{Name: "api-writes", Match: &RateLimitMatch{
				Operation: Operation{Methods: []string{"POST", "PUT"}, Paths: []string{"/api/*"}, Ports: []Port{8080}},
				Headers:   []HeaderCondition{{Name: "X-Tenant", Values: []string{"blue", "green*"}}},
			}, Requests: 10, Interval: metav1.Duration{Duration: time.Minute}},
			{Name: "per-tenant", Key: &RateLimitKey{Type: KeyHeader, Header: "x-tenant"}, Requests: 5, Interval: metav1.Duration{Duration: 500 * time.Millisecond}},
		},
		Quotas: []Quota{{
			Name: "batch", Principals: []string{"spiffe://fedmesh.local/ns/batch/sa/*"},
			Match:    &RateLimitMatch{Operation: Operation{GRPC: &GRPCOperation{Service: "demo.v1.Echo", Method: "Say"}}},
			Requests: 600, Interval: metav1.Duration{Duration: time.Minute},
		}},
		TCP: &ConnectionRateLimit{Ports: []Port{5432}, ConnectionsPerSecond: 20, Burst: 40},
	}
	if diff := cmp.Diff(want, p.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	for _, tt := range []struct{ name, doc, msg string }{
		{"unknown field", strings.Replace(goodRateLimit, "burst: 200", "bursts: 200", 1), `unknown field "spec.local[0].bursts"`},
		{"wrong type", strings.Replace(goodRateLimit, "requests: 100", "requests: many", 1), "requests"},
		{"bad duration", strings.Replace(goodRateLimit, "interval: 1s", "interval: soon", 1), "soon"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseObject([]byte(tt.doc))
			if !errors.Is(err, ErrParseTraffic) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v; want ErrParseTraffic containing %q", err, tt.msg)
			}
		})
	}
	obj, err := ParseObject([]byte(strings.Replace(goodRateLimit, ", namespace: demo", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if ns := obj.(*RateLimitPolicy).Namespace; ns != DefaultNamespace {
		t.Errorf("namespace %q, want %q", ns, DefaultNamespace)
	}
}

func TestValidateRateLimitPolicy(t *testing.T) {
	d := func(s string) metav1.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return metav1.Duration{Duration: v}
	}
	tests := []struct {
		name string
		mod  func(p *RateLimitPolicy)
		want []fieldWant
	}{
		{"good", func(p *RateLimitPolicy) {}, nil},
		{"only tcp, whole namespace", func(p *RateLimitPolicy) { p.Spec.TargetRefs, p.Spec.Local, p.Spec.Quotas = nil, nil, nil }, nil},
		{"wrong kind", func(p *RateLimitPolicy) { p.Kind = KindTelemetryPolicy }, []fieldWant{{"kind", "must be RateLimitPolicy"}}},
		{"nothing set", func(p *RateLimitPolicy) { p.Spec.Local, p.Spec.Quotas, p.Spec.TCP = nil, nil, nil },
			[]fieldWant{{"spec", "local, quotas or tcp must be set"}}},
		{"targetRef kind", func(p *RateLimitPolicy) { p.Spec.TargetRefs[0].Kind = KindServiceImport },
			[]fieldWant{{"spec.targetRefs[0].kind", "must be Service"}}},
		{"requests zero", func(p *RateLimitPolicy) { p.Spec.Local[0].Requests = 0 },
			[]fieldWant{{"spec.local[0].requests", "must be at least 1"}}},
		{"requests too many", func(p *RateLimitPolicy) { p.Spec.Quotas[0].Requests = 1 << 33 },
			[]fieldWant{{"spec.quotas[0].requests", "must be at most 4294967295"}}},
		{"burst negative", func(p *RateLimitPolicy) { p.Spec.Local[0].Burst = -1 },
			[]fieldWant{{"spec.local[0].burst", "must be at least 0"}}},
		{"interval too short", func(p *RateLimitPolicy) { p.Spec.Local[0].Interval = d("10ms") },
			[]fieldWant{{"spec.local[0].interval", "must be between 50ms and 24h0m0s"}}},
		{"interval too long", func(p *RateLimitPolicy) { p.Spec.Local[1].Interval = d("25h") },
			[]fieldWant{{"spec.local[1].interval", "must be between 50ms and 24h0m0s"}}},
		{"quota interval too short", func(p *RateLimitPolicy) { p.Spec.Quotas[0].Interval = d("500ms") },
			[]fieldWant{{"spec.quotas[0].interval", "must be between 1s and 24h0m0s"}}},
		{"name not a label", func(p *RateLimitPolicy) { p.Spec.Local[0].Name = "Per_Caller" },
			[]fieldWant{{"spec.local[0].name", ""}}},
		{"name missing", func(p *RateLimitPolicy) { p.Spec.Quotas[0].Name = "" },
			[]fieldWant{{"spec.quotas[0].name", ""}}},
		{"names repeated", func(p *RateLimitPolicy) { p.Spec.Local[2].Name, p.Spec.Quotas[0].Name = "per-caller", "per-caller" },
			[]fieldWant{{"spec.local[2].name", "the same name as spec.local[0]"}, {"spec.quotas[0].name", "the same name as spec.local[0]"}}},
		{"key type", func(p *RateLimitPolicy) { p.Spec.Local[0].Key.Type = "IP" },
			[]fieldWant{{"spec.local[0].key.type", "must be Principal, SourceNamespace, SourceCluster or Header"}}},
		{"header key without header", func(p *RateLimitPolicy) { p.Spec.Local[2].Key.Header = "" },
			[]fieldWant{{"spec.local[2].key.header", "must not be empty"}}},
		{"header on a principal key", func(p *RateLimitPolicy) { p.Spec.Local[0].Key.Header = "x" },
			[]fieldWant{{"spec.local[0].key.header", "only a key of type Header"}}},
		{"pseudo-header key", func(p *RateLimitPolicy) { p.Spec.Local[2].Key.Header = ":path" },
			[]fieldWant{{"spec.local[2].key.header", "pseudo-headers"}}},
		{"match fields", func(p *RateLimitPolicy) {
			m := p.Spec.Local[1].Match
			m.Methods, m.Paths, m.NotPorts = []string{"GE*"}, []string{"api?x"}, []Port{0}
			m.Headers = []HeaderCondition{{Name: "bad header", Values: []string{"a*b"}}}
		}, []fieldWant{
			{"spec.local[1].match.notPorts[0]", "out of range 1-65535"},
			{"spec.local[1].match.methods[0]", "no globs"},
			{"spec.local[1].match.paths[0]", "remove '?'"},
			{"spec.local[1].match.headers[0].name", "header name"},
			{"spec.local[1].match.headers[0].values[0]", `"*" may only stand alone`},
		}},
		{"grpc match", func(p *RateLimitPolicy) { p.Spec.Quotas[0].Match.GRPC = &GRPCOperation{Service: "1bad", Method: "a.b"} },
			[]fieldWant{{"spec.quotas[0].match.grpc.service", "fully qualified"}, {"spec.quotas[0].match.grpc.method", "method name"}}},
		{"quota principals", func(p *RateLimitPolicy) { p.Spec.Quotas[0].Principals = []string{"batch"} },
			[]fieldWant{{"spec.quotas[0].principals[0]", "must be a SPIFFE ID"}}},
		{"tcp", func(p *RateLimitPolicy) {
			p.Spec.TCP = &ConnectionRateLimit{Ports: []Port{70000, 5432, 5432}, Burst: -2}
		},
			[]fieldWant{
				{"spec.tcp.ports[0]", "out of range"},
				{"spec.tcp.ports[2]", "the same port as ports[1]"},
				{"spec.tcp.connectionsPerSecond", "must be at least 1"},
				{"spec.tcp.burst", "must be at least 0"},
			}},
		{"65 limits", func(p *RateLimitPolicy) {
			p.Spec.Local = nil
			for i := range 65 {
				p.Spec.Local = append(p.Spec.Local, LocalRateLimit{Name: fmt.Sprintf("l%d", i), Requests: 1, Interval: d("1s")})
			}
		}, []fieldWant{{"spec.local", "65 limits, at most 64"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse[RateLimitPolicy](t, goodRateLimit)
			tt.mod(p)
			checkFields(t, "RateLimitPolicy demo/"+p.Name, ValidateObject(p), tt.want)
		})
	}
}

// TestRateLimitIsNeverProducerPolicy: ProducerOf leaves RateLimitPolicies
// out, EncodePolicies drops them, DecodePolicies refuses one, and
// Without keeps them.
func TestRateLimitIsNeverProducerPolicy(t *testing.T) {
	var tr Traffic
	for _, doc := range []string{goodRateLimit, goodResilience} {
		obj, err := ParseObject([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	if len(tr.RateLimits) != 1 || tr.Empty() {
		t.Fatalf("Add: %d rate limit policies, empty %v", len(tr.RateLimits), tr.Empty())
	}
	if p := ProducerOf(&tr, "demo", "echo"); len(p.RateLimits) != 0 {
		t.Errorf("ProducerOf kept %d rate limit policies", len(p.RateLimits))
	}
	enc, err := EncodePolicies(tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc.Objects) != 1 || strings.Contains(string(enc.Objects[0]), KindRateLimitPolicy) {
		t.Errorf("EncodePolicies kept a RateLimitPolicy: %s", enc.Objects)
	}
	_, err = DecodePolicies(&catalog.Policies{Objects: []json.RawMessage{toJSON(t, []byte(goodRateLimit))}})
	if !errors.Is(err, ErrParseTraffic) || !strings.Contains(err.Error(), "local to its cluster") {
		t.Errorf("DecodePolicies of a RateLimitPolicy: %v; want a refusal", err)
	}
	if w := tr.Without([]RefProblem{{Kind: KindHTTPRoute, Namespace: "demo", Name: "x"}}); len(w.RateLimits) != 1 {
		t.Errorf("Without dropped the rate limit policies")
	}
}
