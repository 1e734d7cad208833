package authz_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	exprpb "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fedmesh/fedmesh/sidecar/authz"
)

// The semantics under test are those of Envoy's RBAC filter:
// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/rbac_filter
// and the policy model of
// https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/rbac/v3/rbac.proto
// ("A policy matches if and only if at least one of its permissions match
// the action taking place AND at least one of its principals match the
// downstream AND the condition is true if specified").

const (
	frontend = "spiffe://fed.test/ns/web/sa/frontend"
	batch    = "spiffe://fed.test/ns/jobs/sa/batch"
)

func engine(t testing.TB, rules ...*rbacv3.RBAC) *authz.Engine {
	t.Helper()
	var fs []*authz.Filter
	for _, r := range rules {
		f, err := authz.NewHTTPFilter(&httprbacv3.RBAC{Rules: r})
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	return authz.NewEngine(fs...)
}

func rules(action rbacv3.RBAC_Action, ps Policies) *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: action, Policies: ps}
}

func perms(ps ...*rbacv3.Permission) []*rbacv3.Permission { return ps }
func ids(ps ...*rbacv3.Principal) []*rbacv3.Principal     { return ps }

func req(principal, method, path string) *authz.Request {
	return &authz.Request{HTTP: true, Principal: principal, PeerCluster: "east-1", SNI: "8080.echo.demo.svc.clusterset.local", Method: method, Path: path, Headers: http.Header{}}
}

type outcome struct {
	Allowed bool
	Reason  authz.Reason
	Policy  string
	Audited []string
}

func summary(d authz.Decision) outcome {
	o := outcome{Allowed: d.Allowed, Reason: d.Reason}
	if d.Policy != nil {
		o.Policy = d.Policy.Key
	}
	for _, a := range d.Audited {
		o.Audited = append(o.Audited, a.Key)
	}
	return o
}

