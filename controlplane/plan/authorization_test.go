package plan

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

func authzPolicy(t *testing.T, ns, name string, action policy.Action, rules ...policy.Rule) policy.AuthorizationPolicy {
	t.Helper()
	p := policy.AuthorizationPolicy{Spec: policy.AuthorizationPolicySpec{Action: action, Rules: rules}}
	p.Namespace, p.Name = ns, name
	if err := policy.Validate(&p); err != nil {
		t.Fatalf("test policy: %v", err)
	}
	return p
}

var (
	echo8080  = naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	store5432 = naming.ServicePort{Namespace: "demo", Name: "store", Port: 5432}
	anyPerm   = Permission{Any: true}
	anyPrin   = Principal{Any: true}
	client    = "spiffe://fedmesh.test/ns/demo/sa/client"
)

func exact(v string) *StringMatch  { return &StringMatch{Kind: MatchExact, Value: v} }
func prefix(v string) *StringMatch { return &StringMatch{Kind: MatchPrefix, Value: v} }
func regex(v string) *StringMatch  { return &StringMatch{Kind: MatchRegex, Value: v} }

func TestAuthorization(t *testing.T) {
	deny := policy.ActionDeny
	allow := policy.ActionAllow
	audit := policy.ActionAudit
	pathsOp := func(paths ...string) policy.RuleTo {
		return policy.RuleTo{Operation: policy.Operation{Paths: paths}}
	}
	tests := []struct {
		name     string
		policies func(t *testing.T) []policy.AuthorizationPolicy
		sp       naming.ServicePort
		http     bool
		want     *Authorization
	}{
		{
			name:     "no policy: nothing to enforce",
			policies: func(*testing.T) []policy.AuthorizationPolicy { return nil },
			sp:       echo8080, http: true,
			want: nil,
		},
		{
			name: "policy of another namespace does not apply",
			policies: func(t *testing.T) []policy.AuthorizationPolicy {
				return []policy.AuthorizationPolicy{authzPolicy(t, "other", "deny-all", allow)}
			},
			sp: echo8080, http: true,
			want: nil,
		},
		{
			name: "ALLOW without rules: an empty ALLOW filter (default deny)",
			policies: func(t *testing.T) []policy.AuthorizationPolicy {
				return []policy.AuthorizationPolicy{authzPolicy(t, policy.RootNamespace, "deny-all", allow)}
			},
			sp: echo8080, http: true,
			want: &Authorization{
				Filters: []RBACFilter{{Action: RBACAllow, Policies: []RBACPolicy{}}},
				Notes:   []AuthorizationNote{{Policy: "fedmesh-system/deny-all", Rule: -1, Note: "no rules: matches nothing"}},
			},
		},
		{
			name: "filters in order LOG, DENY, ALLOW",
			policies: func(t *testing.T) []policy.AuthorizationPolicy {
				return []policy.AuthorizationPolicy{
					authzPolicy(t, "demo", "a-allow", allow, policy.Rule{}),
					authzPolicy(t, "demo", "b-deny", deny, policy.Rule{To: []policy.RuleTo{pathsOp("/admin*")}}),
					authzPolicy(t, "demo", "c-audit", audit, policy.Rule{}),
				}
			},
			sp: echo8080, http: true,
			want: &Authorization{Filters: []RBACFilter{
				{Action: RBACLog, Policies: []RBACPolicy{{Name: "ns[demo]-policy[c-audit]-rule[0]", Permissions: []Permission{anyPerm}, Principals: []Principal{anyPrin}}}},
				{Action: RBACDeny, Policies: []RBACPolicy{{Name: "ns[demo]-policy[b-deny]-rule[0]", Permissions: []Permission{{Path: prefix("/admin")}}, Principals: []Principal{anyPrin}}}},
				{Action: RBACAllow, Policies: []RBACPolicy{{Name: "ns[demo]-policy[a-allow]-rule[0]", Permissions: []Permission{anyPerm}, Principals: []Principal{anyPrin}}}},
			}},
		},
		{
			name: "sources: principals, namespaces (regex in the trust domain), clusters, not-lists and when, ANDed per source",
			policies: func(t *testing.T) []policy.AuthorizationPolicy {
				return []policy.AuthorizationPolicy{authzPolicy(t, "demo", "p", allow, policy.Rule{
					From: []policy.RuleFrom{
						{Source: policy.Source{Principals: []string{client, "*"}, NotClusters: []string{"west-*"}}},
						{Source: policy.Source{Namespaces: []string{"team-*"}}},
					},
					When: []policy.Condition{{Key: "request.headers[X-Env]", Values: []string{"prod"}}},
				})}
			},
			sp: echo8080, http: true,
			want: &Authorization{Filters: []RBACFilter{{Action: RBACAllow, Policies: []RBACPolicy{{
				Name:        "ns[demo]-policy[p]-rule[0]",
				Permissions: []Permission{anyPerm},
				Principals: []Principal{
					{And: []Principal{
						{Or: []Principal{{Name: exact(client)}, {Name: regex(".+")}}},
						{Not: &Principal{PeerCluster: prefix("west-")}},
						{Header: &HeaderMatch{Name: "x-env", Match: StringMatch{Kind: MatchExact, Value: "prod"}}},
					}},
					{And: []Principal{
						{Name: regex(`spiffe://fedmesh\.test/ns/team-[^/]*/sa/[^/]+`)},
						{Header: &HeaderMatch{Name: "x-env", Match: StringMatch{Kind: MatchExact, Value: "prod"}}},
					}},
				},
			}}}}},
		},
		{
			name: "operations: methods, paths, gRPC, ports decided per chain",
			policies: func(t *testing.T) []policy.AuthorizationPolicy {
				return []policy.AuthorizationPolicy{authzPolicy(t, "demo", "p", allow, policy.Rule{To: []policy.RuleTo{
					{Operation: policy.Operation{Ports: []policy.Port{8080}, Methods: []string{"GET", "HEAD"}, NotPaths: []string{"/admin*"}}},
					{Operation: policy.Operation{Ports: []policy.Port{9090}, Methods: []string{"POST"}}},
					{Operation: policy.Operation{GRPC: &policy.GRPCOperation{Service: "pkg.Echo", Method: "Say"}}},
				}})}
			},
			sp: echo8080, http: true,
			want: &Authorization{Filters: []RBACFilter{{Action: RBACAllow, Policies: []RBACPolicy{{
				Name: "ns[demo]-policy[p]-rule[0]",
				Permissions: []Permission{
					{And: []Permission{{Or: []Permission{{Method: "GET"}, {Method: "HEAD"}}}, {Not: &Permission{Path: prefix("/admin")}}}},
					{Path: exact("/pkg.Echo/Say")},
				},
				Principals: []Principal{anyPrin},
			}}}}},
		},
		{
			name: "a rule whose operations name other ports only is left out",
			policies: func(t *testing.T) []policy.AuthorizationPolicy {
				return []policy.AuthorizationPolicy{authzPolicy(t, "demo", "p", deny, policy.Rule{To: []policy.RuleTo{{Operation: policy.Operation{Ports: []policy.Port{9090}}}}})}
			},
			sp: echo8080, http: true,
			want: &Authorization{Notes: []AuthorizationNote{{Policy: "demo/p", Rule: 0, Note: "left out on port 8080: every to.operation names other ports"}}},
		},
		{
			name: "TCP: DENY drops HTTP-only conditions, ALLOW with them is left out",
			policies: func(t *testing.T) []policy.AuthorizationPolicy {
				return []policy.AuthorizationPolicy{
					authzPolicy(t, "demo", "deny-admin", deny, policy.Rule{
						From: []policy.RuleFrom{{Source: policy.Source{Principals: []string{client}}}},
						To:   []policy.RuleTo{pathsOp("/admin")},
					}),
					authzPolicy(t, "demo", "gets", allow, policy.Rule{To: []policy.RuleTo{{Operation: policy.Operation{Methods: []string{"GET"}}}}}),
				}
			},
			sp: store5432, http: false,
			want: &Authorization{
				Filters: []RBACFilter{
					{Action: RBACDeny, Policies: []RBACPolicy{{Name: "ns[demo]-policy[deny-admin]-rule[0]", Permissions: []Permission{anyPerm}, Principals: []Principal{{Name: exact(client)}}}}},
					{Action: RBACAllow, Policies: []RBACPolicy{}},
				},
				Notes: []AuthorizationNote{
					{Policy: "demo/deny-admin", Rule: 0, Note: "HTTP-only conditions (paths) ignored on TCP port 5432: the DENY rule denies more"},
					{Policy: "demo/gets", Rule: 0, Note: "left out on TCP port 5432: an ALLOW rule with HTTP-only conditions (methods) never matches a TCP connection"},
				},
			},
		},
		{
			name: "targetRefs: only the named service",
			policies: func(t *testing.T) []policy.AuthorizationPolicy {
				p := authzPolicy(t, "demo", "store-only", allow)
				p.Spec.TargetRefs = []policy.TargetRef{{Kind: "Service", Name: "store"}}
				return []policy.AuthorizationPolicy{p}
			},
			sp: echo8080, http: true,
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(testTD, topology.Policy{}, testView("west-1")).WithAuthorization(tt.policies(t))
			got := p.Authorization(tt.sp, tt.http)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Authorization (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInboundAuthorization checks that the inbound plan carries each
// chain's authorization.
func TestInboundAuthorization(t *testing.T) {
	v := testView("west-1")
	v.Services[0].Endpoints[3].Workload = "echo"
	p := New(testTD, topology.Policy{}, v).WithAuthorization([]policy.AuthorizationPolicy{authzPolicy(t, "demo", "deny-all", policy.ActionAllow)})
	in := p.Inbound("demo", "echo", func(port catalog.Port) int32 { return 9080 })
	if len(in.Listeners) != 1 || len(in.Listeners[0].Chains) != 1 {
		t.Fatalf("inbound: %+v", in)
	}
	az := in.Listeners[0].Chains[0].Authz
	if az == nil || len(az.Filters) != 1 || az.Filters[0].Action != RBACAllow || len(az.Filters[0].Policies) != 0 {
		t.Errorf("chain authorization = %+v, want one empty ALLOW filter", az)
	}
	if az := New(testTD, topology.Policy{}, v).Inbound("demo", "echo", func(catalog.Port) int32 { return 9080 }).Listeners[0].Chains[0].Authz; az != nil {
		t.Errorf("without policies: authorization %+v, want nil", az)
	}
}
