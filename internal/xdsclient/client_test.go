package xdsclient_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"context"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsclient/xdstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func cluster(name string, timeout time.Duration) types.Resource {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		ConnectTimeout:       durationpb.New(timeout),
	}
}

// recorder remembers the cluster names of every accepted update and
// rejects clusters named "reject-me".
type recorder struct {
	mu       sync.Mutex
	versions []string
	names    map[string][]string
}

func (r *recorder) OnUpdate(u xdsclient.Update) error {
	if _, bad := u.Resources["reject-me"]; bad {
		return errRejectMe
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions = append(r.versions, u.Version)
	var names []string
	for n := range u.Resources {
		names = append(names, n)
	}
	r.names[u.Version] = names
	return nil
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.versions) == 0 {
		return ""
	}
	return r.versions[len(r.versions)-1]
}

type rejectErr struct{}

func (rejectErr) Error() string { return "cluster reject-me is not allowed here" }

var errRejectMe = rejectErr{}

func startClient(t *testing.T, addr string, h xdsclient.Handler, reg prometheus.Registerer) *xdsclient.Client {
	t.Helper()
	c, err := xdsclient.New(xdsclient.Config{
		Target:         addr,
		Insecure:       true,
		Node:           &corev3.Node{Id: "node-1"},
		Types:          []string{xdsclient.ClusterType},
		Handler:        h,
		InitialBackoff: 10 * time.Millisecond,
		MaxBackoff:     50 * time.Millisecond,
		SotW:           true, // delta_test.go tests the delta protocol
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// nackFor returns the error detail of the server's last request carrying
// that nonce-less version and an error, or "".
func lastNACK(s *xdstest.Server) (version, detail string) {
	for _, r := range s.Requests() {
		if r.GetErrorDetail() != nil {
			version, detail = r.GetVersionInfo(), r.GetErrorDetail().GetMessage()
		}
	}
	return version, detail
}

func acked(s *xdstest.Server, version string) bool {
	for _, r := range s.Requests() {
		if r.GetVersionInfo() == version && r.GetResponseNonce() != "" && r.GetErrorDetail() == nil {
			return true
		}
	}
	return false
}

func TestACKNACKAndLastGood(t *testing.T) {
	srv := xdstest.New(t, nil)
	srv.Set("1", map[string][]types.Resource{resourcev3.ClusterType: {cluster("a", time.Second)}}, "node-1")
	rec := &recorder{names: map[string][]string{}}
	reg := prometheus.NewPedanticRegistry()
	c := startClient(t, srv.Addr(), rec, reg)

	poll.True(t, 30*time.Second, "ack of version 1", func() bool { return acked(srv, "1") })

	tests := []struct {
		name       string
		res        []types.Resource
		wantDetail string
		reason     string
	}{
		{name: "proto validation", res: []types.Resource{cluster("a", -time.Second)}, wantDetail: `cluster "a": invalid Cluster.ConnectTimeout`, reason: "invalid"},
		{name: "missing name", res: []types.Resource{cluster("", time.Second)}, wantDetail: "has no name", reason: "name"},
		{name: "handler rejects", res: []types.Resource{cluster("reject-me", time.Second)}, wantDetail: "cluster reject-me is not allowed here", reason: "rejected"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := "bad-" + string(rune('a'+i))
			srv.Set(v, map[string][]types.Resource{resourcev3.ClusterType: tt.res}, "node-1")
			poll.True(t, 30*time.Second, "nack", func() bool {
				_, d := lastNACK(srv)
				return strings.Contains(d, tt.wantDetail)
			})
			ver, _ := lastNACK(srv)
			if ver != "1" {
				t.Errorf("NACK carried version %q, want the last good %q", ver, "1")
			}
			if got := rec.last(); got != "1" {
				t.Errorf("handler's last version = %q, want 1", got)
			}
			if diff := cmp.Diff(1, len(c.Resources(xdsclient.ClusterType))); diff != "" {
				t.Errorf("last good resources (-want +got):\n%s", diff)
			}
			if _, ok := c.Resources(xdsclient.ClusterType)["a"]; !ok {
				t.Errorf("last good cluster a is gone")
			}
			if got := nackCount(t, reg, tt.reason); got < 1 {
				t.Errorf("nack counter for reason %q = %v, want >= 1", tt.reason, got)
			}
			if st := c.Status().Types[xdsclient.ClusterType]; st.Version != "1" || st.LastError == "" {
				t.Errorf("status = %+v, want version 1 and a last error", st)
			}
		})
	}

	// A good version after bad ones is applied.
	srv.Set("2", map[string][]types.Resource{resourcev3.ClusterType: {cluster("a", time.Second), cluster("b", time.Second)}}, "node-1")
	poll.True(t, 30*time.Second, "ack of version 2", func() bool { return acked(srv, "2") })
	if got := rec.last(); got != "2" {
		t.Fatalf("handler's last version = %q, want 2", got)
	}
}

func nackCount(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != "fedmesh_xds_responses_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["result"] == "nack" && labels["reason"] == reason {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func TestReconnectKeepsLastGood(t *testing.T) {
	srv := xdstest.New(t, nil)
	srv.Set("1", map[string][]types.Resource{resourcev3.ClusterType: {cluster("a", time.Second)}}, "node-1")
	rec := &recorder{names: map[string][]string{}}
	c := startClient(t, srv.Addr(), rec, nil)
	poll.True(t, 30*time.Second, "ack of version 1", func() bool { return acked(srv, "1") })

	srv.Stop()
	poll.True(t, 30*time.Second, "disconnect noticed", func() bool { return !c.Status().Connected })
	if _, ok := c.Resources(xdsclient.ClusterType)["a"]; !ok {
		t.Fatal("last good cluster dropped while the control plane is away")
	}

	srv.Restart()
	// The restarted server has nothing newer than version 1, so it
	// answers nothing; the stream is still up and must say so.
	poll.True(t, 30*time.Second, "connected again without a response", func() bool { return c.Status().Connected })
	srv.Set("3", map[string][]types.Resource{resourcev3.ClusterType: {cluster("c", time.Second)}}, "node-1")
	poll.True(t, 30*time.Second, "version 3 after reconnect", func() bool { return rec.last() == "3" })
	// The new stream announced the version it already had.
	resumed := false
	for _, r := range srv.Requests() {
		if r.GetResponseNonce() == "" && r.GetVersionInfo() == "1" {
			resumed = true
		}
	}
	if !resumed {
		t.Error("reconnected stream did not announce the last accepted version 1")
	}
}

func TestNewValidates(t *testing.T) {
	h := xdsclient.HandlerFunc(func(xdsclient.Update) error { return nil })
	node := &corev3.Node{Id: "n"}
	tests := []struct {
		name string
		cfg  xdsclient.Config
		want string
	}{
		{name: "no target", cfg: xdsclient.Config{Insecure: true, Node: node, Handler: h}, want: "target is required"},
		{name: "no credentials", cfg: xdsclient.Config{Target: "x:1", Node: node, Handler: h}, want: "credentials are required"},
		{name: "no node", cfg: xdsclient.Config{Target: "x:1", Insecure: true, Handler: h}, want: "node with an id"},
		{name: "no handler", cfg: xdsclient.Config{Target: "x:1", Insecure: true, Node: node}, want: "handler is required"},
		{name: "bad type", cfg: xdsclient.Config{Target: "x:1", Insecure: true, Node: node, Handler: h, Types: []string{"foo"}}, want: "unsupported type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := xdsclient.New(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// A token file renewed on disk (a projected ServiceAccount token) is read
// again for every new stream: the control plane sees the new token after a
// reconnect, and an unreadable file fails only that attempt.
func TestTokenFileReadAtEveryStream(t *testing.T) {
	srv := xdstest.New(t, nil)
	srv.Set("1", map[string][]types.Resource{resourcev3.ClusterType: {cluster("a", time.Second)}}, "node-1")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := xdsclient.New(xdsclient.Config{
		Target:         srv.Addr(),
		Insecure:       true,
		Node:           &corev3.Node{Id: "node-1"},
		TokenFile:      tokenFile,
		Types:          []string{xdsclient.ClusterType},
		Handler:        &recorder{names: map[string][]string{}},
		InitialBackoff: 10 * time.Millisecond,
		MaxBackoff:     50 * time.Millisecond,
		SotW:           true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	sentToken := func(want string) func() bool {
		return func() bool {
			for _, r := range srv.Requests() {
				if r.GetNode().GetMetadata().GetFields()[naming.MetaToken].GetStringValue() == want {
					return true
				}
			}
			return false
		}
	}
	poll.True(t, 30*time.Second, "the first token sent", sentToken("first"))

	srv.Stop()
	poll.True(t, 30*time.Second, "disconnect noticed", func() bool { return !c.Status().Connected })
	if err := os.WriteFile(tokenFile, []byte("second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	poll.True(t, 30*time.Second, "the renewed token sent after the reconnect", sentToken("second"))
}
