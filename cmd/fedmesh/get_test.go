package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/controlplane"
	"github.com/fedmesh/fedmesh/controlplane/source/filesource"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/topology"
)

const getTestFiles = `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: echo, namespace: demo, creationTimestamp: "2026-01-01T00:00:00Z"}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-1, namespace: demo, labels: {app: echo}}
spec: {address: 127.0.1.1, ports: {http: 15006}, serviceAccount: echo}
`

var getTestTraffic = []string{`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - backendRefs: [{name: echo, port: 8080, weight: 90}, {name: echo-v2, port: 8080, weight: 10}]
`, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-v2, namespace: client}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, namespace: demo}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "yes"}]}]
    backendRefs: [{name: echo-v2, namespace: demo, port: 8080}]
  - backendRefs: [{name: echo, namespace: demo, port: 8080}]
`, `apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
metadata: {name: echo-retries, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
`, `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: echo-limits, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  local:
  - {name: per-caller, key: {type: Principal}, requests: 50, interval: 1s}
`, `apiVersion: fedmesh.io/v1alpha1
kind: TelemetryPolicy
metadata: {name: demo-logs, namespace: demo}
spec:
  accessLog: {enabled: true, filter: errors}
`}

// getTestControlPlane runs a real control plane (embedded etcd, plain
// HTTP admin) whose file source holds echo and the test's routes and
// policies, and returns its admin URL once it is ready.
func getTestControlPlane(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "echo.yaml"), []byte(getTestFiles), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "traffic.yaml"), []byte(strings.Join(getTestTraffic, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := filesource.New(filesource.Config{Dir: dir, Cluster: "east-1", Region: "us-east", Zone: "a", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := controlplane.New(controlplane.Config{
		Cluster: "east-1", Locality: topology.Locality{Region: "us-east", Zone: "a"},
		BindAddress: "127.0.0.1", AdminAddress: "127.0.0.1:0", DataDir: t.TempDir(), Source: src,
		Store: store.Config{ListenClientURLs: []string{"http://127.0.0.1:0"}}, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	poll.Until(t, 30*time.Second, "control plane ready", func() error {
		url := srv.AdminURL()
		if url == "" {
			return errors.New("admin not listening")
		}
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
	return srv.AdminURL()
}

func TestGetRoutesAndPolicies(t *testing.T) {
	admin := getTestControlPlane(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
		lacks    []string
		// bare: no --admin added (get names no resource)
		bare bool
	}{
		{name: "routes", args: []string{"get", "routes"}, contains: []string{
			"NAMESPACE  NAME    KIND       PARENTS            ORIGIN            NOTE",
			"client     to-v2   HTTPRoute  Service demo/echo  local             -",
			"demo       canary  HTTPRoute  Service demo/echo  local, published  -",
		}, lacks: []string{"echo-retries", "RULES"}},
		{name: "routes wide", args: []string{"get", "routes", "-o", "wide"}, contains: []string{
			"ORIGIN            NOTE  RULES  DIGEST",
			"to-v2   HTTPRoute  Service demo/echo  local             -     2      -",
		}},
		{name: "routes of one namespace", args: []string{"get", "route", "-n", "demo"}, contains: []string{"canary"}, lacks: []string{"to-v2"}},
		{name: "policies", args: []string{"get", "policies"}, contains: []string{
			"NAMESPACE  NAME          KIND              TARGETS            ORIGIN",
			"demo       echo-retries  ResiliencePolicy  Service demo/echo  local, published",
			"demo       echo-limits   RateLimitPolicy   Service demo/echo  local",
			"demo       demo-logs     TelemetryPolicy   -                  local",
		}, lacks: []string{"canary"}},
		{name: "none in a namespace", args: []string{"get", "policies", "-n", "client"}, contains: []string{"No policies in force in cluster east-1."}},
		{name: "bad output", args: []string{"get", "routes", "-o", "xml"}, code: 2, contains: []string{`unknown output format "xml": want wide, json or yaml`}},
		{name: "nothing named", args: []string{"get"}, bare: true, code: 2, contains: []string{"name what to get: routes, policies or quotas"}},
		{name: "unknown thing", args: []string{"get", "gateways"}, bare: true, code: 2, contains: []string{`unknown command "gateways" for "fedmesh get"`}},
		{name: "unreachable", args: []string{"get", "routes", "--admin", "http://127.0.0.1:1"}, code: 1, contains: []string{"cannot reach the control plane at http://127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !tt.bare && !slices.Contains(args, "--admin") {
				args = append(args, "--admin", admin)
			}
			out, errOut, code := runCmd(context.Background(), t, args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if tt.code != 0 && out != "" {
				t.Errorf("a failing command wrote to stdout: %q", out)
			}
			for _, w := range tt.contains {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
			for _, w := range tt.lacks {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}

	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			out, errOut, code := runCmd(context.Background(), t, "get", "routes", "-o", format, "--admin", admin)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			raw := []byte(out)
			if format == "yaml" {
				var err error
				if raw, err = yaml.YAMLToJSON(raw); err != nil {
					t.Fatal(err)
				}
			}
			var page controlplane.TrafficPage
			if err := json.Unmarshal(raw, &page); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if page.Cluster != "east-1" || len(page.Objects) != 2 {
				t.Fatalf("page of %s with %d objects, want east-1's 2 routes:\n%s", page.Cluster, len(page.Objects), out)
			}
			// The object itself reads back as the route it is.
			obj, err := policy.ParseObject(page.Objects[1].Object)
			if err != nil {
				t.Fatalf("object of %s: %v", page.Objects[1].Name, err)
			}
			if r, ok := obj.(*gatewayv1.HTTPRoute); !ok || r.Name != "canary" || len(r.Spec.Rules) != 1 {
				t.Errorf("object %#v, want the HTTPRoute canary", obj)
			}
		})
		t.Run("policies "+format, func(t *testing.T) {
			out, errOut, code := runCmd(context.Background(), t, "get", "policies", "-o", format, "--admin", admin)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			raw := []byte(out)
			if format == "yaml" {
				var err error
				if raw, err = yaml.YAMLToJSON(raw); err != nil {
					t.Fatal(err)
				}
			}
			var page controlplane.TrafficPage
			if err := json.Unmarshal(raw, &page); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var got []string
			for _, o := range page.Objects {
				got = append(got, o.Kind+" "+o.Namespace+"/"+o.Name)
				// Each object reads back as the policy it is.
				if _, err := policy.ParseObject(o.Object); err != nil {
					t.Errorf("object of %s %s: %v", o.Kind, o.Name, err)
				}
			}
			slices.Sort(got)
			want := []string{"RateLimitPolicy demo/echo-limits", "ResiliencePolicy demo/echo-retries", "TelemetryPolicy demo/demo-logs"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("policies listed (-want +got):\n%s", diff)
			}
		})
	}
}
