package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// authzAdmin serves /debug/authz from a real xDS server holding a view
// with echo (HTTP 8080) and store (TCP 5432) and the given policies.
func authzAdmin(t *testing.T, docs ...string) string {
	t.Helper()
	srv, err := xds.NewServer(xds.Config{
		Cluster:       "west-1",
		Settings:      xds.DefaultSettings("fedmesh.test"),
		Authenticator: xds.TokenAuthenticator(func(string) (string, string, string, error) { return "", "", "", nil }),
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	loc := topology.Locality{Region: "us-west", Zone: "a", Cluster: "west-1"}
	ep := func(addr, port string) catalog.ViewEndpoint {
		return catalog.ViewEndpoint{Endpoint: catalog.Endpoint{Address: addr, Port: 15006, PortName: port, Locality: loc, Ready: true}, Healthy: true}
	}
	view := &catalog.View{Revision: 1, Local: "west-1", Services: []catalog.ImportedService{
		{Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP, Ports: []catalog.Port{{Name: "http", Port: 8080, AppProtocol: catalog.AppHTTP}},
			Clusters: []string{"west-1"}, Endpoints: []catalog.ViewEndpoint{ep("127.0.3.1", "http")}},
		{Namespace: "demo", Name: "store", Type: catalog.ClusterSetIP, Ports: []catalog.Port{{Name: "tcp", Port: 5432}},
			Clusters: []string{"west-1"}, Endpoints: []catalog.ViewEndpoint{ep("127.0.3.9", "tcp")}},
	}}
	if err := srv.UpdateView(view); err != nil {
		t.Fatal(err)
	}
	var ps []policy.AuthorizationPolicy
	for _, d := range docs {
		p, err := policy.Parse([]byte(d))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, *p)
	}
	if err := srv.UpdatePolicies(ps); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	return web.URL
}

const (
	authzDenyAdmin = `apiVersion: fedmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: demo}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]`
	authzClients = `apiVersion: fedmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: clients, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  rules:
  - from: [{source: {principals: ["spiffe://fedmesh.test/ns/demo/sa/client"], clusters: [east-1]}}]
    when: [{key: "request.headers[x-env]", values: [prod]}]`
	authzAudit = `apiVersion: fedmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: audit-all, namespace: fedmesh-system}
spec: {action: AUDIT, rules: [{}]}`
)

func TestAuthzCheckCmd(t *testing.T) {
	admin := authzAdmin(t, authzDenyAdmin, authzClients, authzAudit)
	client := "spiffe://fedmesh.test/ns/demo/sa/client"
	base := []string{"authz", "check", "--admin", admin, "--from", client}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"allowed", []string{"--to", "demo/echo", "--from-cluster", "east-1", "--header", "x-env=prod", "--path", "/api"}, 0, []string{
			"allow\n", "Reason:", "allowed by ALLOW policy", "Policy:", "demo/clients rule 0 (ALLOW)",
			"spiffe://fedmesh.test/ns/demo/sa/client (cluster east-1) -> demo/echo:8080 GET /api",
			"Policies of demo/echo in west-1:", "demo/clients, demo/deny-admin, fedmesh-system/audit-all",
			"Audited by:", "fedmesh-system/audit-all rule 0"}},
		{"denied by DENY", []string{"--to", "echo.demo", "--from-cluster", "east-1", "--header", "x-env=prod", "--path", "/admin/x", "--method", "POST"}, 1, []string{
			"deny\n", "denied by DENY policy", "demo/deny-admin rule 0 (DENY)", "POST /admin/x"}},
		{"denied: no ALLOW matched", []string{"--to", "demo/echo", "--from-cluster", "west-1", "--header", "x-env=prod"}, 1, []string{
			"deny\n", "no ALLOW policy matched"}},
		{"TCP: the DENY's path is not seen", []string{"--to", "demo/store", "--port", "5432"}, 1, []string{
			"deny\n", "demo/deny-admin rule 0", "-> demo/store:5432 tcp", "ignored on TCP port 5432"}},
		{"missing --to", nil, 2, []string{"--from and --to are required"}},
		{"bad header", []string{"--to", "demo/echo", "--header", "x"}, 2, []string{`--header "x": want NAME=VALUE`}},
		{"bad output", []string{"--to", "demo/echo", "-o", "xml"}, 2, []string{"unknown output format"}},
		{"unknown service", []string{"--to", "demo/nope"}, 3, []string{"404", "not in cluster west-1's view"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCmd(context.Background(), t, append(base, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.contains {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
		})
	}

	// -o json and -o yaml carry the whole answer; the exit code is the same.
	args := append(base, "--to", "demo/echo", "--path", "/admin")
	out, _, code := runCmd(context.Background(), t, append(args, "-o", "json")...)
	var res xds.AuthzCheck
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if code != 1 || res.Decision.Allowed || res.Decision.Policy != "demo/deny-admin" || res.Request.Path != "/admin" || res.Cluster != "west-1" {
		t.Errorf("-o json: exit %d, %+v", code, res)
	}
	out, _, _ = runCmd(context.Background(), t, append(args, "-o", "yaml")...)
	var res2 xds.AuthzCheck
	if err := yaml.Unmarshal([]byte(out), &res2); err != nil || res2.Decision.Policy != "demo/deny-admin" {
		t.Errorf("-o yaml: %v\n%s", err, out)
	}
}

// TestAuthzCheckUnreachable: no control plane is a failed check (3), not
// a deny.
func TestAuthzCheckUnreachable(t *testing.T) {
	web := httptest.NewServer(nil)
	url := web.URL
	web.Close()
	_, errOut, code := runCmd(context.Background(), t, "authz", "check", "--admin", url, "--from", "spiffe://td/ns/a/sa/b", "--to", "demo/echo")
	if code != 3 || !strings.Contains(errOut, "cannot reach the control plane") {
		t.Errorf("exit %d, stderr %q; want 3 and the reason", code, errOut)
	}
}
