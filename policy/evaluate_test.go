package policy

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The evaluation order under test is Istio's, from
// https://istio.io/latest/docs/reference/config/security/authorization-policy/:
//  1. If there are any DENY policies that match the request, deny it.
//  2. If there are no ALLOW policies for the workload, allow it.
//  3. If any of the ALLOW policies match the request, allow it.
//  4. Deny the request.
//
// AUDIT policies do not affect whether requests are allowed or denied.
// "rules: if not set, the match will never occur. This is equivalent to
// setting a default of deny for the target workloads if the action is
// ALLOW."

const (
	client = "spiffe://fedmesh.test/ns/demo/sa/client"
	admin  = "spiffe://fedmesh.test/ns/ops/sa/admin"
)

func pol(ns, name string, action Action, rules ...Rule) AuthorizationPolicy {
	p := AuthorizationPolicy{Spec: AuthorizationPolicySpec{Action: action, Rules: rules}}
	p.Namespace, p.Name = ns, name
	return p
}

func targeting(p AuthorizationPolicy, svc string) AuthorizationPolicy {
	p.Spec.TargetRefs = append(p.Spec.TargetRefs, TargetRef{Kind: "Service", Name: svc})
	return p
}

func fromPrincipals(ps ...string) Rule {
	return Rule{From: []RuleFrom{{Source: Source{Principals: ps}}}}
}

func toOp(op Operation) Rule { return Rule{To: []RuleTo{{Operation: op}}} }

func get(path string) Request {
	return Request{Principal: client, Cluster: "east-1", Namespace: "demo", Service: "echo", Port: 8080, Method: "GET", Path: path}
}

func intp(i int) *int { return &i }

