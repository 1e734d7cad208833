package xdsclient_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsclient/xdstest"
)

// updates records every update handed to the handler.
type updates struct {
	mu  sync.Mutex
	got []xdsclient.Update
}

func (u *updates) OnUpdate(up xdsclient.Update) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.got = append(u.got, up)
	return nil
}

func (u *updates) all() []xdsclient.Update {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]xdsclient.Update(nil), u.got...)
}

func (u *updates) last() (xdsclient.Update, bool) {
	all := u.all()
	if len(all) == 0 {
		return xdsclient.Update{}, false
	}
	return all[len(all)-1], true
}

// runClient starts a client of clusters and listeners on target with dir
// as its data directory, and stops it when stop is called or the test
// ends.
func runClient(t *testing.T, target, dir string, h xdsclient.Handler, reg prometheus.Registerer, check func([]xdsclient.Update) error) (*xdsclient.Client, func()) {
	t.Helper()
	return runClientWith(t, target, dir, h, reg, check, true)
}

// runClientWith is runClient speaking state of the world or delta.
func runClientWith(t *testing.T, target, dir string, h xdsclient.Handler, reg prometheus.Registerer, check func([]xdsclient.Update) error, sotw bool) (*xdsclient.Client, func()) {
	t.Helper()
	c, err := xdsclient.New(xdsclient.Config{
		SotW:          sotw,
		Target:        target,
		Insecure:      true,
		Node:          &corev3.Node{Id: "node-1"},
		Types:         []string{xdsclient.ClusterType, xdsclient.ListenerType},
		Handler:       h,
		DataDir:       dir,
		RestoreAfter:  200 * time.Millisecond,
		CheckRestored: check,
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return c, stop
}

// deadAddr is a loopback address where nothing listens: a server started
// and stopped.
func deadAddr(t *testing.T) string {
	srv := xdstest.New(t, nil)
	srv.Stop()
	return srv.Addr()
}

// A client persists what it accepts (0600 files); a client started later
// while no control plane answers serves that state, marked persisted, and
// the control plane's config replaces it once it is back.
func TestPersistedStateServesUntilControlPlaneAnswers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "xds")
	srv := xdstest.New(t, nil)
	srv.Set("1", map[string][]types.Resource{resourcev3.ClusterType: {cluster("a", time.Second)}, resourcev3.ListenerType: {&listenerv3.Listener{Name: "l"}}}, "node-1")
	first := &updates{}
	c1, stop1 := runClient(t, srv.Addr(), dir, first, nil, nil)
	poll.True(t, 30*time.Second, "version 1 accepted and persisted", func() bool {
		_, err1 := os.Stat(filepath.Join(dir, "cluster.pb"))
		_, err2 := os.Stat(filepath.Join(dir, "listener.pb"))
		return acked(srv, "1") && err1 == nil && err2 == nil
	})
	if got := c1.Status().Source; got != xdsclient.SourceControlPlane {
		t.Errorf("source with a live control plane = %q, want %q", got, xdsclient.SourceControlPlane)
	}
	stop1()
	for _, f := range []string{"cluster.pb", "listener.pb"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if d, err := os.Stat(dir); err != nil || d.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v %v, want mode 0700", d.Mode().Perm(), err)
	}

	// The control plane is down; a new client starts from the files.
	srv.Stop()
	reg := prometheus.NewRegistry()
	second := &updates{}
	c2, _ := runClient(t, srv.Addr(), dir, second, reg, nil)
	poll.True(t, 30*time.Second, "persisted clusters handed over", func() bool {
		return c2.Status().Source == xdsclient.SourcePersisted && len(second.all()) == 2
	})
	u := second.all()[0]
	if !u.Persisted || u.TypeURL != xdsclient.ClusterType || u.Version != "1" {
		t.Fatalf("first restored update %s version %q persisted=%v, want clusters version 1 persisted", u.TypeURL, u.Version, u.Persisted)
	}
	if _, ok := u.Resources["a"].(*clusterv3.Cluster); !ok {
		t.Fatalf("restored clusters %v, want cluster a", u.Resources)
	}
	if _, ok := c2.Resources(xdsclient.ClusterType)["a"]; !ok {
		t.Error("Resources does not return the restored cluster")
	}
	if got := metricValue(t, reg, "fedmesh_xds_config_source", "persisted"); got != 1 {
		t.Errorf("fedmesh_xds_config_source{source=persisted} = %v, want 1", got)
	}
	if st := c2.Status(); st.Types[xdsclient.ClusterType].Version != "" || !st.Types[xdsclient.ClusterType].Persisted {
		t.Errorf("cluster status %+v: want persisted with no accepted version", st.Types[xdsclient.ClusterType])
	}

	// The control plane comes back with other config: it replaces the
	// persisted one, and the new stream asked for everything.
	srv.Set("2", map[string][]types.Resource{resourcev3.ClusterType: {cluster("b", time.Second)}, resourcev3.ListenerType: {&listenerv3.Listener{Name: "l2"}}}, "node-1")
	srv.Restart()
	// The server does not order its responses across types: wait for
	// both.
	poll.True(t, 30*time.Second, "the control plane's config replaces the persisted one", func() bool {
		l, ok := second.last()
		st := c2.Status()
		return ok && !l.Persisted && st.Source == xdsclient.SourceControlPlane &&
			st.Types[xdsclient.ClusterType].Version == "2" && st.Types[xdsclient.ListenerType].Version == "2"
	})
	if _, ok := c2.Resources(xdsclient.ClusterType)["b"]; !ok {
		t.Errorf("clusters after the control plane answered: %v, want b", c2.Resources(xdsclient.ClusterType))
	}
	if got := metricValue(t, reg, "fedmesh_xds_config_source", "control_plane"); got != 1 {
		t.Errorf("fedmesh_xds_config_source{source=control_plane} = %v, want 1", got)
	}
	for _, r := range srv.Requests() {
		if r.GetResponseNonce() == "" && r.GetVersionInfo() != "" && r.GetNode() != nil {
			// Only the first client's second stream may announce a
			// version; the restarted one never announces a persisted
			// one. The first client announced nothing before its first
			// response either.
			t.Errorf("a first request announced version %q: persisted versions must not be announced", r.GetVersionInfo())
		}
	}
}

