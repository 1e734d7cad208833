package xds

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
)

// deltaStream is a raw delta ADS stream of one test.
type deltaStream struct {
	t  *testing.T
	st discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
}

func dialDelta(t *testing.T, addr string) *deltaStream {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(func() { cancel(); conn.Close() })
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &deltaStream{t: t, st: st}
}

func (d *deltaStream) send(req *discoverygrpc.DeltaDiscoveryRequest) {
	d.t.Helper()
	if err := d.st.Send(req); err != nil {
		d.t.Fatal(err)
	}
}

// deltaSeen is a delta response as the tests compare it.
type deltaSeen struct {
	Names   []string
	Removed []string
}

// recv reads one response and returns it with what it carries.
func (d *deltaStream) recv() (*discoverygrpc.DeltaDiscoveryResponse, deltaSeen) {
	d.t.Helper()
	resp, err := d.st.Recv()
	if err != nil {
		d.t.Fatal(err)
	}
	var s deltaSeen
	for _, r := range resp.GetResources() {
		if r.GetVersion() == "" || r.GetResource() == nil {
			d.t.Errorf("resource %q without version or body", r.GetName())
		}
		s.Names = append(s.Names, r.GetName())
	}
	s.Removed = resp.GetRemovedResources()
	return resp, s
}

// expect reads one response, checks what it carries and ACKs it.
func (d *deltaStream) expect(what string, want deltaSeen) *discoverygrpc.DeltaDiscoveryResponse {
	d.t.Helper()
	resp, got := d.recv()
	if diff := cmp.Diff(want, got, sortStrings); diff != "" {
		d.t.Errorf("%s (-want +got):\n%s", what, diff)
	}
	d.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
	return resp
}

func withoutStore(v *catalog.View) {
	v.Revision = 3
	v.Services = v.Services[:1]
}

// TestDeltaWildcardChangesRemovalsAndNACK follows a wildcard delta
// subscription to endpoints through a change of one service (its
// assignment alone is sent), a NACK (nothing is sent again; the next
// change sends only what changed since) and a removal (named in
// removed_resources).
func TestDeltaWildcardChangesRemovalsAndNACK(t *testing.T) {
	h := startServer(t, nil)
	d := dialDelta(t, h.addr)
	d.send(&discoverygrpc.DeltaDiscoveryRequest{Node: pbNode(clientNode()), TypeUrl: resourcev3.EndpointType})
	d.expect("first response", deltaSeen{Names: []string{echoCluster, storeCluster}})

	if err := h.srv.UpdateView(testView("east-1", echoDown)); err != nil {
		t.Fatal(err)
	}
	resp, got := d.recv()
	if diff := cmp.Diff(deltaSeen{Names: []string{echoCluster}}, got); diff != "" {
		t.Errorf("one service changed (-want +got):\n%s", diff)
	}
	// The client refuses it; the server does not send it again.
	d.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &statuspb.Status{Code: 3, Message: "refused for the test"}})
	if err := h.srv.UpdateView(testView("east-1", echoDown, withoutStore)); err != nil {
		t.Fatal(err)
	}
	// The stream is ordered: had the NACK brought echo again, it would
	// come before this.
	d.expect("service removed after a NACK", deltaSeen{Removed: []string{storeCluster}})
}

// TestDeltaNamedSubscribeUnsubscribe subscribes to assignments by name:
// each subscription brings its resource, an unsubscribed one is no
// longer sent, and a name that does not exist is answered when it does.
func TestDeltaNamedSubscribeUnsubscribe(t *testing.T) {
	h := startServer(t, nil)
	d := dialDelta(t, h.addr)
	d.send(&discoverygrpc.DeltaDiscoveryRequest{Node: pbNode(clientNode()), TypeUrl: resourcev3.EndpointType,
		ResourceNamesSubscribe: []string{echoCluster}})
	d.expect("subscribed to echo", deltaSeen{Names: []string{echoCluster}})
	// One request subscribes to store and unsubscribes echo: store's
	// arrival says the server has taken both.
	d.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType,
		ResourceNamesSubscribe: []string{storeCluster}, ResourceNamesUnsubscribe: []string{echoCluster}})
	d.expect("subscribed to store, echo unsubscribed", deltaSeen{Names: []string{storeCluster}})
	// echo changes: not sent; store is removed: sent.
	if err := h.srv.UpdateView(testView("east-1", echoDown)); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.UpdateView(testView("east-1", echoDown, withoutStore)); err != nil {
		t.Fatal(err)
	}
	d.expect("after unsubscribing echo", deltaSeen{Removed: []string{storeCluster}})
}

