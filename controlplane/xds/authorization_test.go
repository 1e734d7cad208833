package xds

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/policy"
)

// loadPolicies reads testdata/in/NAME.yaml, documents separated by "---"
// lines, each an AuthorizationPolicy.
func loadPolicies(t testing.TB, name string) []policy.AuthorizationPolicy {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "in", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []policy.AuthorizationPolicy
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		p, err := policy.Parse(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, *p)
	}
	return out
}

// validateDeep fails t with every validation error of m and of the
// messages packed inside it.
func validateDeep(t testing.TB, m proto.Message) {
	t.Helper()
	if err := xdsresource.ValidateDeep(m); err != nil {
		t.Error(err)
	}
}

// withAuthzWorkload makes west-1's echo replica 127.0.3.1 and the store
// endpoint 127.0.3.9 the node's own workload "echo".
func withAuthzWorkload(v *catalog.View) {
	v.Services[0].Endpoints[3].Workload = "echo"
	v.Services[1].Endpoints[0].Workload = "echo"
}

func authzNode() Node {
	return Node{ID: "echo~west-1", Role: naming.RoleSidecar, Cluster: "west-1", Namespace: "demo",
		ServiceAccount: "echo", Workload: "echo", Locality: locWest1, AppPorts: map[string]int32{"http": 9080, "tcp": 5432}}
}

// inboundFilters returns the inbound listeners' filter names by chain SNI,
// and for HTTP chains the HTTP filters after the connection manager, each
// RBAC filter as "rbac:ACTION:POLICY,POLICY".
func inboundFilters(t *testing.T, b *Built) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, r := range b.Snapshot.GetResources(resourcev3.ListenerType) {
		if !strings.HasPrefix(name, "inbound|") {
			continue
		}
		for _, fc := range r.(*listenerv3.Listener).GetFilterChains() {
			sni := fc.GetFilterChainMatch().GetServerNames()[0]
			for _, f := range fc.GetFilters() {
				out[sni] = append(out[sni], f.GetName())
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
					continue
				}
				for _, hf := range hcm.GetHttpFilters() {
					var rb rbachttpv3.RBAC
					if hf.GetTypedConfig().UnmarshalTo(&rb) != nil {
						out[sni] = append(out[sni], hf.GetName())
						continue
					}
					out[sni] = append(out[sni], "rbac:"+rbacSummary(rb.GetRules()))
				}
			}
		}
	}
	return out
}

func rbacSummary(r *rbacv3.RBAC) string {
	var names []string
	for n := range r.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	return r.GetAction().String() + ":" + strings.Join(names, ",")
}

