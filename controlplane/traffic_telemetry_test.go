package controlplane

import (
	"testing"

	"github.com/fedmesh/fedmesh/policy"
)

// TestTrafficObjectsListTelemetry: the local TelemetryPolicies are listed
// with their targetRefs, as local objects of the cluster.
func TestTrafficObjectsListTelemetry(t *testing.T) {
	o := listLocal(t, "apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nmetadata: {name: t, namespace: demo}\nspec: {targetRefs: [{kind: Service, name: echo}], accessLog: {enabled: true}}\n")
	if o.Kind != policy.KindTelemetryPolicy || o.Namespace != "demo" || o.Name != "t" || o.Origin != OriginLocal || o.Cluster != "east-1" ||
		len(o.Refs) != 1 || o.Refs[0] != "Service demo/echo" {
		t.Errorf("listed %+v", o)
	}
}
