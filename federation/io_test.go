package federation

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/store"
)

// orderStore records the order of the io worker's writes. During the
// first imports write it queues one more grant, as a peer proven
// meanwhile would.
type orderStore struct {
	mu     sync.Mutex
	calls  []string
	during func()
}

var _ Store = (*orderStore)(nil)

func (s *orderStore) record(c string) {
	s.mu.Lock()
	s.calls = append(s.calls, c)
	var during func()
	if strings.HasPrefix(c, "imports") {
		during, s.during = s.during, nil
	}
	s.mu.Unlock()
	if during != nil {
		during()
	}
}

func (s *orderStore) Client() *clientv3.Client { return nil }
func (s *orderStore) ListImports(context.Context) (map[string]store.PeerImports, error) {
	return nil, nil
}
func (s *orderStore) SetImports(_ context.Context, peer string, _ []catalog.Export, _ store.ImportState) error {
	s.record("imports " + peer)
	return nil
}
func (s *orderStore) UpdateImports(_ context.Context, peer string, _ []catalog.Export, _ []catalog.ServiceKey, _ store.ImportState) error {
	s.record("imports " + peer)
	return nil
}
func (s *orderStore) DeleteImports(_ context.Context, peer string) error {
	s.record("delete " + peer)
	return nil
}
func (s *orderStore) GrantPeerRead(_ context.Context, user string) error {
	s.record("grant " + user)
	return nil
}

// TestIOWorkerGrantsFirst checks that read grants are written before
// queued imports, also a grant queued while imports are being written:
// a peer cannot read this cluster's exports until its grant is written.
func TestIOWorkerGrantsFirst(t *testing.T) {
	met, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	st := &orderStore{}
	w := newIOWorker(st, DefaultIOTimeout, slog.New(slog.DiscardHandler), met)
	st.during = func() { w.grant("late") }
	w.persist("p1", nil, nil, store.ImportState{})
	w.persist("p2", nil, nil, store.ImportState{})
	w.grant("early")
	if !w.drain(context.Background()) {
		t.Fatal("drain reported a failure")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.calls) != 4 {
		t.Fatalf("calls %q, want two grants and two imports writes", st.calls)
	}
	want := []string{"grant early", st.calls[1], "grant late", st.calls[3]}
	if diff := cmp.Diff(want, st.calls); diff != "" {
		t.Errorf("order of writes (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(st.calls[1], "imports") || !strings.HasPrefix(st.calls[3], "imports") || st.calls[1] == st.calls[3] {
		t.Errorf("calls %q: want both peers' imports written once each", st.calls)
	}
}
