package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
)

const good = `
apiVersion: fedmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: echo-readers
  namespace: demo
spec:
  targetRefs:
  - kind: Service
    name: echo
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["spiffe://fedmesh.local/ns/demo/sa/client"]
        clusters: ["east-*"]
    to:
    - operation:
        ports: [8080, "9090"]
        methods: [GET]
        paths: ["/api/*"]
    - operation:
        grpc: {service: pkg.v1.Echo, method: Say}
    when:
    - key: request.headers[X-Env]
      values: [prod]
`

func TestParse(t *testing.T) {
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := AuthorizationPolicySpec{
		TargetRefs: []TargetRef{{Kind: "Service", Name: "echo"}},
		Action:     ActionAllow,
		Rules: []Rule{{
			From: []RuleFrom{{Source: Source{Principals: []string{"spiffe://fedmesh.local/ns/demo/sa/client"}, Clusters: []string{"east-*"}}}},
			To: []RuleTo{
				{Operation: Operation{Ports: []Port{8080, 9090}, Methods: []string{"GET"}, Paths: []string{"/api/*"}}},
				{Operation: Operation{GRPC: &GRPCOperation{Service: "pkg.v1.Echo", Method: "Say"}}},
			},
			When: []Condition{{Key: "request.headers[X-Env]", Values: []string{"prod"}}},
		}},
	}
	if diff := cmp.Diff(want, p.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if p.Key() != "demo/echo-readers" {
		t.Errorf("key %q", p.Key())
	}
}

func TestParseDefaults(t *testing.T) {
	p, err := Parse([]byte("apiVersion: fedmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: deny-all}\nspec: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespace != DefaultNamespace || p.Spec.EffectiveAction() != ActionAllow || len(p.Spec.Rules) != 0 {
		t.Errorf("got namespace %q action %q rules %d, want default, ALLOW, none", p.Namespace, p.Spec.EffectiveAction(), len(p.Spec.Rules))
	}
}

// TestParseErrors checks that every refusal names the field and why.
func TestParseErrors(t *testing.T) {
	head := "apiVersion: fedmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: demo}\n"
	tests := []struct {
		name    string
		doc     string
		invalid bool // a validation error, not a parse error
		want    []string
	}{
		{"unknown field", head + "spec: {rules: [{from: [{source: {principal: [x]}}]}]}", false, []string{`unknown field "spec.rules[0].from[0].source.principal"`}},
		{"istio field fedmesh lacks", head + "spec: {selector: {matchLabels: {app: x}}}", false, []string{`unknown field "spec.selector"`}},
		{"duplicate field", head + "spec: {action: ALLOW, action: DENY}", false, []string{"action"}},
		{"wrong type", head + "spec: {rules: [{to: [{operation: {methods: GET}}]}]}", false, []string{"methods"}},
		{"port not a number", head + "spec: {rules: [{to: [{operation: {ports: [http]}}]}]}", false, []string{`port "http" is not a number`}},
		{"wrong kind", "apiVersion: fedmesh.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec: {}", false, []string{"want fedmesh.io/v1alpha1 and AuthorizationPolicy"}},
		{"not an object", "- a\n- b\n", false, []string{"not an object"}},
		{"unknown action", head + "spec: {action: REJECT}", true, []string{`spec.action "REJECT": must be ALLOW, DENY or AUDIT`}},
		{"lower-case action", head + "spec: {action: deny}", true, []string{`spec.action "deny"`}},
		{"bad glob", head + "spec: {rules: [{to: [{operation: {paths: [\"/a*b\"]}}]}]}", true, []string{`spec.rules[0].to[0].operation.paths[0] "/a*b": "*" may only stand alone or at the start or end`}},
		{"port out of range", head + "spec: {rules: [{to: [{operation: {ports: [0, 70000]}}]}]}", true, []string{
			`spec.rules[0].to[0].operation.ports[0] "0": out of range 1-65535`, `spec.rules[0].to[0].operation.ports[1] "70000": out of range 1-65535`}},
		{"principal not a SPIFFE ID", head + "spec: {rules: [{from: [{source: {principals: [cluster.local/ns/a/sa/b]}}]}]}", true, []string{
			`spec.rules[0].from[0].source.principals[0] "cluster.local/ns/a/sa/b": must be a SPIFFE ID spiffe://TRUST-DOMAIN/PATH`}},
		{"principal prefix not SPIFFE", head + "spec: {rules: [{from: [{source: {notPrincipals: [\"cluster.local/*\"]}}]}]}", true, []string{
			`notPrincipals[0] "cluster.local/*": must start with spiffe://`}},
		{"principal without path", head + "spec: {rules: [{from: [{source: {principals: [\"spiffe://td\"]}}]}]}", true, []string{`principals[0] "spiffe://td"`}},
		{"namespace glob chars", head + "spec: {rules: [{from: [{source: {namespaces: [\"Demo*\"]}}]}]}", true, []string{`namespaces[0] "Demo*": may hold only lower-case letters`}},
		{"cluster not a label", head + "spec: {rules: [{from: [{source: {clusters: [\"-east\"]}}]}]}", true, []string{`clusters[0] "-east"`}},
		{"method glob", head + "spec: {rules: [{to: [{operation: {methods: [\"G*\"]}}]}]}", true, []string{`methods[0] "G*": methods are exact`}},
		{"path without slash", head + "spec: {rules: [{to: [{operation: {paths: [api]}}]}]}", true, []string{`paths[0] "api": must start with "/"`}},
		{"path with query", head + "spec: {rules: [{to: [{operation: {paths: [\"/a?b=1\"]}}]}]}", true, []string{`paths[0] "/a?b=1": paths match without the query`}},
		{"grpc service", head + "spec: {rules: [{to: [{operation: {grpc: {service: \"pkg/Echo\"}}}]}]}", true, []string{`grpc.service "pkg/Echo"`}},
		{"when key", head + "spec: {rules: [{when: [{key: source.ip, values: [1.2.3.4]}]}]}", true, []string{`spec.rules[0].when[0].key "source.ip": must be request.headers[NAME]`}},
		{"when without values", head + "spec: {rules: [{when: [{key: \"request.headers[x]\"}]}]}", true, []string{`spec.rules[0].when[0]: values or notValues must be set`}},
		{"target kind", head + "spec: {targetRefs: [{kind: Deployment, name: echo}]}", true, []string{`spec.targetRefs[0].kind "Deployment": must be Service`}},
		{"target group", head + "spec: {targetRefs: [{group: apps, kind: Service, name: echo}]}", true, []string{`spec.targetRefs[0].group "apps"`}},
		{"bad name", "apiVersion: fedmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: Bad_Name, namespace: demo}\nspec: {}", true, []string{`metadata.name "Bad_Name"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			var ve *catalog.ValidationError
			if isInvalid := errors.As(err, &ve); isInvalid != tt.invalid {
				t.Errorf("validation error = %v, want %v: %v", isInvalid, tt.invalid, err)
			}
			if !tt.invalid && !errors.Is(err, ErrParse) {
				t.Errorf("error does not wrap ErrParse: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestRuleOnTCP(t *testing.T) {
	r := Rule{
		From: []RuleFrom{{Source: Source{Principals: []string{client}}}},
		To:   []RuleTo{{Operation: Operation{Ports: []Port{5432}, Methods: []string{"GET"}}}, {Operation: Operation{GRPC: &GRPCOperation{Service: "a.B"}}}},
		When: []Condition{{Key: "request.headers[x]", Values: []string{"y"}}},
	}
	if got := HTTPOnly(&r); !cmp.Equal(got, []string{"methods", "grpc", "when"}) {
		t.Errorf("HTTPOnly = %v", got)
	}
	if _, ok := RuleOnTCP(r, ActionAllow); ok {
		t.Error("an ALLOW rule with HTTP conditions is kept on TCP")
	}
	if _, ok := RuleOnTCP(r, ActionAudit); ok {
		t.Error("an AUDIT rule with HTTP conditions is kept on TCP")
	}
	got, ok := RuleOnTCP(r, ActionDeny)
	want := Rule{From: r.From, To: []RuleTo{{Operation: Operation{Ports: []Port{5432}}}, {}}}
	if !ok || !cmp.Equal(got, want) {
		t.Errorf("DENY on TCP = %+v, %v; want %+v", got, ok, want)
	}
	plain := fromPrincipals(client)
	if got, ok := RuleOnTCP(plain, ActionAllow); !ok || !cmp.Equal(got, plain) {
		t.Errorf("a rule without HTTP conditions changed on TCP: %+v", got)
	}
}

func TestRuleOnProxyless(t *testing.T) {
	r := Rule{
		From: []RuleFrom{
			{Source: Source{Principals: []string{client}, Clusters: []string{"west-1"}}},
			{Source: Source{NotClusters: []string{"east-1"}}},
		},
		To: []RuleTo{{Operation: Operation{Paths: []string{"/a.B/*"}}}},
	}
	if _, ok := RuleOnProxyless(r, ActionAllow); ok {
		t.Error("an ALLOW rule on the caller's cluster is kept for a proxyless server")
	}
	if _, ok := RuleOnProxyless(r, ActionAudit); ok {
		t.Error("an AUDIT rule on the caller's cluster is kept for a proxyless server")
	}
	got, ok := RuleOnProxyless(r, ActionDeny)
	want := Rule{From: []RuleFrom{{Source: Source{Principals: []string{client}}}, {}}, To: r.To}
	if !ok || !cmp.Equal(got, want) {
		t.Errorf("DENY for a proxyless server = %+v, %v; want %+v", got, ok, want)
	}
	if r.From[0].Source.Clusters == nil {
		t.Error("RuleOnProxyless changed its input")
	}
	plain := fromPrincipals(client)
	if got, ok := RuleOnProxyless(plain, ActionAllow); !ok || !cmp.Equal(got, plain) {
		t.Errorf("a rule without cluster conditions changed: %+v", got)
	}
}