// TestDeltaReconnectWithInitialVersions opens a second stream that
// announces what the first received: an unchanged resource is not sent
// again, a changed one is, and a name the server no longer has is
// removed.
func TestDeltaReconnectWithInitialVersions(t *testing.T) {
	h := startServer(t, nil)
	d := dialDelta(t, h.addr)
	d.send(&discoverygrpc.DeltaDiscoveryRequest{Node: pbNode(clientNode()), TypeUrl: resourcev3.EndpointType})
	first := d.expect("first stream", deltaSeen{Names: []string{echoCluster, storeCluster}})
	versions := map[string]string{}
	for _, r := range first.GetResources() {
		versions[r.GetName()] = r.GetVersion()
	}
	versions["outbound|80||gone.demo.svc.clusterset.local"] = "1"
	if err := h.srv.UpdateView(testView("east-1", echoDown)); err != nil {
		t.Fatal(err)
	}
	d.expect("echo changed on the first stream", deltaSeen{Names: []string{echoCluster}})

	// The second stream announces the first stream's first versions:
	// echo's is stale, store's is current.
	d2 := dialDelta(t, h.addr)
	d2.send(&discoverygrpc.DeltaDiscoveryRequest{Node: pbNode(clientNode()), TypeUrl: resourcev3.EndpointType,
		InitialResourceVersions: versions})
	d2.expect("reconnected", deltaSeen{Names: []string{echoCluster}, Removed: []string{"outbound|80||gone.demo.svc.clusterset.local"}})
	if err := h.srv.UpdateView(testView("east-1", echoDown, withoutStore)); err != nil {
		t.Fatal(err)
	}
	d2.expect("removal on the new stream", deltaSeen{Removed: []string{storeCluster}})
}

// TestDeltaRefusesReservedNames checks that names the cache keeps for
// itself cannot be announced.
func TestDeltaRefusesReservedNames(t *testing.T) {
	h := startServer(t, nil)
	d := dialDelta(t, h.addr)
	d.send(&discoverygrpc.DeltaDiscoveryRequest{Node: pbNode(clientNode()), TypeUrl: resourcev3.EndpointType,
		InitialResourceVersions: map[string]string{syncedKey: "x"}})
	if _, err := d.st.Recv(); err == nil {
		t.Fatal("a reserved name in initial_resource_versions was accepted")
	}
}

// TestSotWNamedEndpointsSendChangedOnly names every assignment in a
// state-of-the-world subscription (as a proxyless gRPC client does): a
// change of one service sends that service's assignment alone, and a
// wildcard subscription on another stream still gets every one.
func TestSotWNamedEndpointsSendChangedOnly(t *testing.T) {
	h := startServer(t, nil)
	names := []string{echoCluster, storeCluster}
	a := dialADS(t, h.addr, clientNode())
	a.request(resourcev3.EndpointType, names, "", "")
	w := dialADS(t, h.addr, Node{ID: "sidecar~2", Role: clientNode().Role, Cluster: "east-1", Namespace: "demo",
		ServiceAccount: "client", Workload: clientNode().Workload, Token: clientNode().Token, Locality: locEast1})
	w.request(resourcev3.EndpointType, nil, "", "")
	for _, s := range []*adsStream{a, w} {
		resp, err := s.recv()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(names, claNames(t, resp), sortStrings); diff != "" {
			t.Errorf("first response (-want +got):\n%s", diff)
		}
		s.request(resourcev3.EndpointType, s.names(names), resp.GetVersionInfo(), resp.GetNonce())
	}
	if err := h.srv.UpdateView(testView("east-1", echoDown)); err != nil {
		t.Fatal(err)
	}
	resp, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{echoCluster}, claNames(t, resp)); diff != "" {
		t.Errorf("named subscription after one change (-want +got):\n%s", diff)
	}
	resp, err = w.recv()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(names, claNames(t, resp), sortStrings); diff != "" {
		t.Errorf("wildcard subscription after one change (-want +got):\n%s", diff)
	}
}