func TestEvaluateOrder(t *testing.T) {
	tests := []struct {
		name     string
		policies []AuthorizationPolicy
		req      Request
		want     Decision
	}{
		{
			name: "no policy: allowed (step 2)",
			req:  get("/"),
			want: Decision{Allowed: true, Reason: ReasonNoneApplies},
		},
		{
			name:     "matching DENY wins over a matching ALLOW (step 1 before 3)",
			policies: []AuthorizationPolicy{pol("demo", "allow-all", ActionAllow, Rule{}), pol("demo", "deny-admin", ActionDeny, toOp(Operation{Paths: []string{"/admin*"}}))},
			req:      get("/admin/users"),
			want:     Decision{Action: ActionDeny, Policy: "demo/deny-admin", Rule: intp(0), Reason: ReasonDenied},
		},
		{
			name:     "DENY that does not match: the ALLOW decides",
			policies: []AuthorizationPolicy{pol("demo", "allow-all", ActionAllow, Rule{}), pol("demo", "deny-admin", ActionDeny, toOp(Operation{Paths: []string{"/admin*"}}))},
			req:      get("/public"),
			want:     Decision{Allowed: true, Action: ActionAllow, Policy: "demo/allow-all", Rule: intp(0), Reason: ReasonAllowed},
		},
		{
			name:     "only a DENY that does not match: allowed, no ALLOW applies (step 2)",
			policies: []AuthorizationPolicy{pol("demo", "deny-admin", ActionDeny, toOp(Operation{Paths: []string{"/admin*"}}))},
			req:      get("/public"),
			want:     Decision{Allowed: true, Reason: ReasonNoneApplies},
		},
		{
			name:     "an ALLOW applies and none matches: denied (step 4)",
			policies: []AuthorizationPolicy{pol("demo", "only-admin", ActionAllow, fromPrincipals(admin))},
			req:      get("/"),
			want:     Decision{Action: ActionAllow, Reason: ReasonNoAllow},
		},
		{
			name:     "the second ALLOW matches (any ALLOW, step 3)",
			policies: []AuthorizationPolicy{pol("demo", "a-only-admin", ActionAllow, fromPrincipals(admin)), pol("demo", "b-clients", ActionAllow, fromPrincipals(admin), fromPrincipals("spiffe://fedmesh.test/ns/demo/*"))},
			req:      get("/"),
			want:     Decision{Allowed: true, Action: ActionAllow, Policy: "demo/b-clients", Rule: intp(1), Reason: ReasonAllowed},
		},
		{
			name:     "ALLOW without rules is default deny",
			policies: []AuthorizationPolicy{pol("demo", "deny-all", "")},
			req:      get("/"),
			want:     Decision{Action: ActionAllow, Reason: ReasonNoAllow},
		},
		{
			name:     "DENY without rules never matches",
			policies: []AuthorizationPolicy{pol("demo", "deny-nothing", ActionDeny)},
			req:      get("/"),
			want:     Decision{Allowed: true, Reason: ReasonNoneApplies},
		},
		{
			name:     "mesh-wide default deny from the root namespace; a namespace ALLOW opens it",
			policies: []AuthorizationPolicy{pol(RootNamespace, "deny-all", ActionAllow), pol("demo", "clients", ActionAllow, fromPrincipals(client))},
			req:      get("/"),
			want:     Decision{Allowed: true, Action: ActionAllow, Policy: "demo/clients", Rule: intp(0), Reason: ReasonAllowed},
		},
		{
			name:     "mesh-wide default deny applies to other namespaces",
			policies: []AuthorizationPolicy{pol(RootNamespace, "deny-all", ActionAllow), pol("other", "clients", ActionAllow, Rule{})},
			req:      get("/"),
			want:     Decision{Action: ActionAllow, Reason: ReasonNoAllow},
		},
		{
			name:     "a policy targeting another service does not apply",
			policies: []AuthorizationPolicy{targeting(pol("demo", "store-only", ActionAllow, fromPrincipals(admin)), "store")},
			req:      get("/"),
			want:     Decision{Allowed: true, Reason: ReasonNoneApplies},
		},
		{
			name:     "a policy targeting this service applies",
			policies: []AuthorizationPolicy{targeting(pol("demo", "echo-admin", ActionAllow, fromPrincipals(admin)), "echo")},
			req:      get("/"),
			want:     Decision{Action: ActionAllow, Reason: ReasonNoAllow},
		},
		{
			name:     "AUDIT records and changes nothing",
			policies: []AuthorizationPolicy{pol("demo", "audit-all", ActionAudit, Rule{}, toOp(Operation{Methods: []string{"POST"}}))},
			req:      get("/"),
			want:     Decision{Allowed: true, Reason: ReasonNoneApplies, Audited: []Match{{Policy: "demo/audit-all", Rule: 0}}},
		},
		{
			name:     "AUDIT is recorded on a denied request too",
			policies: []AuthorizationPolicy{pol("demo", "audit-all", ActionAudit, Rule{}), pol("demo", "deny-all", ActionAllow)},
			req:      get("/"),
			want:     Decision{Action: ActionAllow, Reason: ReasonNoAllow, Audited: []Match{{Policy: "demo/audit-all", Rule: 0}}},
		},
		{
			name: "cross-cluster: clusters match the caller's cluster",
			policies: []AuthorizationPolicy{pol("demo", "east-only", ActionAllow, Rule{From: []RuleFrom{{Source: Source{Clusters: []string{"east-*"}}}}}),
				pol("demo", "no-west", ActionDeny, Rule{From: []RuleFrom{{Source: Source{Clusters: []string{"west-1"}}}}})},
			req:  func() Request { r := get("/"); r.Cluster = "west-1"; return r }(),
			want: Decision{Action: ActionDeny, Policy: "demo/no-west", Rule: intp(0), Reason: ReasonDenied},
		},
		{
			name:     "an unknown cluster matches no cluster value",
			policies: []AuthorizationPolicy{pol("demo", "any-cluster", ActionAllow, Rule{From: []RuleFrom{{Source: Source{Clusters: []string{"*"}}}}})},
			req:      func() Request { r := get("/"); r.Cluster = ""; return r }(),
			want:     Decision{Action: ActionAllow, Reason: ReasonNoAllow},
		},
		{
			name:     "policies are taken in namespace/name order: the first DENY is reported",
			policies: []AuthorizationPolicy{pol("demo", "z-deny", ActionDeny, Rule{}), pol("demo", "a-deny", ActionDeny, fromPrincipals(admin), Rule{})},
			req:      get("/"),
			want:     Decision{Action: ActionDeny, Policy: "demo/a-deny", Rule: intp(1), Reason: ReasonDenied},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.policies {
				if err := Validate(&tt.policies[i]); err != nil {
					t.Fatalf("test policy invalid: %v", err)
				}
			}
			got := Evaluate(tt.policies, tt.req)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRuleMatching covers each condition of a rule: from (any source,
// every field), to (any operation, every field), when (every condition),
// and Not* lists.
func TestRuleMatching(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		req  Request
		want bool
	}{
		{"empty rule matches everything", Rule{}, get("/"), true},
		{"principal exact", fromPrincipals(client), get("/"), true},
		{"principal prefix", fromPrincipals("spiffe://fedmesh.test/ns/demo/*"), get("/"), true},
		{"principal suffix", fromPrincipals("*/sa/client"), get("/"), true},
		{"principal other", fromPrincipals(admin), get("/"), false},
		{"any of several sources", Rule{From: []RuleFrom{{Source: Source{Principals: []string{admin}}}, {Source: Source{Namespaces: []string{"demo"}}}}}, get("/"), true},
		{"all fields of one source", Rule{From: []RuleFrom{{Source: Source{Namespaces: []string{"demo"}, Clusters: []string{"west-1"}}}}}, get("/"), false},
		{"namespace glob", Rule{From: []RuleFrom{{Source: Source{Namespaces: []string{"de*"}}}}}, get("/"), true},
		{"notNamespaces", Rule{From: []RuleFrom{{Source: Source{NotNamespaces: []string{"demo"}}}}}, get("/"), false},
		{"notPrincipals lets others through", Rule{From: []RuleFrom{{Source: Source{NotPrincipals: []string{admin}}}}}, get("/"), true},
		{"method", toOp(Operation{Methods: []string{"GET", "HEAD"}}), get("/"), true},
		{"notMethods", toOp(Operation{NotMethods: []string{"GET"}}), get("/"), false},
		{"path prefix ignores the query", toOp(Operation{Paths: []string{"/api/*"}}), get("/api/x?debug=1"), true},
		{"path exact ignores the query", toOp(Operation{Paths: []string{"/health"}}), get("/health?x"), true},
		{"path suffix", toOp(Operation{Paths: []string{"*.css"}}), get("/static/a.css"), true},
		{"notPaths", toOp(Operation{NotPaths: []string{"/admin*"}}), get("/admin"), false},
		{"port", toOp(Operation{Ports: []Port{9090}}), get("/"), false},
		{"notPorts", toOp(Operation{NotPorts: []Port{9090}}), get("/"), true},
		{"grpc service", toOp(Operation{GRPC: &GRPCOperation{Service: "pkg.Echo"}}), get("/pkg.Echo/Say"), true},
		{"grpc method", toOp(Operation{GRPC: &GRPCOperation{Service: "pkg.Echo", Method: "Say"}}), get("/pkg.Echo/Shout"), false},
		{"grpc service is not a path prefix of another service", toOp(Operation{GRPC: &GRPCOperation{Service: "pkg.Echo"}}), get("/pkg.EchoV2/Say"), false},
		{"when header", Rule{When: []Condition{{Key: "request.headers[X-Env]", Values: []string{"prod"}}}},
			func() Request { r := get("/"); r.Headers = map[string]string{"x-env": "prod"}; return r }(), true},
		{"when header absent", Rule{When: []Condition{{Key: "request.headers[x-env]", Values: []string{"*"}}}}, get("/"), false},
		{"when notValues, header absent", Rule{When: []Condition{{Key: "request.headers[x-env]", NotValues: []string{"prod"}}}}, get("/"), true},
		{"from and to must both match", Rule{From: []RuleFrom{{Source: Source{Principals: []string{client}}}}, To: []RuleTo{{Operation: Operation{Methods: []string{"POST"}}}}}, get("/"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pol("demo", "p", ActionAllow, tt.rule)
			if err := Validate(&p); err != nil {
				t.Fatalf("test policy invalid: %v", err)
			}
			got := Evaluate([]AuthorizationPolicy{p}, tt.req).Allowed
			if got != tt.want {
				t.Errorf("allowed = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTCP checks Istio's reduction for opaque TCP: a DENY rule drops its
// HTTP-only conditions (denying more), an ALLOW rule with any never
// matches.
func TestTCP(t *testing.T) {
	tcp := Request{Principal: client, Cluster: "east-1", Namespace: "demo", Service: "store", Port: 5432, TCP: true}
	tests := []struct {
		name     string
		policies []AuthorizationPolicy
		want     Decision
	}{
		{
			name:     "DENY with a path denies every connection",
			policies: []AuthorizationPolicy{pol("demo", "deny-admin", ActionDeny, toOp(Operation{Paths: []string{"/admin"}}))},
			want:     Decision{Action: ActionDeny, Policy: "demo/deny-admin", Rule: intp(0), Reason: ReasonDenied},
		},
		{
			name:     "DENY with a path on another port does not deny",
			policies: []AuthorizationPolicy{pol("demo", "deny-admin", ActionDeny, toOp(Operation{Ports: []Port{8080}, Paths: []string{"/admin"}}))},
			want:     Decision{Allowed: true, Reason: ReasonNoneApplies},
		},
		{
			name:     "ALLOW with a method never matches: default deny",
			policies: []AuthorizationPolicy{pol("demo", "gets", ActionAllow, Rule{From: []RuleFrom{{Source: Source{Principals: []string{client}}}}, To: []RuleTo{{Operation: Operation{Methods: []string{"GET"}}}}})},
			want:     Decision{Action: ActionAllow, Reason: ReasonNoAllow},
		},
		{
			name:     "ALLOW by principal matches",
			policies: []AuthorizationPolicy{pol("demo", "client", ActionAllow, fromPrincipals(client))},
			want:     Decision{Allowed: true, Action: ActionAllow, Policy: "demo/client", Rule: intp(0), Reason: ReasonAllowed},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Evaluate(tt.policies, tcp)); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSourceNamespace(t *testing.T) {
	for in, want := range map[string]string{
		client:                                 "demo",
		"spiffe://td/ns/a/sa/b/extra":          "",
		"spiffe://td/cluster/east-1/ns/a/sa/b": "",
		"spiffe://td/ns/a/sa/":                 "",
		"":                                     "",
	} {
		if got := SourceNamespace(in); got != want {
			t.Errorf("SourceNamespace(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		in    string
		ok    bool
		match map[string]bool
		re    string
	}{
		{"*", true, map[string]bool{"a": true, "": false}, "[^/]+"},
		{"ab*", true, map[string]bool{"ab": true, "abc": true, "xab": false}, "ab[^/]*"},
		{"*ab", true, map[string]bool{"ab": true, "xab": true, "abx": false}, "[^/]*ab"},
		{"a.b", true, map[string]bool{"a.b": true, "axb": false}, `a\.b`},
		{"a*b", false, nil, ""},
		{"**", false, nil, ""},
		{"*a*", false, nil, ""},
		{"", false, nil, ""},
	}
	for _, tt := range tests {
		g, ok := ParseGlob(tt.in)
		if ok != tt.ok {
			t.Errorf("ParseGlob(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		for v, want := range tt.match {
			if got := g.Match(v); got != want {
				t.Errorf("%q.Match(%q) = %v, want %v", tt.in, v, got, want)
			}
		}
		if got := g.Regexp("[^/]"); got != tt.re {
			t.Errorf("%q.Regexp = %q, want %q", tt.in, got, tt.re)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{10, 1000} {
		rules := make([]Rule, n)
		for i := range rules {
			rules[i] = Rule{From: []RuleFrom{{Source: Source{Principals: []string{admin}}}}, To: []RuleTo{{Operation: Operation{Paths: []string{"/admin/*"}}}}}
		}
		rules[n-1] = fromPrincipals(client)
		ps := []AuthorizationPolicy{pol("demo", "p", ActionAllow, rules...)}
		b.Run(strconv.Itoa(n)+"-rules", func(b *testing.B) {
			b.ReportAllocs()
			req := get("/api")
			for b.Loop() {
				if !Evaluate(ps, req).Allowed {
					b.Fatal("denied")
				}
			}
		})
	}
}
