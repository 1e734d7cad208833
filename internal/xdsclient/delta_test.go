package xdsclient_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsclient/xdstest"
)

// startDeltaClient runs a delta client of clusters on addr.
func startDeltaClient(t *testing.T, addr string, h xdsclient.Handler, incremental bool) *xdsclient.Client {
	t.Helper()
	c, err := xdsclient.New(xdsclient.Config{
		Target:         addr,
		Insecure:       true,
		Node:           &corev3.Node{Id: "node-1"},
		Types:          []string{xdsclient.ClusterType},
		Handler:        h,
		InitialBackoff: 10 * time.Millisecond,
		MaxBackoff:     50 * time.Millisecond,
		Incremental:    incremental,
	}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// rejecting records updates and refuses one holding cluster reject-me.
type rejecting struct{ updates }

func (r *rejecting) OnUpdate(u xdsclient.Update) error {
	if _, bad := u.Resources["reject-me"]; bad {
		return errRejectMe
	}
	return r.updates.OnUpdate(u)
}

// summary is an update as the tests compare it.
type summary struct {
	Incremental bool
	Names       []string
	Removed     []string
}

func summarize(u xdsclient.Update) summary {
	var names []string
	for n := range u.Resources {
		names = append(names, n)
	}
	slices.Sort(names)
	return summary{Incremental: u.Incremental, Names: names, Removed: u.Removed}
}

func clusters(rs ...types.Resource) map[string][]types.Resource {
	return map[string][]types.Resource{resourcev3.ClusterType: rs}
}

// TestDeltaUpdatesAndNACK runs a delta client with an incremental handler
// against go-control-plane's delta server: the first response is the
// whole set, a change to one cluster sends that cluster alone, a removal
// names it, and a refused response is NACKed with its reason while the
// client keeps its last good state.
func TestDeltaUpdatesAndNACK(t *testing.T) {
	srv := xdstest.New(t, nil)
	h := &rejecting{}
	c := startDeltaClient(t, srv.Addr(), h, true)
	srv.Set("1", clusters(cluster("a", time.Second), cluster("b", time.Second)), "node-1")
	wantNext := func(what string, want summary) {
		t.Helper()
		var got summary
		poll.True(t, 30*time.Second, what, func() bool {
			u, ok := h.last()
			got = summarize(u)
			return ok && cmp.Equal(want, got)
		})
	}
	wantNext("the whole set first", summary{Names: []string{"a", "b"}})
	if got := c.Status().Protocol; got != "delta" {
		t.Errorf("protocol %q, want delta", got)
	}
	if c.Resources(xdsclient.ClusterType) != nil {
		t.Error("an incremental client keeps decoded resources")
	}

	srv.Set("2", clusters(cluster("a", 2*time.Second), cluster("b", time.Second)), "node-1")
	wantNext("one change sends one cluster", summary{Incremental: true, Names: []string{"a"}})
	srv.Set("3", clusters(cluster("a", 2*time.Second)), "node-1")
	wantNext("a removal", summary{Incremental: true, Removed: []string{"b"}})
	before := len(h.all())

	srv.Set("4", clusters(cluster("a", 3*time.Second), cluster("reject-me", time.Second)), "node-1")
	poll.True(t, 30*time.Second, "NACK with the reason", func() bool {
		for _, r := range srv.DeltaRequests() {
			if r.GetErrorDetail() != nil && strings.Contains(r.GetErrorDetail().GetMessage(), "reject-me") {
				return r.GetResponseNonce() != ""
			}
		}
		return false
	})
	st := c.Status().Types[xdsclient.ClusterType]
	if st.Version != "3" || st.LastError == "" || st.Resources != 1 {
		t.Errorf("status after NACK %+v, want version 3 kept, an error, 1 resource", st)
	}
	if got := len(h.all()); got != before {
		t.Errorf("handler got %d updates after the NACK, want %d", got, before)
	}
	srv.Set("5", clusters(cluster("a", 4*time.Second)), "node-1")
	wantNext("good config after a NACK", summary{Incremental: true, Names: []string{"a"}, Removed: []string{"reject-me"}})
	if st := c.Status().Types[xdsclient.ClusterType]; st.Version != "5" || st.LastError != "" {
		t.Errorf("status %+v, want version 5 and no error", st)
	}
}

// TestDeltaReconnectAnnouncesVersions checks that a new stream announces
// the accepted resources' versions, and that what changed while the
// control plane was away arrives as a change and a removal, merged into
// the whole set for a handler that takes whole sets.
func TestDeltaReconnectAnnouncesVersions(t *testing.T) {
	srv := xdstest.New(t, nil)
	h := &updates{}
	c := startDeltaClient(t, srv.Addr(), h, false)
	srv.Set("1", clusters(cluster("a", time.Second), cluster("b", time.Second)), "node-1")
	poll.True(t, 30*time.Second, "version 1", func() bool { return c.Status().Types[xdsclient.ClusterType].Version == "1" })
	announced := func() map[string]string {
		var last map[string]string
		for _, r := range srv.DeltaRequests() {
			if r.GetResponseNonce() == "" {
				last = r.GetInitialResourceVersions()
			}
		}
		return last
	}
	if got := announced(); len(got) != 0 {
		t.Errorf("the first stream announced %v, want nothing", got)
	}
	srv.Stop()
	srv.Set("2", clusters(cluster("a", 2*time.Second), cluster("c", time.Second)), "node-1")
	srv.Restart()
	poll.True(t, 30*time.Second, "version 2 after reconnect", func() bool { return c.Status().Types[xdsclient.ClusterType].Version == "2" })
	if got := slices.Sorted(mapKeys(announced())); !cmp.Equal(got, []string{"a", "b"}) {
		t.Errorf("the new stream announced %v, want a and b", got)
	}
	u, _ := h.last()
	if diff := cmp.Diff(summary{Names: []string{"a", "c"}}, summarize(u)); diff != "" {
		t.Errorf("whole set after reconnect (-want +got):\n%s", diff)
	}
	if got := slices.Sorted(mapKeys(c.Resources(xdsclient.ClusterType))); !cmp.Equal(got, []string{"a", "c"}) {
		t.Errorf("Resources after reconnect %v, want a and c", got)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestDeltaFallsBackToSotW runs the default client against a control
// plane that answers delta with Unimplemented: it speaks state of the
// world and gets its config.
func TestDeltaFallsBackToSotW(t *testing.T) {
	srv := xdstest.NewSotW(t, nil)
	h := &recorder{names: map[string][]string{}}
	c := startDeltaClient(t, srv.Addr(), h, false)
	srv.Set("1", clusters(cluster("a", time.Second)), "node-1")
	poll.True(t, 30*time.Second, "ack of version 1 in state of the world", func() bool { return acked(srv, "1") })
	if got := c.Status().Protocol; got != "sotw" {
		t.Errorf("protocol %q, want sotw", got)
	}
	if rec := h.last(); rec != "1" {
		t.Errorf("last version %q, want 1", rec)
	}
}

// TestDeltaPersistedStateReplaced persists delta updates, restores them
// in a new client while no control plane answers, and checks that the
// control plane's first response replaces them whole and that the new
// stream announced no persisted version.
func TestDeltaPersistedStateReplaced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "xds")
	srv := xdstest.New(t, nil)
	srv.Set("1", map[string][]types.Resource{resourcev3.ClusterType: {cluster("a", time.Second)}, resourcev3.ListenerType: {&listenerv3.Listener{Name: "l"}}}, "node-1")
	first := &updates{}
	c1, stop1 := runClientWith(t, srv.Addr(), dir, first, nil, nil, false)
	poll.True(t, 30*time.Second, "version 1 accepted and persisted", func() bool {
		_, err1 := os.Stat(filepath.Join(dir, "cluster.pb"))
		_, err2 := os.Stat(filepath.Join(dir, "listener.pb"))
		return c1.Status().Types[xdsclient.ListenerType].Version == "1" && err1 == nil && err2 == nil
	})
	srv.Set("2", map[string][]types.Resource{resourcev3.ClusterType: {cluster("a", time.Second), cluster("b", time.Second)}, resourcev3.ListenerType: {&listenerv3.Listener{Name: "l"}}}, "node-1")
	poll.True(t, 30*time.Second, "version 2 persisted", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "cluster.pb"))
		if err != nil {
			return false
		}
		u, _, err := xdsclient.DecodePersisted(xdsclient.ClusterType, b)
		return err == nil && len(u.Resources) == 2
	})
	stop1()

	srv.Stop()
	second := &updates{}
	c2, _ := runClientWith(t, srv.Addr(), dir, second, nil, nil, false)
	poll.True(t, 30*time.Second, "persisted state handed over", func() bool {
		return c2.Status().Source == xdsclient.SourcePersisted && len(second.all()) == 2
	})
	if u := second.all()[0]; !u.Persisted || len(u.Resources) != 2 {
		t.Fatalf("restored clusters %+v, want a and b persisted", summarize(u))
	}
	srv.Set("3", map[string][]types.Resource{resourcev3.ClusterType: {cluster("c", time.Second)}, resourcev3.ListenerType: {&listenerv3.Listener{Name: "l"}}}, "node-1")
	srv.Restart()
	poll.True(t, 30*time.Second, "the control plane's clusters replace the persisted ones", func() bool {
		return c2.Status().Source == xdsclient.SourceControlPlane && c2.Status().Types[xdsclient.ClusterType].Version == "3"
	})
	var got summary
	for _, u := range second.all() {
		if u.TypeURL == xdsclient.ClusterType && !u.Persisted {
			got = summarize(u)
		}
	}
	if diff := cmp.Diff(summary{Names: []string{"c"}}, got); diff != "" {
		t.Errorf("clusters from the control plane (-want +got):\n%s", diff)
	}
	for _, r := range srv.DeltaRequests() {
		if r.GetNode() != nil && r.GetResponseNonce() == "" && len(r.GetInitialResourceVersions()) > 0 && r.GetTypeUrl() == xdsclient.ClusterType {
			// Only the first client's streams could announce, and it
			// had one stream.
			t.Errorf("a first request announced %v: persisted versions must not be announced", r.GetInitialResourceVersions())
		}
	}
}
