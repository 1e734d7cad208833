package xdsresource

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// validateDeep fails t with every validation error of m and of the
// messages packed inside it.
func validateDeep(t *testing.T, m proto.Message) {
	t.Helper()
	if err := ValidateDeep(m); err != nil {
		t.Error(err)
	}
}

var testRBAC = []RBAC{
	{Action: RBACLog, Policies: []RBACPolicy{{Name: "ns[demo]-policy[audit]-rule[0]", Permissions: []RBACPermission{{Any: true}}, Principals: []RBACPrincipal{{Any: true}}}}},
	{Action: RBACDeny, Policies: []RBACPolicy{{
		Name: "ns[demo]-policy[deny]-rule[0]",
		Permissions: []RBACPermission{
			{And: []RBACPermission{
				{Or: []RBACPermission{{Header: &HeaderMatch{Name: ":method", Match: StringMatch{Kind: MatchExact, Value: "GET"}}}, {Path: &StringMatch{Kind: MatchPrefix, Value: "/admin"}}}},
				{Not: &RBACPermission{Path: &StringMatch{Kind: MatchSuffix, Value: ".css"}}},
				{ServerName: &StringMatch{Kind: MatchExact, Value: "8080.echo.demo.svc.clusterset.local"}},
			}},
		},
		Principals: []RBACPrincipal{
			{And: []RBACPrincipal{
				{Or: []RBACPrincipal{{Name: &StringMatch{Kind: MatchRegex, Value: ".+"}}, {Name: &StringMatch{Kind: MatchExact, Value: "spiffe://td/ns/a/sa/b"}}}},
				{Not: &RBACPrincipal{FilterState: &FilterStateMatch{Key: "io.fedmesh.peer_cluster", Match: StringMatch{Kind: MatchPrefix, Value: "west-"}}}},
				{Header: &HeaderMatch{Name: "x-env", Match: StringMatch{Kind: MatchExact, Value: "prod"}}},
			}},
		},
	}}},
	{Action: RBACAllow},
}

func TestRBACValidate(t *testing.T) {
	sp := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	for _, r := range testRBAC {
		validateDeep(t, HTTPRBAC(r))
		validateDeep(t, NetworkRBAC(sp.InboundCluster(), r))
	}
	validateDeep(t, InboundListener("127.0.0.1", 15006, []InboundChain{
		{SNI: sp.SNI(), ALPN: ALPN(true), Cluster: sp.InboundCluster(), HTTP: true, RBAC: testRBAC},
		{SNI: "5432.store.demo.svc.clusterset.local", Cluster: "inbound|5432||store.demo.svc.clusterset.local", RBAC: testRBAC},
		{SNI: "1.old.demo.svc.clusterset.local", Cluster: "inbound|1||old.demo.svc.clusterset.local"},
	}))
}

// TestRBACRules pins the rendering of each matcher to the contract's
// vocabulary.
func TestRBACRules(t *testing.T) {
	got := RBACRules(testRBAC[1])
	if got.Action != rbacv3.RBAC_DENY || len(got.Policies) != 1 {
		t.Fatalf("rules: %v", got)
	}
	j, err := protojson.Marshal(got.Policies["ns[demo]-policy[deny]-rule[0]"])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"permissions":[{"andRules":{"rules":[{"orRules":{"rules":[{"header":{"name":":method","stringMatch":{"exact":"GET"}}},{"urlPath":{"path":{"prefix":"/admin"}}}]}},{"notRule":{"urlPath":{"path":{"suffix":".css"}}}},{"requestedServerName":{"exact":"8080.echo.demo.svc.clusterset.local"}}]}}],` +
		`"principals":[{"andIds":{"ids":[{"orIds":{"ids":[{"authenticated":{"principalName":{"safeRegex":{"regex":".+"}}}},{"authenticated":{"principalName":{"exact":"spiffe://td/ns/a/sa/b"}}}]}},{"notId":{"filterState":{"key":"io.fedmesh.peer_cluster","stringMatch":{"prefix":"west-"}}}},{"header":{"name":"x-env","stringMatch":{"exact":"prod"}}}]}}]}`
	var a, b any
	if err := jsonEqual(string(j), want, &a, &b); err != nil {
		t.Errorf("%v\n got %s\nwant %s", err, j, want)
	}
	if empty := RBACRules(RBAC{Action: RBACAllow}); empty.Action != rbacv3.RBAC_ALLOW || len(empty.Policies) != 0 {
		t.Errorf("an empty ALLOW renders as %v", empty)
	}
}

func jsonEqual(x, y string, a, b *any) error {
	if err := json.Unmarshal([]byte(x), a); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(y), b); err != nil {
		return err
	}
	if !reflect.DeepEqual(*a, *b) {
		return errors.New("JSON differs")
	}
	return nil
}
