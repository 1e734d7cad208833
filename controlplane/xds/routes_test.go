package xds

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan/plantest"
	"github.com/fedmesh/fedmesh/policy"
)

// loadTraffic reads testdata/in/NAME.yaml, traffic objects separated by
// "---".
func loadTraffic(t testing.TB, name string) policy.Traffic {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "in", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tr policy.Traffic
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		obj, err := policy.ParseObject(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := tr.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// withEchoV2 adds echo-v2 (HTTP 8080), exported from west-1 only: the
// canary.
func withEchoV2(v *catalog.View) {
	v2 := catalog.ImportedService{
		Namespace: "demo", Name: "echo-v2", Type: catalog.ClusterSetIP,
		Ports:     []catalog.Port{{Name: "http", Port: 8080, AppProtocol: catalog.AppHTTP}},
		Clusters:  []string{"west-1"},
		Endpoints: []catalog.ViewEndpoint{plantest.Endpoint("127.0.3.5", plantest.West1, true, "")},
	}
	v.Services = append(v.Services[:1], append([]catalog.ImportedService{v2}, v.Services[1:]...)...)
}

// withProducerRoutes adds echo-v2 and makes testdata/in/NAME.yaml echo's
// producer policies, published by west-1.
func withProducerRoutes(t testing.TB, name string) func(*catalog.View) {
	tr := loadTraffic(t, name)
	pol, err := policy.EncodePolicies(tr)
	if err != nil {
		t.Fatal(err)
	}
	return func(v *catalog.View) {
		withEchoV2(v)
		v.Services[0].Policies, v.Services[0].PoliciesCluster = pol, "west-1"
	}
}

// UpdateTraffic applies a consumer route to that namespace's callers,
// refuses a set with a repeated object (counted, last good kept), and
// /debug/routes explains a request with the routes in force.
func TestUpdateTrafficAndDebugRoutes(t *testing.T) {
	h := startServer(t, nil)
	if err := h.srv.UpdateView(testView("east-1", withProducerRoutes(t, "routes-producer"))); err != nil {
		t.Fatal(err)
	}
	consumer := loadTraffic(t, "routes-consumer")
	if err := h.srv.UpdateTraffic(consumer); err != nil {
		t.Fatal(err)
	}
	twice := consumer
	twice.HTTPRoutes = append(slices.Clone(consumer.HTTPRoutes), consumer.HTTPRoutes...)
	if err := h.srv.UpdateTraffic(twice); err == nil {
		t.Fatal("a set with a repeated route was applied")
	}
	if got := counterValue(t, h.srv.metrics.invalid.WithLabelValues("traffic")); got != 1 {
		t.Errorf("invalid traffic counter = %v, want 1", got)
	}
	if got := h.srv.Traffic(); len(got.HTTPRoutes) != 1 {
		t.Errorf("traffic in force = %d routes, want the last good set's 1", len(got.HTTPRoutes))
	}
	web := httptest.NewServer(h.srv.Handler())
	defer web.Close()
	tests := []struct {
		query      string
		wantCode   int
		wantRoute  string
		wantStatus int
	}{
		{"namespace=shop&host=echo.demo&port=8080&path=/cart/1&method=POST", 200, "shop/echo-for-shop/rule-0", 0},
		{"namespace=shop&host=echo.demo:8080&path=/other", 200, "", 404},
		{"namespace=demo&host=echo.demo.svc.clusterset.local&port=8080&path=/x&header=x-group:b", 200, "demo/echo/rule-0", 0},
		{"namespace=demo&host=echo.demo&port=8080&path=/old", 200, "demo/echo/rule-3", 301},
		{"namespace=demo&path=/", 400, "", 0},
		{"namespace=demo&host=echo.demo&header=nocolon", 400, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, err := http.Get(web.URL + DebugRoutesPath + "?" + tt.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if tt.wantCode != 200 {
				return
			}
			var rc RouteCheck
			if err := json.NewDecoder(resp.Body).Decode(&rc); err != nil {
				t.Fatal(err)
			}
			if rc.Decision.Route != tt.wantRoute || rc.Decision.Status != tt.wantStatus || rc.Cluster != "east-1" {
				t.Errorf("decision = %+v, want route %q status %d", rc.Decision, tt.wantRoute, tt.wantStatus)
			}
		})
	}
}
