package xds

import (
	"context"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// echoDown is the test view with echo's healthy east-1 endpoint down.
func echoDown(v *catalog.View) {
	v.Revision = 2
	v.Services[0].Endpoints[0].Healthy = false
}

func responseNames(t *testing.T, resp *discoverygrpc.DiscoveryResponse) []string {
	t.Helper()
	var names []string
	for name := range decodeResources(t, resp) {
		names = append(names, name)
	}
	return names
}

// decodeResources decodes a state-of-the-world response by name.
func decodeResources(t *testing.T, resp *discoverygrpc.DiscoveryResponse) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, a := range resp.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		out[m.(interface{ GetName() string }).GetName()] = m
	}
	return out
}

// TestWildcardPushSendsChangedTypeOnly subscribes to every cluster and
// endpoint and checks that a health change brings exactly one new EDS
// response, whole and decodable, and nothing for the unchanged CDS.
func TestWildcardPushSendsChangedTypeOnly(t *testing.T) {
	h := startServer(t, nil)
	a := dialADS(t, h.addr, clientNode())
	a.request(resourcev3.ClusterType, nil, "", "")
	a.request(resourcev3.EndpointType, nil, "", "")
	versions := map[string]string{}
	for range 2 {
		resp, err := a.recv()
		if err != nil {
			t.Fatal(err)
		}
		versions[resp.GetTypeUrl()] = resp.GetVersionInfo()
		a.request(resp.GetTypeUrl(), nil, resp.GetVersionInfo(), resp.GetNonce())
	}
	if err := h.srv.UpdateView(testView("east-1", echoDown)); err != nil {
		t.Fatal(err)
	}
	resp, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(resourcev3.EndpointType, resp.GetTypeUrl()); diff != "" {
		t.Fatalf("pushed type (-want +got):\n%s", diff)
	}
	if resp.GetVersionInfo() == versions[resourcev3.EndpointType] {
		t.Errorf("pushed endpoints kept version %s", resp.GetVersionInfo())
	}
	want := []string{
		"p0 us-east/a/east-1 w1: 127.0.1.1:15006 UNHEALTHY, 127.0.1.2:15006 UNHEALTHY",
		"p1 us-east/b/east-2 w1: 127.0.0.12:15443 HEALTHY w1 sni=" + echoSNI,
		"p2 us-west/a/west-1 w2: 127.0.0.13:15443 HEALTHY w2 sni=" + echoSNI,
	}
	if diff := cmp.Diff(want, summarizeCLA(claFrom(t, resp, echoCluster))); diff != "" {
		t.Errorf("pushed assignment (-want +got):\n%s", diff)
	}
	if got := len(resp.GetResources()); got != 2 {
		t.Errorf("pushed %d assignments, want the whole set of 2", got)
	}
}

// TestNamedSubscriptionGrows asks for one listener, then for two at the
// same version, as grpc-go does when a second target appears: the new
// name is answered without a view change.
func TestNamedSubscriptionGrows(t *testing.T) {
	h := startServer(t, nil)
	n := Node{ID: "grpc~1", Role: naming.RoleProxyless, Cluster: "east-1", Namespace: "demo", ServiceAccount: "client",
		Workload: "client", Token: "tok-client", Locality: locEast1}
	a := dialADS(t, h.addr, n)
	const echoHost, storeHost = "echo.demo.svc.clusterset.local:8080", "store.demo.svc.clusterset.local:5432"
	a.request(resourcev3.ListenerType, []string{echoHost}, "", "")
	first, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{echoHost}, responseNames(t, first)); diff != "" {
		t.Errorf("first response (-want +got):\n%s", diff)
	}
	a.request(resourcev3.ListenerType, []string{echoHost, storeHost}, first.GetVersionInfo(), first.GetNonce())
	second, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{echoHost, storeHost}, responseNames(t, second), sortStrings); diff != "" {
		t.Errorf("second response (-want +got):\n%s", diff)
	}
	if _, ok := decodeResources(t, second)[storeHost].(*listenerv3.Listener); !ok {
		t.Errorf("%s is not a listener", storeHost)
	}
}

// TestDeltaSendsOnlyChanged subscribes to every assignment over delta
// ADS: a health change of echo sends echo's assignment alone.
func TestDeltaSendsOnlyChanged(t *testing.T) {
	h := startServer(t, nil)
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{Node: pbNode(clientNode()), TypeUrl: resourcev3.EndpointType}); err != nil {
		t.Fatal(err)
	}
	names := func(resp *discoverygrpc.DeltaDiscoveryResponse) []string {
		var out []string
		for _, r := range resp.GetResources() {
			out = append(out, r.GetName())
		}
		return out
	}
	first, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{echoCluster, "outbound|5432||store.demo.svc.clusterset.local"}, names(first), sortStrings); diff != "" {
		t.Errorf("first delta (-want +got):\n%s", diff)
	}
	if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: first.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.UpdateView(testView("east-1", echoDown)); err != nil {
		t.Fatal(err)
	}
	second, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{echoCluster}, names(second)); diff != "" {
		t.Errorf("delta after a health change (-want +got):\n%s", diff)
	}
}

// TestWildcardClustersWholeSet checks a whole-type response made of a
// shared part (outbound clusters, sent as encoded bytes) and a node's
// own part (its inbound cluster, sent as resources): the client decodes
// every cluster once.
func TestWildcardClustersWholeSet(t *testing.T) {
	h := startServer(t, nil)
	withClient := func(v *catalog.View) {
		v.Revision = 2
		e := ep("127.0.1.100", locEast1, true, "")
		e.Workload, e.ServiceAccount = "client", "client"
		v.Services[0].Endpoints = append(v.Services[0].Endpoints, e)
	}
	if err := h.srv.UpdateView(testView("east-1", withClient)); err != nil {
		t.Fatal(err)
	}
	a := dialADS(t, h.addr, clientNode())
	a.request(resourcev3.ClusterType, nil, "", "")
	resp, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"inbound|8080||echo.demo.svc.clusterset.local", echoCluster, "outbound|5432||store.demo.svc.clusterset.local"}
	var got []string
	for _, r := range resp.GetResources() {
		var c clusterv3.Cluster
		if err := r.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		got = append(got, c.GetName())
	}
	if diff := cmp.Diff(want, got, sortStrings); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
}
