package xdsclient_test

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsclient/xdstest"
)

// outage is how long the control plane stays down in
// TestReconnectAfterOutage: long enough for a backoff without a low cap
// to have grown to several seconds.
const outage = 6 * time.Second

// TestReconnectAfterOutage: a real xDS server goes down for a while and
// comes back; the client, with the default backoff, opens a new stream
// and takes the server's new config. The time from the server listening
// again to the client's new stream is logged, not asserted (the deadline
// is generous).
func TestReconnectAfterOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("keeps a control plane down for " + outage.String())
	}
	srv := xdstest.New(t, nil)
	srv.Set("1", map[string][]types.Resource{resourcev3.ClusterType: {cluster("a", time.Second)}}, "node-1")
	rec := &recorder{names: map[string][]string{}}
	c, err := xdsclient.New(xdsclient.Config{
		Target:   srv.Addr(),
		Insecure: true,
		Node:     &corev3.Node{Id: "node-1"},
		Types:    []string{xdsclient.ClusterType},
		Handler:  rec, // default backoff: the policy under test
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	poll.True(t, 30*time.Second, "version 1", func() bool { return rec.last() == "1" })

	srv.Stop()
	poll.True(t, 30*time.Second, "disconnect noticed", func() bool { return !c.Status().Connected })
	// The outage itself: a fault of fixed length, not a wait for state.
	time.Sleep(outage)
	srv.Set("2", map[string][]types.Resource{resourcev3.ClusterType: {cluster("b", time.Second)}}, "node-1")
	srv.Restart()
	back := time.Now()
	poll.True(t, 60*time.Second, "version 2 from the restarted server", func() bool { return rec.last() == "2" })
	t.Logf("reconnected and updated %v after the control plane was back (outage %v)", time.Since(back).Round(time.Millisecond), outage)
}
