package controlplane

import (
	"testing"

	"github.com/fedmesh/fedmesh/policy"
)

// TestTrafficObjectsListRateLimits: the local RateLimitPolicies are
// listed with their targetRefs, as local objects of the cluster.
func TestTrafficObjectsListRateLimits(t *testing.T) {
	o := listLocal(t, "apiVersion: fedmesh.io/v1alpha1\nkind: RateLimitPolicy\nmetadata: {name: rl, namespace: demo}\nspec: {targetRefs: [{kind: Service, name: echo}], local: [{name: a, requests: 5, interval: 1s}]}\n")
	if o.Kind != policy.KindRateLimitPolicy || o.Namespace != "demo" || o.Name != "rl" || o.Origin != OriginLocal || o.Cluster != "east-1" ||
		len(o.Refs) != 1 || o.Refs[0] != "Service demo/echo" {
		t.Errorf("listed %+v", o)
	}
}
