package sidecar

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

func TestReleasesMemory(t *testing.T) {
	resources := func(n int) map[string]proto.Message {
		m := make(map[string]proto.Message, n)
		for i := range n {
			m[fmt.Sprint(i)] = nil
		}
		return m
	}
	removed := func(n int) []string { return make([]string, n) }
	for _, tc := range []struct {
		name string
		u    xdsclient.Update
		want bool
	}{
		{name: "empty", u: xdsclient.Update{}, want: false},
		{name: "one endpoint", u: xdsclient.Update{Resources: resources(1), Incremental: true}, want: false},
		{name: "just below", u: xdsclient.Update{Resources: resources(largeUpdate - 1)}, want: false},
		{name: "a thousand services", u: xdsclient.Update{Resources: resources(1000)}, want: true},
		{name: "threshold", u: xdsclient.Update{Resources: resources(largeUpdate)}, want: true},
		{name: "changed and removed together", u: xdsclient.Update{Resources: resources(largeUpdate / 2), Removed: removed(largeUpdate / 2), Incremental: true}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := releasesMemory(tc.u); got != tc.want {
				t.Errorf("releasesMemory(%d resources, %d removed) = %v, want %v", len(tc.u.Resources), len(tc.u.Removed), got, tc.want)
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
