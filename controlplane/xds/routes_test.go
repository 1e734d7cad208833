package xds

import (
	"bytes"
	"os"
	"path/filepath"
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
