package controlplane

import (
	"testing"

	"github.com/fedmesh/fedmesh/policy"
)

// listLocal parses doc, adds it to the local policies of cluster east-1
// and returns the one object trafficObjects lists for them.
func listLocal(t *testing.T, doc string) TrafficObject {
	t.Helper()
	obj, err := policy.ParseObject([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var local policy.Traffic
	if err := local.Add(obj); err != nil {
		t.Fatal(err)
	}
	out := trafficObjects("east-1", &local, nil, nil)
	if len(out) != 1 {
		t.Fatalf("%d objects, want 1: %+v", len(out), out)
	}
	return out[0]
}
