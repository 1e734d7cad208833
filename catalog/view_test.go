package catalog

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/topology"
)

// TestClusterInfoEqual: Equal tells apart infos that differ in any one
// field, so a field added later cannot be forgotten there.
func TestClusterInfoEqual(t *testing.T) {
	base := ClusterInfo{
		Name: "east-1", Locality: topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"},
		GatewayAddress: "127.0.0.11:15443", RTT: time.Millisecond, Fenced: true, FenceReason: "gone",
		CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
	}
	same := base
	same.CIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")}
	if !base.Equal(same) {
		t.Error("equal infos differ")
	}
	v := reflect.ValueOf(base)
	for i := 0; i < v.NumField(); i++ {
		other := base
		f := reflect.ValueOf(&other).Elem().Field(i)
		f.Set(reflect.Zero(f.Type()))
		if base.Equal(other) {
			t.Errorf("infos that differ in %s are equal", v.Type().Field(i).Name)
		}
	}
}
