package xds

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// clusterSnap is a snapshot whose clusters are one part of names, each
// with the connect timeout given (seconds), to change its version.
func clusterSnap(t *testing.T, timeouts map[string]int) *Snapshot {
	t.Helper()
	var rs []*resource
	for _, name := range slices.Sorted(maps.Keys(timeouts)) {
		r, err := newResource(&clusterv3.Cluster{Name: name, ConnectTimeout: durationpb.New(time.Duration(timeouts[name]) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	s := &Snapshot{}
	s.sets[typeCluster] = newTypeSet([]*part{partOf(rs)})
	return s
}

// sent is what a delta response carries, for comparing.
type sent struct {
	Names   []string
	Removed []string
}

func sentOf(t *testing.T, r cache.DeltaResponse) sent {
	t.Helper()
	if r == nil {
		return sent{}
	}
	msg, err := r.GetDeltaDiscoveryResponse()
	if err != nil {
		t.Fatal(err)
	}
	b, err := marshalOptions.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var back discoverygrpc.DeltaDiscoveryResponse
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var out sent
	for _, r := range back.GetResources() {
		var c clusterv3.Cluster
		if err := r.GetResource().UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		if c.GetName() != r.GetName() || r.GetVersion() == "" {
			t.Errorf("resource %q (version %q) holds cluster %q", r.GetName(), r.GetVersion(), c.GetName())
		}
		out.Names = append(out.Names, r.GetName())
	}
	slices.Sort(out.Names)
	out.Removed = back.GetRemovedResources()
	return out
}

// TestDeltaRespondHistory drives deltaRespond as the stream server does
// (the next version map of each response becomes the subscription's):
// a wildcard stream keeps a one-entry map, gets only what changed, is
// brought in step across a change of shape by name, gets a name
// unsubscribed while wildcard again, and is ended when it falls out of
// the node's history.
func TestDeltaRespondHistory(t *testing.T) {
	n := &cacheNode{}
	req := &cache.DeltaRequest{TypeUrl: resourcev3.ClusterType}
	ack := &cache.DeltaRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: "1"}
	sub := stream.NewDeltaSubscription([]string{"*", "a"}, nil, nil, true)
	set := func(s *Snapshot) *Snapshot { n.remember(s); return s }
	respond := func(s *Snapshot, r *cache.DeltaRequest) cache.DeltaResponse {
		resp := deltaRespond(n.history(resourcev3.ClusterType), s, r, sub)
		if resp != nil {
			if m := resp.GetNextVersionMap(); m != nil {
				sub.SetReturnedResources(m)
			}
		}
		return resp
	}

	s1 := set(clusterSnap(t, map[string]int{"a": 1, "b": 1, "c": 1}))
	if diff := cmp.Diff(sent{Names: []string{"a", "b", "c"}}, sentOf(t, respond(s1, req))); diff != "" {
		t.Errorf("first response (-want +got):\n%s", diff)
	}
	if got := len(sub.ReturnedResources()); got != 1 {
		t.Errorf("wildcard stream's version map holds %d entries, want 1", got)
	}
	if r := respond(s1, ack); r != nil {
		t.Errorf("an ACK in step was answered: %+v", sentOf(t, r))
	}
	s2 := set(clusterSnap(t, map[string]int{"a": 1, "b": 2, "c": 1}))
	if diff := cmp.Diff(sent{Names: []string{"b"}}, sentOf(t, respond(s2, ack))); diff != "" {
		t.Errorf("one changed (-want +got):\n%s", diff)
	}
	s3 := set(clusterSnap(t, map[string]int{"a": 1, "b": 2, "d": 1}))
	if diff := cmp.Diff(sent{Names: []string{"d"}, Removed: []string{"c"}}, sentOf(t, respond(s3, ack))); diff != "" {
		t.Errorf("one replaced (-want +got):\n%s", diff)
	}
	// Unsubscribing a, still wildcard: a is sent again (xDS protocol,
	// "how the client specifies what resources to return").
	sub.UpdateResourceSubscriptions(nil, []string{"a"})
	if diff := cmp.Diff(sent{Names: []string{"a"}}, sentOf(t, respond(s3, ack))); diff != "" {
		t.Errorf("after unsubscribing a (-want +got):\n%s", diff)
	}

	// More snapshots than the history holds while the stream waits.
	var last *Snapshot
	for i := range maxHistory + 1 {
		last = set(clusterSnap(t, map[string]int{"a": 1, "b": 3 + i, "d": 1}))
	}
	r := respond(last, ack)
	if r == nil {
		t.Fatal("a stream out of the history was not answered")
	}
	if _, err := r.GetDeltaDiscoveryResponse(); !errors.Is(err, errFallenBehind) {
		t.Errorf("stream out of the history: %v, want errFallenBehind", err)
	}
}
