package authz_test

import (
	"net/http"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/sidecar/authz"
)

// FuzzAuthorize feeds arbitrary bytes as an HTTP and a network RBAC
// configuration (what a control plane could send), and arbitrary
// requests: compiling either fails with an error or gives an engine that
// decides without panicking, and the decision is self-consistent.
func FuzzAuthorize(f *testing.F) {
	seeds := []*rbacv3.RBAC{
		rules(rbacv3.RBAC_ALLOW, nil),
		rules(rbacv3.RBAC_DENY, Policies{"ns[a]-policy[b]-rule[0]": Policy(perms(Path(Prefix("/admin")), Method("POST")), ids(PrincipalName(Regex(`spiffe://fed\.test/ns/[^/]+/sa/x`))))}),
		rules(rbacv3.RBAC_LOG, Policies{"p": Policy(perms(AndRules(NotRule(ServerName("s")), HeaderPermission("x-a", Suffix("z")))), ids(OrIDs(PeerCluster(Exact("east-1")), NotID(PrincipalHeader("x-b", Prefix("q"))))))}),
	}
	for _, s := range seeds {
		b, err := proto.Marshal(&httprbacv3.RBAC{Rules: s})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, frontend, "east-1", "GET", "/admin?x", "x-a", "yz")
	}
	f.Fuzz(func(t *testing.T, cfg []byte, principal, cluster, method, path, hname, hval string) {
		r := &authz.Request{HTTP: true, Principal: principal, PeerCluster: cluster, SNI: "s", Method: method, Path: path,
			Headers: http.Header{http.CanonicalHeaderKey(hname): {hval, hval}}}
		var hc httprbacv3.RBAC
		if proto.Unmarshal(cfg, &hc) == nil {
			if fl, err := authz.NewHTTPFilter(&hc); err == nil {
				check(t, authz.NewEngine(fl, fl), r, fl)
				tcp := *r
				tcp.HTTP = false
				check(t, authz.NewEngine(fl), &tcp, fl)
			}
		}
		var nc netrbacv3.RBAC
		if proto.Unmarshal(cfg, &nc) == nil {
			if fl, err := authz.NewNetworkFilter(&nc); err == nil {
				check(t, authz.NewEngine(fl), r, fl)
			}
		}
	})
}

func check(t *testing.T, e *authz.Engine, r *authz.Request, f *authz.Filter) {
	d := e.Authorize(r)
	switch {
	case d.Allowed && (d.Reason != "" || d.Policy != nil):
		t.Fatalf("allowed with reason %q policy %v", d.Reason, d.Policy)
	case !d.Allowed && d.Reason == authz.ReasonDenyPolicy && d.Policy == nil:
		t.Fatal("denied by a DENY policy without naming it")
	case !d.Allowed && d.Reason == authz.ReasonNoAllow && d.Policy != nil:
		t.Fatal("denied for want of an ALLOW match, naming a policy")
	case f != nil && f.Action() == authz.Allow && len(f.Policies()) == 0 && d.Allowed:
		t.Fatal("an ALLOW filter without policies allowed a request")
	case f != nil && f.Action() == authz.Log && !d.Allowed:
		t.Fatal("a LOG filter denied")
	}
	if _, err := e.MarshalJSON(); err != nil {
		t.Fatal(err)
	}
}
