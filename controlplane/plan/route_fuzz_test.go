package plan

import (
	"testing"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan/plantest"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// FuzzRoutes: any traffic object that parses, published as echo's
// producer policies, plans a table whose every route has a name and
// whose matchers Explain can evaluate, without panicking.
func FuzzRoutes(f *testing.F) {
	f.Add([]byte(httpRoute("m", "demo", `  - matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}, headers: [{type: RegularExpression, name: x, value: "a|b"}]}]
    backendRefs: [{name: echo, port: 8080}]
`)), "/re/1", "a")
	f.Add([]byte(resilience), "/", "")
	f.Fuzz(func(t *testing.T, doc []byte, path, header string) {
		obj, err := policy.ParseObject(doc)
		if err != nil {
			return
		}
		var tr policy.Traffic
		if err := tr.Add(obj); err != nil {
			return
		}
		pol, err := policy.EncodePolicies(tr)
		if err != nil {
			return
		}
		v := plantest.View("east-1", func(v *catalog.View) { v.Services[0].Policies = pol })
		p := New(testTD, topology.Policy{}, v).WithTraffic(tr)
		for _, ns := range []string{"demo", "other"} {
			for _, r := range p.Routes(ns, &v.Services[0], echoPort).Routes {
				if r.Name == "" {
					t.Fatalf("route without a name: %+v", r)
				}
			}
			d := p.Explain(ns, "echo.demo", 8080, "GET", "/"+path, map[string]string{"x": header})
			if d.Reason == "" {
				t.Fatalf("decision without a reason: %+v", d)
			}
		}
		_ = p.ClusterSettings(&v.Services[0])
		_ = p.TopologyPolicy(&v.Services[0], "us-east")
		_ = p.LocalSubsets()
	})
}