// names is what the stream's requests name: all for the named stream.
func (a *adsStream) names(all []string) []string {
	if a.node.GetId() == pbNode(clientNode()).GetId() {
		return all
	}
	return nil
}

func claNames(t *testing.T, resp *discoverygrpc.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range resp.GetResources() {
		var cla endpointv3.ClusterLoadAssignment
		if err := a.UnmarshalTo(&cla); err != nil {
			t.Fatal(err)
		}
		out = append(out, cla.GetClusterName())
	}
	return out
}

// clientUpdates records a fedmesh xDS client's updates.
type clientUpdates struct {
	mu  sync.Mutex
	got []xdsclient.Update
}

func (c *clientUpdates) OnUpdate(u xdsclient.Update) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, u)
	return nil
}

// endpointUpdates returns the endpoint updates so far, summarized.
func (c *clientUpdates) endpointUpdates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, u := range c.got {
		if u.TypeURL != resourcev3.EndpointType {
			continue
		}
		names := slices.Sorted(maps.Keys(u.Resources))
		out = append(out, fmt.Sprintf("incremental=%v %v removed=%v", u.Incremental, names, u.Removed))
	}
	return out
}

// TestFedmeshClientSpeaksDelta runs fedmesh's own xDS client, as the
// sidecar configures it, against the server: it speaks delta, gets
// every assignment first, then one service's change alone and a
// removal.
func TestFedmeshClientSpeaksDelta(t *testing.T) {
	h := startServer(t, nil)
	rec := &clientUpdates{}
	c, err := xdsclient.New(xdsclient.Config{
		Target: h.addr, Insecure: true, Node: pbNode(clientNode()),
		Types: []string{xdsclient.ClusterType, xdsclient.EndpointType}, Handler: rec, Incremental: true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	want := []string{fmt.Sprintf("incremental=false %v removed=[]", []string{storeCluster, echoCluster})}
	poll.True(t, 30*time.Second, "every assignment", func() bool { return cmp.Equal(want, rec.endpointUpdates()) })
	if err := h.srv.UpdateView(testView("east-1", echoDown)); err != nil {
		t.Fatal(err)
	}
	want = append(want, fmt.Sprintf("incremental=true %v removed=[]", []string{echoCluster}))
	poll.True(t, 30*time.Second, "echo's change alone", func() bool { return cmp.Equal(want, rec.endpointUpdates()) })
	if err := h.srv.UpdateView(testView("east-1", echoDown, withoutStore)); err != nil {
		t.Fatal(err)
	}
	want = append(want, fmt.Sprintf("incremental=true [] removed=%v", []string{storeCluster}))
	poll.True(t, 30*time.Second, "store's removal", func() bool { return cmp.Equal(want, rec.endpointUpdates()) })
	if diff := cmp.Diff(want, rec.endpointUpdates()); diff != "" {
		t.Errorf("endpoint updates (-want +got):\n%s", diff)
	}
	if got := c.Status().Protocol; got != "delta" {
		t.Errorf("protocol %q, want delta", got)
	}
}

// TestSotWAndDeltaStreamsApart opens a state-of-the-world stream and a
// delta stream (go-control-plane numbers each kind from 1) and closes
// the first: the delta stream, of the same number, goes on.
func TestSotWAndDeltaStreamsApart(t *testing.T) {
	h := startServer(t, nil)
	a := dialADS(t, h.addr, clientNode())
	a.request(resourcev3.ClusterType, nil, "", "")
	if _, err := a.recv(); err != nil {
		t.Fatal(err)
	}
	d := dialDelta(t, h.addr)
	d.send(&discoverygrpc.DeltaDiscoveryRequest{Node: pbNode(clientNode()), TypeUrl: resourcev3.EndpointType})
	d.expect("first delta response", deltaSeen{Names: []string{echoCluster, storeCluster}})
	if err := a.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.recv(); err == nil {
		t.Fatal("the state-of-the-world stream did not end")
	}
	poll.True(t, 30*time.Second, "the state-of-the-world stream is gone", func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return len(h.srv.streams) == 1
	})
	if err := h.srv.UpdateView(testView("east-1", echoDown)); err != nil {
		t.Fatal(err)
	}
	// An ACK on a stream the server forgot would end it ("unknown
	// stream") before this response.
	d.expect("change on the delta stream", deltaSeen{Names: []string{echoCluster}})
}