// TestInboundAuthorization checks the chain shapes of the contract: HTTP
// ports are a connection manager whose HTTP filters are LOG, DENY, ALLOW
// RBAC then the router; TCP ports are network RBAC then tcp_proxy; every
// resource passes validation, nested configs included.
func TestInboundAuthorization(t *testing.T) {
	v := testView("west-1", withAuthzWorkload)
	g, err := NewGeneratorWithPolicies(DefaultSettings(testTD), v, loadPolicies(t, "sidecar-west-1-authz"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Build(authzNode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{resourcev3.ListenerType, resourcev3.ClusterType} {
		for _, r := range b.Snapshot.GetResources(typ) {
			validateDeep(t, r)
		}
	}
	want := map[string][]string{
		"8080.echo.demo.svc.clusterset.local": {
			"envoy.filters.network.http_connection_manager",
			"rbac:LOG:ns[demo]-policy[audit-writes]-rule[0]",
			"rbac:DENY:ns[demo]-policy[deny-admin]-rule[0]",
			"rbac:ALLOW:ns[demo]-policy[echo-readers]-rule[0]",
			"envoy.filters.http.router",
		},
		"5432.store.demo.svc.clusterset.local": {
			"envoy.filters.network.rbac",
			"envoy.filters.network.rbac",
			"envoy.filters.network.tcp_proxy",
		},
	}
	if diff := cmp.Diff(want, inboundFilters(t, b)); diff != "" {
		t.Errorf("inbound chains (-want +got):\n%s", diff)
	}
	// Without policies: HTTP is a bare connection manager, TCP a bare
	// tcp_proxy.
	g0, err := NewGenerator(DefaultSettings(testTD), v)
	if err != nil {
		t.Fatal(err)
	}
	b0, err := g0.Build(authzNode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want0 := map[string][]string{
		"8080.echo.demo.svc.clusterset.local":  {"envoy.filters.network.http_connection_manager", "envoy.filters.http.router"},
		"5432.store.demo.svc.clusterset.local": {"envoy.filters.network.tcp_proxy"},
	}
	if diff := cmp.Diff(want0, inboundFilters(t, b0)); diff != "" {
		t.Errorf("inbound chains without policies (-want +got):\n%s", diff)
	}
	// The outbound side does not depend on policies: same versions.
	if b.Snapshot.GetVersion(resourcev3.EndpointType) != b0.Snapshot.GetVersion(resourcev3.EndpointType) ||
		b.Snapshot.GetVersion(resourcev3.RouteType) != b0.Snapshot.GetVersion(resourcev3.RouteType) {
		t.Error("policies changed endpoints or routes")
	}
}

// TestUpdatePolicies: with WaitForPolicies, sidecars get nothing until
// the first policy set; a set with an invalid policy is refused and
// counted, and the last good set stays.
func TestUpdatePolicies(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	srv, err := NewServer(Config{
		Cluster: "west-1", Settings: DefaultSettings(testTD), Authenticator: TokenAuthenticator(verifyToken),
		Debounce: time.Second, Now: func() time.Time { return now }, WaitForPolicies: true,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.UpdateView(testView("west-1", withAuthzWorkload)); err != nil {
		t.Fatal(err)
	}
	// A connected sidecar, as authenticate leaves it. flush runs here on
	// the test's goroutine (no Run), with the clock moved past debounces.
	n := authzNode()
	ns := &nodeState{node: n, id: Identity{Namespace: n.Namespace, ServiceAccount: n.ServiceAccount}, streams: 1}
	srv.mu.Lock()
	srv.nodes[n.Key()], srv.dirty[n.Key()] = ns, true
	srv.mu.Unlock()
	flush := func() {
		now = now.Add(2 * time.Second)
		srv.flush()
	}
	flush()
	if ns.built != nil {
		t.Fatal("a sidecar got a snapshot before any policy set")
	}

	good := loadPolicies(t, "sidecar-west-1-authz")
	if err := srv.UpdatePolicies(good); err != nil {
		t.Fatal(err)
	}
	flush()
	if ns.built == nil {
		t.Fatal("no snapshot after the policies arrived")
	}
	if got := inboundFilters(t, ns.built)["5432.store.demo.svc.clusterset.local"]; len(got) != 3 {
		t.Errorf("store chain %v: want two RBAC filters and tcp_proxy", got)
	}

	bad := append(good[:1:1], good[1])
	bad[1].Spec.Action = "REJECT"
	err = srv.UpdatePolicies(bad)
	if err == nil || !strings.Contains(err.Error(), `spec.action "REJECT"`) {
		t.Errorf("UpdatePolicies(invalid) = %v, want the field named", err)
	}
	if got := counterValue(t, srv.metrics.invalid.WithLabelValues("policy")); got != 1 {
		t.Errorf("refused policy sets counted %v, want 1", got)
	}
	if err := srv.UpdatePolicies(append(good[:1:1], good[0])); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("UpdatePolicies(duplicate) = %v, want refused", err)
	}
	if got := len(srv.Policies()); got != len(good) {
		t.Errorf("policies in force: %d, want the last good %d", got, len(good))
	}

	// Taking every policy away takes the RBAC filters away.
	if err := srv.UpdatePolicies(nil); err != nil {
		t.Fatal(err)
	}
	flush()
	if got := inboundFilters(t, ns.built)["5432.store.demo.svc.clusterset.local"]; !cmp.Equal(got, []string{"envoy.filters.network.tcp_proxy"}) {
		t.Errorf("store chain without policies: %v", got)
	}
}

// TestDebugAuthz decides requests through the admin page from the
// policies the server holds.
func TestDebugAuthz(t *testing.T) {
	h := startServer(t, nil)
	if err := h.srv.UpdateView(testView("east-1", func(v *catalog.View) { v.Revision = 2 })); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.UpdatePolicies(loadPolicies(t, "sidecar-west-1-authz")); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(h.srv.Handler())
	defer web.Close()
	check := func(q url.Values) (int, AuthzCheck, string) {
		t.Helper()
		resp, err := http.Get(web.URL + DebugAuthzPath + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var out AuthzCheck
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
		}
		return resp.StatusCode, out, string(body)
	}
	client := "spiffe://fedmesh.test/ns/demo/sa/client"
	type want struct {
		code    int
		allowed bool
		policy  string
		rule    int
		reason  string
	}
	tests := []struct {
		name string
		q    url.Values
		want want
	}{
		{"allowed by echo-readers", url.Values{"from": {client}, "fromCluster": {"east-1"}, "to": {"demo/echo"}, "path": {"/api/x"}, "header": {"X-Env=prod"}},
			want{200, true, "demo/echo-readers", 0, policy.ReasonAllowed}},
		{"NAME.NS and the default method", url.Values{"from": {client}, "fromCluster": {"east-2"}, "to": {"echo.demo"}, "path": {"/health"}, "header": {"x-env=prod"}},
			want{200, true, "demo/echo-readers", 0, policy.ReasonAllowed}},
		{"wrong cluster: default deny", url.Values{"from": {client}, "fromCluster": {"west-1"}, "to": {"demo/echo"}, "path": {"/api/x"}, "header": {"x-env=prod"}},
			want{200, false, "", -1, policy.ReasonNoAllow}},
		{"admin denied", url.Values{"from": {client}, "fromCluster": {"east-1"}, "to": {"demo/echo"}, "path": {"/admin/x"}, "method": {"POST"}},
			want{200, false, "demo/deny-admin", 0, policy.ReasonDenied}},
		{"store over TCP: the DENY without its path denies non-ops", url.Values{"from": {client}, "to": {"demo/store"}, "port": {"5432"}},
			want{200, false, "demo/deny-admin", 0, policy.ReasonDenied}},
		{"bad principal", url.Values{"from": {"client"}, "to": {"demo/echo"}}, want{code: 400}},
		{"bad port", url.Values{"from": {client}, "to": {"demo/echo"}, "port": {"9"}}, want{code: 400}},
		{"bad header", url.Values{"from": {client}, "to": {"demo/echo"}, "header": {"novalue"}}, want{code: 400}},
		{"unknown service", url.Values{"from": {client}, "to": {"demo/nope"}}, want{code: 404}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, body := check(tt.q)
			if code != tt.want.code {
				t.Fatalf("status %d, want %d: %s", code, tt.want.code, body)
			}
			if code != 200 {
				return
			}
			d := out.Decision
			rule := -1
			if d.Rule != nil {
				rule = *d.Rule
			}
			if d.Allowed != tt.want.allowed || d.Policy != tt.want.policy || rule != tt.want.rule || d.Reason != tt.want.reason {
				t.Errorf("decision %+v (rule %d), want %+v", d, rule, tt.want)
			}
			if out.Cluster != "east-1" || len(out.Policies) == 0 {
				t.Errorf("answer lacks the cluster or the applicable policies: %s", body)
			}
		})
	}
	// The TCP answer carries the translation notes of the port.
	_, out, body := check(url.Values{"from": {client}, "to": {"demo/store"}})
	if !out.Request.TCP || len(out.Notes) == 0 {
		t.Errorf("TCP check lacks tcp or notes: %s", body)
	}
}
