package sidecar

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

func TestMemoryRelease(t *testing.T) {
	resources := func(n int) map[string]proto.Message {
		m := make(map[string]proto.Message, n)
		for i := range n {
			m[fmt.Sprint(i)] = nil
		}
		return m
	}
	small := func(typ string) xdsclient.Update { return xdsclient.Update{TypeURL: typ, Resources: resources(1)} }
	large := func(typ string) xdsclient.Update {
		return xdsclient.Update{TypeURL: typ, Resources: resources(largeUpdate)}
	}
	types := []string{xdsclient.ClusterType, xdsclient.EndpointType, xdsclient.RouteType}
	for _, tc := range []struct {
		name    string
		updates []xdsclient.Update
		want    []bool
	}{
		{
			name:    "small updates: once, when the last type first arrives",
			updates: []xdsclient.Update{small(types[0]), small(types[1]), small(types[1]), small(types[2]), small(types[2]), small(types[0])},
			want:    []bool{false, false, false, true, false, false},
		},
		{
			name:    "large updates always",
			updates: []xdsclient.Update{large(types[0]), small(types[1]), small(types[2]), large(types[1]), small(types[1])},
			want:    []bool{true, false, true, true, false},
		},
		{
			name:    "just below the threshold",
			updates: []xdsclient.Update{{TypeURL: types[0], Resources: resources(largeUpdate - 1)}},
			want:    []bool{false},
		},
		{
			name: "changed and removed count together",
			updates: []xdsclient.Update{{TypeURL: types[0], Resources: resources(largeUpdate / 2),
				Removed: make([]string, largeUpdate-largeUpdate/2), Incremental: true}},
			want: []bool{true},
		},
		{
			name:    "a type not subscribed completes nothing",
			updates: []xdsclient.Update{small(types[0]), small(types[1]), small(xdsclient.SecretType)},
			want:    []bool{false, false, false},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemoryRelease(types)
			var got []bool
			for _, u := range tc.updates {
				got = append(got, m.after(u))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("releases (-want +got):\n%s", diff)
			}
		})
	}
}

// An applied update of a thousand clusters is followed by one release of
// memory; a refused update and a small one are not.
func TestOnUpdateReleasesMemory(t *testing.T) {
	released := 0
	orig := releaseMemory
	releaseMemory = func() { released++ }
	t.Cleanup(func() { releaseMemory = orig })
	s := newBare(t, prometheus.NewRegistry(), &logRecords{})

	clusters := func(n int) map[string]proto.Message {
		m := make(map[string]proto.Message, n)
		for i := range n {
			c := meshtest.OutboundCluster(naming.ServicePort{Namespace: "demo", Name: fmt.Sprintf("svc-%d", i), Port: 8080}, meshtest.ClusterOpts{HTTP: true})
			m[c.GetName()] = c
		}
		return m
	}
	if err := s.onUpdate(xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "1", Resources: clusters(1000)}); err != nil {
		t.Fatal(err)
	}
	if released != 1 {
		t.Fatalf("after 1,000 clusters: %d releases, want 1", released)
	}
	if err := s.onUpdate(xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "2", Resources: clusters(1), Incremental: true}); err != nil {
		t.Fatal(err)
	}
	if released != 1 {
		t.Errorf("after a small update: %d releases, want still 1", released)
	}
	bad := clusters(largeUpdate)
	bad["not-a-cluster-name"] = bad[naming.ServicePort{Namespace: "demo", Name: "svc-0", Port: 8080}.OutboundCluster()]
	if err := s.onUpdate(xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "3", Resources: bad}); err == nil {
		t.Fatal("an update with a bad cluster name was applied")
	}
	if released != 1 {
		t.Errorf("after a refused update: %d releases, want still 1", released)
	}
}

// The binary's pages are dropped whenever the heap is returned: after
// the first whole configuration and after a large update, not after a
// small one.
func TestOnUpdateDropsPages(t *testing.T) {
	drops, releases := 0, 0
	orig, origRelease := dropBinaryPages, releaseMemory
	dropBinaryPages = func() (int, error) { drops++; return 1, nil }
	releaseMemory = func() { releases++ }
	t.Cleanup(func() { dropBinaryPages, releaseMemory = orig, origRelease })
	s := newBare(t, prometheus.NewRegistry(), &logRecords{})
	s.release = newMemoryRelease([]string{xdsclient.ClusterType, xdsclient.EndpointType})

	clusters := func(from, n int) map[string]proto.Message {
		m := make(map[string]proto.Message, n)
		for i := from; i < from+n; i++ {
			c := meshtest.OutboundCluster(naming.ServicePort{Namespace: "demo", Name: fmt.Sprintf("svc-%d", i), Port: 8080}, meshtest.ClusterOpts{HTTP: true})
			m[c.GetName()] = c
		}
		return m
	}
	steps := []struct {
		what  string
		u     xdsclient.Update
		drops int
	}{
		{"a small update of one type", xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "1", Resources: clusters(0, 1)}, 0},
		{"the first whole configuration", xdsclient.Update{TypeURL: xdsclient.EndpointType, Version: "1"}, 1},
		{"a small update", xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "2", Resources: clusters(1, 1), Incremental: true}, 1},
		{"a large update", xdsclient.Update{TypeURL: xdsclient.ClusterType, Version: "3", Resources: clusters(2, largeUpdate), Incremental: true}, 2},
	}
	for _, st := range steps {
		if err := s.onUpdate(st.u); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		if drops != st.drops || releases != st.drops {
			t.Fatalf("after %s: pages dropped %d times, heap returned %d times, want %d", st.what, drops, releases, st.drops)
		}
	}
}
