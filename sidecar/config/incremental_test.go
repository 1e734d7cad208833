package config_test

import (
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// incremental makes a delta update of typ: rs added or changed, removed
// gone.
func incremental(typ, ver string, removed []string, rs ...types.Resource) xdsclient.Update {
	u := update(typ, ver, rs...)
	u.Incremental, u.Removed = true, removed
	return u
}

// TestIncrementalUpdates applies whole sets, then delta updates: a
// changed assignment replaces that service's endpoints alone, a removed
// cluster takes its service away, and the Builder does not read the
// messages of an update again after Apply (it keeps their translation).
func TestIncrementalUpdates(t *testing.T) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	db := naming.ServicePort{Namespace: "demo", Name: "db", Port: 5432}
	id := "spiffe://fed.test/ns/demo/sa/echo"
	b := config.NewBuilder(td)
	echoCluster := meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true, Identities: []string{id}})
	ep := func(addr string, healthy bool) meshtest.Endpoint {
		return meshtest.Endpoint{Addr: addr, Cluster: "east-1", Identity: id, Healthy: healthy}
	}
	for _, u := range []xdsclient.Update{
		update(xdsclient.ClusterType, "1", echoCluster, meshtest.OutboundCluster(db, meshtest.ClusterOpts{Identities: []string{id}})),
		update(xdsclient.EndpointType, "1", meshtest.Assignment(echo, ep("127.0.1.1:15006", true)), meshtest.Assignment(db, ep("127.0.1.2:15006", true))),
		update(xdsclient.ListenerType, "1", meshtest.OutboundListener(echo, true), meshtest.OutboundListener(db, false)),
	} {
		if _, err := b.Apply(u); err != nil {
			t.Fatalf("apply %s: %v", u.TypeURL, err)
		}
	}
	// The cluster message changes after it was applied: the Builder
	// must not see it.
	applied := b.Current().Services[echo].ConnectTimeout
	echoCluster.ConnectTimeout = durationpb.New(time.Hour)

	snap, err := b.Apply(incremental(xdsclient.EndpointType, "2", nil, meshtest.Assignment(echo, ep("127.0.1.3:15006", false))))
	if err != nil {
		t.Fatal(err)
	}
	addrs := func(sp naming.ServicePort) []string {
		svc := snap.Services[sp]
		if svc == nil {
			return nil
		}
		var out []string
		for _, e := range svc.Endpoints {
			out = append(out, e.Address)
		}
		return out
	}
	got := map[string][]string{"echo": addrs(echo), "db": addrs(db)}
	want := map[string][]string{"echo": {"127.0.1.3:15006"}, "db": {"127.0.1.2:15006"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints after one assignment changed (-want +got):\n%s", diff)
	}
	if got := snap.Services[echo].ConnectTimeout; got != applied {
		t.Errorf("echo connect timeout %v after its message changed, want the applied %v", got, applied)
	}
	if got := snap.Services[echo].Protocol; !got.IsHTTP() {
		t.Errorf("echo protocol %v, want HTTP from its listener", got)
	}
	if got := snap.Services[echo].Endpoints[0].SNI; got != echo.SNI() {
		t.Errorf("echo endpoint SNI %q, want the cluster's %q", got, echo.SNI())
	}

	snap, err = b.Apply(incremental(xdsclient.ClusterType, "2", []string{db.OutboundCluster()}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Services[db]; ok {
		t.Error("db still served after its cluster was removed")
	}
	if _, ok := snap.Services[echo]; !ok {
		t.Error("echo gone after db's cluster was removed")
	}
	if diff := cmp.Diff(map[string]string{xdsclient.ClusterType: "2", xdsclient.EndpointType: "2", xdsclient.ListenerType: "1"}, snap.Versions); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}

	// A bad incremental update changes nothing.
	bad := meshtest.Assignment(echo, meshtest.Endpoint{Addr: "127.0.1.9:15006", Cluster: "east-1", Identity: "not-an-id", Healthy: true})
	if _, err := b.Apply(incremental(xdsclient.EndpointType, "3", nil, bad)); err == nil {
		t.Fatal("an endpoint with a bad identity was accepted")
	}
	if cur := b.Current(); cur != snap {
		t.Error("a refused update changed the current snapshot")
	}
}