// Bad files are refused with a reason, counted and ignored; good ones of
// other types are still served.
func TestBadPersistedFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	good, err := anypb.New(&clusterv3.Cluster{Name: "a", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cluster.pb", persisted(t, xdsclient.ClusterType, "7", good))
	write("listener.pb", []byte("\xff\xff not a protobuf"))
	reg := prometheus.NewRegistry()
	h := &updates{}
	c, _ := runClient(t, deadAddr(t), dir, h, reg, nil)
	poll.True(t, 30*time.Second, "the good file restored", func() bool { return c.Status().Source == xdsclient.SourcePersisted })
	if got := h.all(); len(got) != 1 || got[0].TypeURL != xdsclient.ClusterType {
		t.Fatalf("restored %d updates, want the clusters alone", len(got))
	}
	if got := metricValue(t, reg, "fedmesh_xds_persisted_rejected_total", "decode"); got != 1 {
		t.Errorf("rejected{reason=decode} = %v, want 1", got)
	}
	if !strings.Contains(c.Status().Restore, "restored cluster") {
		t.Errorf("status restore %q, want it to say what was restored", c.Status().Restore)
	}
}

// A check that refuses the persisted state (an expired certificate) keeps
// all of it from the handler, and the status says why.
func TestCheckRestoredRefuses(t *testing.T) {
	dir := t.TempDir()
	good, _ := anypb.New(&clusterv3.Cluster{Name: "a", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
	if err := os.WriteFile(filepath.Join(dir, "cluster.pb"), persisted(t, xdsclient.ClusterType, "7", good), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := &updates{}
	c, stop := runClient(t, deadAddr(t), dir, h, reg, func([]xdsclient.Update) error {
		return errors.New("persisted certificate expired")
	})
	poll.True(t, 30*time.Second, "restore refused", func() bool { return c.Status().Restore != "" })
	stop()
	if got := c.Status().Restore; got != "refused: persisted certificate expired" {
		t.Errorf("restore note %q", got)
	}
	if n := len(h.all()); n != 0 {
		t.Errorf("handler got %d updates, want none", n)
	}
	if got := metricValue(t, reg, "fedmesh_xds_persisted_rejected_total", "check"); got != 1 {
		t.Errorf("rejected{reason=check} = %v, want 1", got)
	}
	if c.Status().Source != xdsclient.SourceNone {
		t.Errorf("source %q, want none", c.Status().Source)
	}
}

func TestDecodePersisted(t *testing.T) {
	good, _ := anypb.New(&clusterv3.Cluster{Name: "a", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
	noName, _ := anypb.New(&clusterv3.Cluster{})
	tests := []struct {
		name, reason string
		b            []byte
	}{
		{name: "good", b: persisted(t, xdsclient.ClusterType, "1", good)},
		{name: "garbage", reason: "decode", b: []byte{0xff, 0x01, 0x02}},
		{name: "other type", reason: "type", b: persisted(t, xdsclient.ListenerType, "1")},
		{name: "no version", reason: "version", b: persisted(t, xdsclient.ClusterType, "", good)},
		{name: "resource without a name", reason: "name", b: persisted(t, xdsclient.ClusterType, "1", noName)},
		{name: "duplicate", reason: "duplicate", b: persisted(t, xdsclient.ClusterType, "1", good, good)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, reason, err := xdsclient.DecodePersisted(xdsclient.ClusterType, tt.b)
			if reason != tt.reason || (err == nil) != (tt.reason == "") {
				t.Fatalf("reason %q err %v, want reason %q", reason, err, tt.reason)
			}
			if err == nil && (!u.Persisted || u.Version != "1" || len(u.Resources) != 1) {
				t.Fatalf("update %+v", u)
			}
		})
	}
}

// FuzzDecodePersisted: any file content is refused or decoded, never a
// panic; what decodes has the asked type and a version.
func FuzzDecodePersisted(f *testing.F) {
	good, _ := anypb.New(&clusterv3.Cluster{Name: "a", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
	f.Add(persisted(f, xdsclient.ClusterType, "1", good))
	f.Add(persisted(f, xdsclient.ListenerType, "1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, reason, err := xdsclient.DecodePersisted(xdsclient.ClusterType, b)
		if err != nil {
			if reason == "" {
				t.Fatalf("error %v without a reason", err)
			}
			return
		}
		if u.TypeURL != xdsclient.ClusterType || u.Version == "" || !u.Persisted {
			t.Fatalf("decoded %+v", u)
		}
	})
}

func persisted(t testing.TB, typeURL, version string, res ...*anypb.Any) []byte {
	t.Helper()
	b, err := proto.Marshal(&discoveryv3.DiscoveryResponse{TypeUrl: typeURL, VersionInfo: version, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// metricValue is the value of the sample of name whose one label has
// value label, or -1 when there is none.
func metricValue(t *testing.T, g prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				if m.GetGauge() != nil {
					return m.GetGauge().GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}
