package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// routesCanary is a producer route of demo/echo: x-variant b goes to
// echo-v2, the rest 90/10 to echo and echo-v2.
const routesCanary = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: demo}
spec:
  parentRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo}]
  rules:
  - matches: [{headers: [{name: x-variant, value: b}]}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs:
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 8080, weight: 90}
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080, weight: 10}
`

// routesAdmin serves /debug/routes from a real xDS server whose view
// holds echo, published by east-1 with routesCanary, and echo-v2.
func routesAdmin(t *testing.T) string {
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
	obj, err := policy.ParseObject([]byte(routesCanary))
	if err != nil {
		t.Fatal(err)
	}
	var tr policy.Traffic
	if err := tr.Add(obj); err != nil {
		t.Fatal(err)
	}
	pols, err := policy.EncodePolicies(tr)
	if err != nil {
		t.Fatal(err)
	}
	loc := topology.Locality{Region: "us-west", Zone: "a", Cluster: "west-1"}
	ep := func(addr string) catalog.ViewEndpoint {
		return catalog.ViewEndpoint{Endpoint: catalog.Endpoint{Address: addr, Port: 15006, PortName: "http", Locality: loc, Ready: true}, Healthy: true}
	}
	ports := []catalog.Port{{Name: "http", Port: 8080, AppProtocol: catalog.AppHTTP}}
	view := &catalog.View{Revision: 1, Local: "west-1", Services: []catalog.ImportedService{
		{Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP, Ports: ports, Clusters: []string{"east-1", "west-1"},
			Endpoints: []catalog.ViewEndpoint{ep("127.0.3.1")}, Policies: pols, PoliciesCluster: "east-1"},
		{Namespace: "demo", Name: "echo-v2", Type: catalog.ClusterSetIP, Ports: ports, Clusters: []string{"west-1"},
			Endpoints: []catalog.ViewEndpoint{ep("127.0.3.2")}},
	}}
	if err := srv.UpdateView(view); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	return web.URL
}

func TestRoutesExplainCmd(t *testing.T) {
	admin := routesAdmin(t)
	base := []string{"routes", "explain", "--admin", admin, "--namespace", "demo"}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"header match", []string{"--host", "echo.demo:8080", "--header", "x-variant=b"}, 0, []string{
			"Routes from:", "published by east-1", "Route:", "demo/canary/rule-0", "Backend:", "demo/echo-v2:8080 weight 1"}},
		{"weighted split", []string{"--host", "echo.demo.svc.clusterset.local", "--port", "8080", "--path", "/api/items"}, 0, []string{
			"demo/canary/rule-1", "demo/echo:8080 weight 90", "demo/echo-v2:8080 weight 10"}},
		{"no rule matches", []string{"--host", "echo.demo:8080", "--path", "/other"}, 1, []string{"Answered by the sidecar:", "404"}},
		{"no route: the default", []string{"--host", "echo-v2.demo:8080"}, 0, []string{"demo/echo-v2:8080"}},
		{"missing --host", nil, 2, []string{"--host is required"}},
		{"bad header", []string{"--host", "echo.demo", "--header", "x"}, 2, []string{`--header "x": want NAME=VALUE`}},
		{"bad output", []string{"--host", "echo.demo", "-o", "xml"}, 2, []string{"unknown output format"}},
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
	out, _, code := runCmd(context.Background(), t, append(base, "--host", "echo.demo:8080", "--header", "x-variant=b", "-o", "json")...)
	var res xds.RouteCheck
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if code != 0 || res.Cluster != "west-1" || res.Decision.Route != "demo/canary/rule-0" || len(res.Decision.Backends) != 1 {
		t.Errorf("-o json: exit %d, %+v", code, res)
	}
}