func TestEvaluationOrder(t *testing.T) {
	denyAdmin := Policies{"ns[demo]-policy[deny-admin]-rule[0]": Policy(perms(Path(Prefix("/admin"))), ids(AnyPrincipal()))}
	allowFrontend := Policies{"ns[demo]-policy[allow-web]-rule[0]": Policy(perms(AnyPermission()), ids(PrincipalName(Exact(frontend))))}
	auditPost := Policies{"ns[demo]-policy[audit]-rule[0]": Policy(perms(Method("POST")), ids(AnyPrincipal()))}
	contract := []*rbacv3.RBAC{rules(rbacv3.RBAC_LOG, auditPost), rules(rbacv3.RBAC_DENY, denyAdmin), rules(rbacv3.RBAC_ALLOW, allowFrontend)}
	tests := []struct {
		name  string
		rules []*rbacv3.RBAC
		req   *authz.Request
		want  outcome
	}{
		{name: "no filters allow", req: req(batch, "GET", "/"), want: outcome{Allowed: true}},
		{name: "allowed by ALLOW", rules: contract, req: req(frontend, "GET", "/x"), want: outcome{Allowed: true}},
		{name: "DENY wins over ALLOW", rules: contract, req: req(frontend, "GET", "/admin/users"),
			want: outcome{Reason: authz.ReasonDenyPolicy, Policy: "ns[demo]-policy[deny-admin]-rule[0]"}},
		{name: "no ALLOW match", rules: contract, req: req(batch, "GET", "/x"), want: outcome{Reason: authz.ReasonNoAllow}},
		{name: "AUDIT recorded and allowed", rules: contract, req: req(frontend, "POST", "/x"),
			want: outcome{Allowed: true, Audited: []string{"ns[demo]-policy[audit]-rule[0]"}}},
		{name: "AUDIT recorded even when denied later", rules: contract, req: req(batch, "POST", "/admin"),
			want: outcome{Reason: authz.ReasonDenyPolicy, Policy: "ns[demo]-policy[deny-admin]-rule[0]", Audited: []string{"ns[demo]-policy[audit]-rule[0]"}}},
		{name: "ALLOW with empty policies denies all", rules: []*rbacv3.RBAC{rules(rbacv3.RBAC_ALLOW, nil)}, req: req(frontend, "GET", "/"),
			want: outcome{Reason: authz.ReasonNoAllow}},
		{name: "DENY with empty policies denies nothing", rules: []*rbacv3.RBAC{rules(rbacv3.RBAC_DENY, nil)}, req: req(frontend, "GET", "/"),
			want: outcome{Allowed: true}},
		{name: "LOG never denies", rules: []*rbacv3.RBAC{rules(rbacv3.RBAC_LOG, auditPost)}, req: req(batch, "GET", "/"),
			want: outcome{Allowed: true}},
		{name: "first denial wins: a DENY after an ALLOW that denied is not reached",
			rules: []*rbacv3.RBAC{rules(rbacv3.RBAC_ALLOW, allowFrontend), rules(rbacv3.RBAC_DENY, denyAdmin)}, req: req(batch, "GET", "/admin"),
			want: outcome{Reason: authz.ReasonNoAllow}},
		{name: "policies tried in name order", rules: []*rbacv3.RBAC{rules(rbacv3.RBAC_DENY, Policies{
			"b": Policy(perms(AnyPermission()), ids(AnyPrincipal())),
			"a": Policy(perms(AnyPermission()), ids(AnyPrincipal())),
		})}, req: req(batch, "GET", "/"), want: outcome{Reason: authz.ReasonDenyPolicy, Policy: "a"}},
		{name: "policy needs a permission AND a principal", rules: []*rbacv3.RBAC{rules(rbacv3.RBAC_DENY, Policies{
			"p": Policy(perms(Method("DELETE"), Path(Exact("/x"))), ids(PrincipalName(Exact(batch)))),
		})}, req: req(frontend, "GET", "/x"), want: outcome{Allowed: true}},
		{name: "any permission OR: second permission matches", rules: []*rbacv3.RBAC{rules(rbacv3.RBAC_DENY, Policies{
			"p": Policy(perms(Method("DELETE"), Path(Exact("/x"))), ids(PrincipalName(Exact(batch)))),
		})}, req: req(batch, "GET", "/x?q=1"), want: outcome{Reason: authz.ReasonDenyPolicy, Policy: "p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summary(engine(t, tt.rules...).Authorize(tt.req))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMatchers(t *testing.T) {
	any := ids(AnyPrincipal())
	anyP := perms(AnyPermission())
	tests := []struct {
		name string
		pol  *rbacv3.Policy
		req  *authz.Request
		want bool
	}{
		{name: "principal exact", pol: Policy(anyP, ids(PrincipalName(Exact(frontend)))), req: req(frontend, "GET", "/"), want: true},
		{name: "principal exact other", pol: Policy(anyP, ids(PrincipalName(Exact(frontend)))), req: req(batch, "GET", "/")},
		{name: "principal prefix", pol: Policy(anyP, ids(PrincipalName(Prefix("spiffe://fed.test/ns/web/")))), req: req(frontend, "GET", "/"), want: true},
		{name: "principal suffix", pol: Policy(anyP, ids(PrincipalName(Suffix("/sa/batch")))), req: req(batch, "GET", "/"), want: true},
		{name: "namespace regex", pol: Policy(anyP, ids(PrincipalName(Regex(`spiffe://fed\.test/ns/web/sa/[^/]+`)))), req: req(frontend, "GET", "/"), want: true},
		{name: "regex is a full match", pol: Policy(anyP, ids(PrincipalName(Regex(`ns/web`)))), req: req(frontend, "GET", "/")},
		{name: "unauthenticated never matches authenticated", pol: Policy(anyP, ids(PrincipalName(Regex(`.*`)))), req: req("", "GET", "/")},
		{name: "peer cluster", pol: Policy(anyP, ids(PeerCluster(Exact("east-1")))), req: req(frontend, "GET", "/"), want: true},
		{name: "peer cluster other", pol: Policy(anyP, ids(PeerCluster(Exact("west-1")))), req: req(frontend, "GET", "/")},
		{name: "peer cluster unknown", pol: Policy(anyP, ids(NotID(PeerCluster(Exact("west-1"))))),
			req: &authz.Request{HTTP: true, Principal: frontend}, want: true},
		{name: "and_ids", pol: Policy(anyP, ids(AndIDs(PeerCluster(Exact("east-1")), PrincipalName(Exact(batch))))), req: req(frontend, "GET", "/")},
		{name: "or_ids", pol: Policy(anyP, ids(OrIDs(PeerCluster(Exact("west-1")), PrincipalName(Exact(frontend))))), req: req(frontend, "GET", "/"), want: true},
		{name: "method", pol: Policy(perms(Method("GET")), any), req: req(frontend, "GET", "/"), want: true},
		{name: "method is case sensitive", pol: Policy(perms(Method("GET")), any), req: req(frontend, "get", "/")},
		{name: "path exact ignores query", pol: Policy(perms(Path(Exact("/a"))), any), req: req(frontend, "GET", "/a?b=c"), want: true},
		{name: "path exact ignores fragment", pol: Policy(perms(Path(Exact("/data"))), any), req: req(frontend, "GET", "/data#fragment?param=value"), want: true},
		{name: "grpc service prefix", pol: Policy(perms(Path(Prefix("/pkg.Svc/"))), any), req: req(frontend, "POST", "/pkg.Svc/Get"), want: true},
		{name: "grpc method exact", pol: Policy(perms(Path(Exact("/pkg.Svc/Get"))), any), req: req(frontend, "POST", "/pkg.Svc/Put")},
		{name: "url_path never matches tcp", pol: Policy(perms(NotRule(Path(Exact("/x")))), any),
			req: &authz.Request{Principal: frontend}, want: true},
		{name: "requested server name", pol: Policy(perms(ServerName("8080.echo.demo.svc.clusterset.local")), any), req: req(frontend, "GET", "/"), want: true},
		{name: "requested server name tcp", pol: Policy(perms(ServerName("9000.db.demo.svc.clusterset.local")), any),
			req: &authz.Request{Principal: frontend, SNI: "9000.db.demo.svc.clusterset.local"}, want: true},
		{name: "and_rules", pol: Policy(perms(AndRules(Method("GET"), Path(Prefix("/admin")))), any), req: req(frontend, "GET", "/public")},
		{name: "or_rules", pol: Policy(perms(OrRules(Method("PUT"), Path(Prefix("/admin")))), any), req: req(frontend, "GET", "/admin/x"), want: true},
		{name: "not_rule", pol: Policy(perms(NotRule(Method("GET"))), any), req: req(frontend, "GET", "/")},
		{name: "header", pol: Policy(perms(HeaderPermission("x-env", Exact("prod"))), any),
			req: &authz.Request{HTTP: true, Headers: http.Header{"X-Env": {"prod"}}}, want: true},
		{name: "header several values joined", pol: Policy(perms(HeaderPermission("X-Env", Exact("a,b"))), any),
			req: &authz.Request{HTTP: true, Headers: http.Header{"X-Env": {"a", "b"}}}, want: true},
		{name: "header missing", pol: Policy(perms(HeaderPermission("x-env", Prefix("p"))), any),
			req: &authz.Request{HTTP: true, Headers: http.Header{}}},
		{name: "principal header", pol: Policy(anyP, ids(PrincipalHeader("x-tenant", Exact("a")))),
			req: &authz.Request{HTTP: true, Headers: http.Header{"X-Tenant": {"a"}}}, want: true},
		{name: "ignore case", pol: Policy(perms(Path(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/ADMIN"}, IgnoreCase: true})), any),
			req: req(frontend, "GET", "/admin/x"), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engine(t, rules(rbacv3.RBAC_DENY, Policies{"p": tt.pol}))
			if got := !e.Authorize(tt.req).Allowed; got != tt.want {
				t.Errorf("policy matched = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHeaderMissing follows Envoy's HeaderUtility::matchHeaders for a
// header the request does not carry.
func TestHeaderMissing(t *testing.T) {
	tests := []struct {
		name string
		hm   *routev3.HeaderMatcher
		want bool
	}{
		{name: "string match", hm: &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: Exact("")}}},
		{name: "inverted string match", hm: &routev3.HeaderMatcher{Name: "x", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: Exact("a")}}},
		{name: "treated as empty", hm: &routev3.HeaderMatcher{Name: "x", TreatMissingHeaderAsEmpty: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: Exact("")}}, want: true},
		{name: "present true", hm: &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}},
		{name: "present false", hm: &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}}, want: true},
		{name: "present true inverted", hm: &routev3.HeaderMatcher{Name: "x", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Policy(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: tt.hm}}), ids(AnyPrincipal()))
			e := engine(t, rules(rbacv3.RBAC_DENY, Policies{"p": p}))
			if got := !e.Authorize(&authz.Request{HTTP: true}).Allowed; got != tt.want {
				t.Errorf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPolicyNames(t *testing.T) {
	tests := []struct {
		key  string
		want authz.PolicyRef
	}{
		{key: "ns[demo]-policy[deny-admin]-rule[0]", want: authz.PolicyRef{Key: "ns[demo]-policy[deny-admin]-rule[0]", Policy: "demo/deny-admin", Rule: 0, HasRule: true}},
		{key: "ns[a]-policy[b]-rule[12]", want: authz.PolicyRef{Key: "ns[a]-policy[b]-rule[12]", Policy: "a/b", Rule: 12, HasRule: true}},
		{key: "ns[a]-policy[b]-rule[x]", want: authz.PolicyRef{Key: "ns[a]-policy[b]-rule[x]", Policy: "ns[a]-policy[b]-rule[x]"}},
		{key: "ns[a]-policy[b]-rule[01]", want: authz.PolicyRef{Key: "ns[a]-policy[b]-rule[01]", Policy: "ns[a]-policy[b]-rule[01]"}},
		{key: "ns[a]-policy[b]-rule[1]x", want: authz.PolicyRef{Key: "ns[a]-policy[b]-rule[1]x", Policy: "ns[a]-policy[b]-rule[1]x"}},
		{key: "custom", want: authz.PolicyRef{Key: "custom", Policy: "custom"}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			e := engine(t, rules(rbacv3.RBAC_DENY, Policies{tt.key: Policy(perms(AnyPermission()), ids(AnyPrincipal()))}))
			d := e.Authorize(req(frontend, "GET", "/"))
			if d.Policy == nil {
				t.Fatal("no policy")
			}
			if diff := cmp.Diff(tt.want, *d.Policy); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRefusesUnsupported(t *testing.T) {
	anyP := perms(AnyPermission())
	anyID := ids(AnyPrincipal())
	deny := func(p *rbacv3.Policy) *httprbacv3.RBAC {
		return &httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_DENY, Policies{"p": p})}
	}
	tests := []struct {
		name string
		cfg  *httprbacv3.RBAC
		want string
	}{
		{name: "shadow rules", cfg: &httprbacv3.RBAC{ShadowRules: rules(rbacv3.RBAC_DENY, nil)}, want: `"shadow_rules"`},
		{name: "audit logging options", cfg: &httprbacv3.RBAC{Rules: &rbacv3.RBAC{AuditLoggingOptions: &rbacv3.RBAC_AuditLoggingOptions{}}}, want: `"audit_logging_options"`},
		{name: "remote ip principal", cfg: deny(Policy(anyP, ids(&rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{}}))), want: `principals[0]: unsupported RBAC field "remote_ip"`},
		{name: "nested direct remote ip", cfg: deny(Policy(anyP, ids(OrIDs(AnyPrincipal(), &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{}})))), want: `or_ids.ids[1]: unsupported RBAC field "direct_remote_ip"`},
		{name: "destination port permission", cfg: deny(Policy(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 80}}), anyID)), want: `"destination_port"`},
		{name: "metadata permission", cfg: deny(Policy(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_Metadata{}}), anyID)), want: `"metadata"`},
		{name: "policy without principals (Envoy's validation)", cfg: deny(Policy(anyP, nil)), want: "Policy.Principals: value must contain at least 1 item"},
		{name: "plain policy is fine", cfg: deny(Policy(anyP, anyID)), want: ""},
		{name: "other filter state key", cfg: deny(Policy(anyP, ids(&rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
			Key: "other", Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: Exact("x")}}}}))), want: `filter_state.key: unsupported RBAC field "other"`},
		{name: "deprecated header exact_match", cfg: deny(Policy(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "y"}}}}), anyID)), want: `"exact_match"`}, //lint:ignore SA1019 the deprecated matcher is what is refused
		{name: "bad regex", cfg: deny(Policy(anyP, ids(PrincipalName(Regex("(("))))), want: "safe_regex.regex"},
		{name: "empty prefix", cfg: deny(Policy(anyP, ids(PrincipalName(Prefix(""))))), want: "empty pattern"},
		{name: "unknown pseudo header", cfg: deny(Policy(perms(HeaderPermission(":protocol", Exact("x"))), anyID)), want: `":protocol"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authz.NewHTTPFilter(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewHTTPFilter() = %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewHTTPFilter() error = %v, want one containing %s", err, tt.want)
			}
		})
	}
	t.Run("cel condition", func(t *testing.T) {
		p := Policy(anyP, anyID)
		p.Condition = celTrue()
		cfg := deny(p)
		_, err := authz.NewHTTPFilter(cfg)
		if !errors.Is(err, authz.ErrUnsupported) || !strings.Contains(err.Error(), `"condition"`) {
			t.Fatalf("error = %v, want unsupported condition", err)
		}
	})
	t.Run("network continuous enforcement", func(t *testing.T) {
		_, err := authz.NewNetworkFilter(&netrbacv3.RBAC{StatPrefix: "x", Rules: rules(rbacv3.RBAC_DENY, nil), EnforcementType: netrbacv3.RBAC_CONTINUOUS})
		if !errors.Is(err, authz.ErrUnsupported) || !strings.Contains(err.Error(), "enforcement_type") {
			t.Fatalf("error = %v", err)
		}
		_, err = authz.NewNetworkFilter(&netrbacv3.RBAC{StatPrefix: "x", Rules: rules(rbacv3.RBAC_DENY, nil), DelayDeny: durationpb.New(1)})
		if !errors.Is(err, authz.ErrUnsupported) || !strings.Contains(err.Error(), "delay_deny") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("no rules enforce nothing", func(t *testing.T) {
		f, err := authz.NewHTTPFilter(&httprbacv3.RBAC{})
		if err != nil || f != nil {
			t.Fatalf("NewHTTPFilter(no rules) = %v, %v; want nil, nil", f, err)
		}
		if d := authz.NewEngine(f).Authorize(req(batch, "GET", "/")); !d.Allowed {
			t.Error("an engine without filters denied")
		}
	})
}

// celTrue is a CEL expression: the sidecar has no CEL.
func celTrue() *exprpb.Expr {
	return &exprpb.Expr{ExprKind: &exprpb.Expr_ConstExpr{ConstExpr: &exprpb.Constant{ConstantKind: &exprpb.Constant_BoolValue{BoolValue: true}}}}
}
