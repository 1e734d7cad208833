package replicate

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded etcd's loggers start a package-level flush loop
		// that never stops.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// svc builds a valid export of cluster; version tells versions apart.
func svc(cluster, name string, version int) catalog.Export {
	return catalog.Export{
		Service: catalog.Service{
			Namespace: "demo", Name: name, Type: catalog.ClusterSetIP, Cluster: cluster,
			Ports:         []catalog.Port{{Name: "http", Port: 8080, AppProtocol: catalog.AppHTTP}},
			ExportCreated: t0,
		},
		Endpoints: []catalog.Endpoint{{
			Address: "127.0.3.1", Port: 15006, PortName: "http", Ready: true, Serving: true,
			Locality:       topology.Locality{Region: "us-west", Cluster: cluster},
			ServiceAccount: "default", Workload: fmt.Sprintf("v%d", version),
		}},
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recorder keeps every snapshot and state a replicator delivers.
type recorder struct {
	mu     sync.Mutex
	snaps  []Snapshot
	states []State
}

func (r *recorder) onExports(s Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, s)
}

func (r *recorder) onState(s State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, s)
}

func (r *recorder) all() []Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Snapshot(nil), r.snaps...)
}

func (r *recorder) last() (Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return Snapshot{}, false
	}
	return r.snaps[len(r.snaps)-1], true
}

// run starts r and stops it when the test ends.
func run(t *testing.T, r *Replicator) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

// quiet discards the logs of replicators under test.
var quiet = slog.New(slog.DiscardHandler)

var exportsEqual = cmpopts.EquateEmpty()
