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
	mt "github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
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

func rules(action rbacv3.RBAC_Action, ps mt.Policies) *rbacv3.RBAC {
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
	denyAdmin := mt.Policies{"ns[demo]-policy[deny-admin]-rule[0]": mt.Policy(perms(mt.Path(mt.Prefix("/admin"))), ids(mt.AnyPrincipal()))}
	allowFrontend := mt.Policies{"ns[demo]-policy[allow-web]-rule[0]": mt.Policy(perms(mt.AnyPermission()), ids(mt.PrincipalName(mt.Exact(frontend))))}
	auditPost := mt.Policies{"ns[demo]-policy[audit]-rule[0]": mt.Policy(perms(mt.Method("POST")), ids(mt.AnyPrincipal()))}
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
		{name: "policies tried in name order", rules: []*rbacv3.RBAC{rules(rbacv3.RBAC_DENY, mt.Policies{
			"b": mt.Policy(perms(mt.AnyPermission()), ids(mt.AnyPrincipal())),
			"a": mt.Policy(perms(mt.AnyPermission()), ids(mt.AnyPrincipal())),
		})}, req: req(batch, "GET", "/"), want: outcome{Reason: authz.ReasonDenyPolicy, Policy: "a"}},
		{name: "policy needs a permission AND a principal", rules: []*rbacv3.RBAC{rules(rbacv3.RBAC_DENY, mt.Policies{
			"p": mt.Policy(perms(mt.Method("DELETE"), mt.Path(mt.Exact("/x"))), ids(mt.PrincipalName(mt.Exact(batch)))),
		})}, req: req(frontend, "GET", "/x"), want: outcome{Allowed: true}},
		{name: "any permission OR: second permission matches", rules: []*rbacv3.RBAC{rules(rbacv3.RBAC_DENY, mt.Policies{
			"p": mt.Policy(perms(mt.Method("DELETE"), mt.Path(mt.Exact("/x"))), ids(mt.PrincipalName(mt.Exact(batch)))),
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
	any := ids(mt.AnyPrincipal())
	anyP := perms(mt.AnyPermission())
	tests := []struct {
		name string
		pol  *rbacv3.Policy
		req  *authz.Request
		want bool
	}{
		{name: "principal exact", pol: mt.Policy(anyP, ids(mt.PrincipalName(mt.Exact(frontend)))), req: req(frontend, "GET", "/"), want: true},
		{name: "principal exact other", pol: mt.Policy(anyP, ids(mt.PrincipalName(mt.Exact(frontend)))), req: req(batch, "GET", "/")},
		{name: "principal prefix", pol: mt.Policy(anyP, ids(mt.PrincipalName(mt.Prefix("spiffe://fed.test/ns/web/")))), req: req(frontend, "GET", "/"), want: true},
		{name: "principal suffix", pol: mt.Policy(anyP, ids(mt.PrincipalName(mt.Suffix("/sa/batch")))), req: req(batch, "GET", "/"), want: true},
		{name: "namespace regex", pol: mt.Policy(anyP, ids(mt.PrincipalName(mt.Regex(`spiffe://fed\.test/ns/web/sa/[^/]+`)))), req: req(frontend, "GET", "/"), want: true},
		{name: "regex is a full match", pol: mt.Policy(anyP, ids(mt.PrincipalName(mt.Regex(`ns/web`)))), req: req(frontend, "GET", "/")},
		{name: "unauthenticated never matches authenticated", pol: mt.Policy(anyP, ids(mt.PrincipalName(mt.Regex(`.*`)))), req: req("", "GET", "/")},
		{name: "peer cluster", pol: mt.Policy(anyP, ids(mt.PeerCluster(mt.Exact("east-1")))), req: req(frontend, "GET", "/"), want: true},
		{name: "peer cluster other", pol: mt.Policy(anyP, ids(mt.PeerCluster(mt.Exact("west-1")))), req: req(frontend, "GET", "/")},
		{name: "peer cluster unknown", pol: mt.Policy(anyP, ids(mt.NotID(mt.PeerCluster(mt.Exact("west-1"))))),
			req: &authz.Request{HTTP: true, Principal: frontend}, want: true},
		{name: "and_ids", pol: mt.Policy(anyP, ids(mt.AndIDs(mt.PeerCluster(mt.Exact("east-1")), mt.PrincipalName(mt.Exact(batch))))), req: req(frontend, "GET", "/")},
		{name: "or_ids", pol: mt.Policy(anyP, ids(mt.OrIDs(mt.PeerCluster(mt.Exact("west-1")), mt.PrincipalName(mt.Exact(frontend))))), req: req(frontend, "GET", "/"), want: true},
		{name: "method", pol: mt.Policy(perms(mt.Method("GET")), any), req: req(frontend, "GET", "/"), want: true},
		{name: "method is case sensitive", pol: mt.Policy(perms(mt.Method("GET")), any), req: req(frontend, "get", "/")},
		{name: "path exact ignores query", pol: mt.Policy(perms(mt.Path(mt.Exact("/a"))), any), req: req(frontend, "GET", "/a?b=c"), want: true},
		{name: "path exact ignores fragment", pol: mt.Policy(perms(mt.Path(mt.Exact("/data"))), any), req: req(frontend, "GET", "/data#fragment?param=value"), want: true},
		{name: "grpc service prefix", pol: mt.Policy(perms(mt.Path(mt.Prefix("/pkg.Svc/"))), any), req: req(frontend, "POST", "/pkg.Svc/Get"), want: true},
		{name: "grpc method exact", pol: mt.Policy(perms(mt.Path(mt.Exact("/pkg.Svc/Get"))), any), req: req(frontend, "POST", "/pkg.Svc/Put")},
		{name: "url_path never matches tcp", pol: mt.Policy(perms(mt.NotRule(mt.Path(mt.Exact("/x")))), any),
			req: &authz.Request{Principal: frontend}, want: true},
		{name: "requested server name", pol: mt.Policy(perms(mt.ServerName("8080.echo.demo.svc.clusterset.local")), any), req: req(frontend, "GET", "/"), want: true},
		{name: "requested server name tcp", pol: mt.Policy(perms(mt.ServerName("9000.db.demo.svc.clusterset.local")), any),
			req: &authz.Request{Principal: frontend, SNI: "9000.db.demo.svc.clusterset.local"}, want: true},
		{name: "and_rules", pol: mt.Policy(perms(mt.AndRules(mt.Method("GET"), mt.Path(mt.Prefix("/admin")))), any), req: req(frontend, "GET", "/public")},
		{name: "or_rules", pol: mt.Policy(perms(mt.OrRules(mt.Method("PUT"), mt.Path(mt.Prefix("/admin")))), any), req: req(frontend, "GET", "/admin/x"), want: true},
		{name: "not_rule", pol: mt.Policy(perms(mt.NotRule(mt.Method("GET"))), any), req: req(frontend, "GET", "/")},
		{name: "header", pol: mt.Policy(perms(mt.HeaderPermission("x-env", mt.Exact("prod"))), any),
			req: &authz.Request{HTTP: true, Headers: http.Header{"X-Env": {"prod"}}}, want: true},
		{name: "header several values joined", pol: mt.Policy(perms(mt.HeaderPermission("X-Env", mt.Exact("a,b"))), any),
			req: &authz.Request{HTTP: true, Headers: http.Header{"X-Env": {"a", "b"}}}, want: true},
		{name: "header missing", pol: mt.Policy(perms(mt.HeaderPermission("x-env", mt.Prefix("p"))), any),
			req: &authz.Request{HTTP: true, Headers: http.Header{}}},
		{name: "principal header", pol: mt.Policy(anyP, ids(mt.PrincipalHeader("x-tenant", mt.Exact("a")))),
			req: &authz.Request{HTTP: true, Headers: http.Header{"X-Tenant": {"a"}}}, want: true},
		{name: "ignore case", pol: mt.Policy(perms(mt.Path(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/ADMIN"}, IgnoreCase: true})), any),
			req: req(frontend, "GET", "/admin/x"), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engine(t, rules(rbacv3.RBAC_DENY, mt.Policies{"p": tt.pol}))
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
		{name: "string match", hm: &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: mt.Exact("")}}},
		{name: "inverted string match", hm: &routev3.HeaderMatcher{Name: "x", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: mt.Exact("a")}}},
		{name: "treated as empty", hm: &routev3.HeaderMatcher{Name: "x", TreatMissingHeaderAsEmpty: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: mt.Exact("")}}, want: true},
		{name: "present true", hm: &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}},
		{name: "present false", hm: &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}}, want: true},
		{name: "present true inverted", hm: &routev3.HeaderMatcher{Name: "x", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mt.Policy(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: tt.hm}}), ids(mt.AnyPrincipal()))
			e := engine(t, rules(rbacv3.RBAC_DENY, mt.Policies{"p": p}))
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
			e := engine(t, rules(rbacv3.RBAC_DENY, mt.Policies{tt.key: mt.Policy(perms(mt.AnyPermission()), ids(mt.AnyPrincipal()))}))
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
	anyP := perms(mt.AnyPermission())
	anyID := ids(mt.AnyPrincipal())
	deny := func(p *rbacv3.Policy) *httprbacv3.RBAC {
		return &httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_DENY, mt.Policies{"p": p})}
	}
	tests := []struct {
		name string
		cfg  *httprbacv3.RBAC
		want string
	}{
		{name: "shadow rules", cfg: &httprbacv3.RBAC{ShadowRules: rules(rbacv3.RBAC_DENY, nil)}, want: `"shadow_rules"`},
		{name: "audit logging options", cfg: &httprbacv3.RBAC{Rules: &rbacv3.RBAC{AuditLoggingOptions: &rbacv3.RBAC_AuditLoggingOptions{}}}, want: `"audit_logging_options"`},
		{name: "remote ip principal", cfg: deny(mt.Policy(anyP, ids(&rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{}}))), want: `principals[0]: unsupported RBAC field "remote_ip"`},
		{name: "nested direct remote ip", cfg: deny(mt.Policy(anyP, ids(mt.OrIDs(mt.AnyPrincipal(), &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{}})))), want: `or_ids.ids[1]: unsupported RBAC field "direct_remote_ip"`},
		{name: "destination port permission", cfg: deny(mt.Policy(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 80}}), anyID)), want: `"destination_port"`},
		{name: "metadata permission", cfg: deny(mt.Policy(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_Metadata{}}), anyID)), want: `"metadata"`},
		{name: "policy without principals (Envoy's validation)", cfg: deny(mt.Policy(anyP, nil)), want: "Policy.Principals: value must contain at least 1 item"},
		{name: "plain policy is fine", cfg: deny(mt.Policy(anyP, anyID)), want: ""},
		{name: "other filter state key", cfg: deny(mt.Policy(anyP, ids(&rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
			Key: "other", Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: mt.Exact("x")}}}}))), want: `filter_state.key: unsupported RBAC field "other"`},
		{name: "deprecated header exact_match", cfg: deny(mt.Policy(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "y"}}}}), anyID)), want: `"exact_match"`}, //lint:ignore SA1019 the deprecated matcher is what is refused
		{name: "bad regex", cfg: deny(mt.Policy(anyP, ids(mt.PrincipalName(mt.Regex("(("))))), want: "safe_regex.regex"},
		{name: "empty prefix", cfg: deny(mt.Policy(anyP, ids(mt.PrincipalName(mt.Prefix(""))))), want: "empty pattern"},
		{name: "unknown pseudo header", cfg: deny(mt.Policy(perms(mt.HeaderPermission(":protocol", mt.Exact("x"))), anyID)), want: `":protocol"`},
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
		p := mt.Policy(anyP, anyID)
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
