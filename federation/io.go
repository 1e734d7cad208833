package federation

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/catalog"
	"github.com/fedmesh/fedmesh/controlplane/store"
)

// ioRetry is how long the io worker waits after a failed write.
const ioRetry = time.Second

// ioWorker writes to the local store off Run's goroutine: persisted
// imports (newest per peer wins) and peer read grants (once each).
type ioWorker struct {
	store   Store
	timeout time.Duration
	log     *slog.Logger
	met     *metrics
	wake    chan struct{}

	mu       sync.Mutex // guards the following
	persists map[string]persistJob
	grants   map[string]bool // user -> granted
}

type persistJob struct {
	exports []catalog.Export
	state   store.ImportState
}

func newIOWorker(s Store, timeout time.Duration, log *slog.Logger, met *metrics) *ioWorker {
	return &ioWorker{
		store: s, timeout: timeout, log: log, met: met,
		wake:     make(chan struct{}, 1),
		persists: make(map[string]persistJob),
		grants:   make(map[string]bool),
	}
}

// persist queues a peer's exports for SetImports, replacing a queued one.
func (w *ioWorker) persist(peer string, exports []catalog.Export, state store.ImportState) {
	w.mu.Lock()
	w.persists[peer] = persistJob{exports: exports, state: state}
	w.mu.Unlock()
	w.poke()
}

// grant queues a read grant for a peer user unless it was granted.
func (w *ioWorker) grant(user string) {
	w.mu.Lock()
	if _, seen := w.grants[user]; seen {
		w.mu.Unlock()
		return
	}
	w.grants[user] = false
	w.mu.Unlock()
	w.poke()
}

func (w *ioWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *ioWorker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		if !w.drain(ctx) {
			t := time.NewTimer(ioRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
				w.poke()
			}
		}
	}
}

// drain does every queued write; it reports false when one failed and
// was queued again.
func (w *ioWorker) drain(ctx context.Context) bool {
	w.mu.Lock()
	jobs := w.persists
	w.persists = make(map[string]persistJob)
	var users []string
	for u, done := range w.grants {
		if !done {
			users = append(users, u)
		}
	}
	w.mu.Unlock()

	ok := true
	for peer, job := range jobs {
		wctx, cancel := context.WithTimeout(ctx, w.timeout)
		start := time.Now()
		err := w.store.SetImports(wctx, peer, job.exports, job.state)
		cancel()
		w.log.Debug("persisted imports", "peer", peer, "exports", len(job.exports), "revision", job.state.Revision, "took", time.Since(start), "err", err)
		if err != nil {
			if ctx.Err() != nil {
				return true
			}
			ok = false
			w.met.ioErrors.WithLabelValues("set_imports").Inc()
			w.log.Warn("cannot persist imports; will retry", "peer", peer, "err", err)
			w.mu.Lock()
			if _, newer := w.persists[peer]; !newer {
				w.persists[peer] = job
			}
			w.mu.Unlock()
		}
	}
	for _, u := range users {
		wctx, cancel := context.WithTimeout(ctx, w.timeout)
		err := w.store.GrantPeerRead(wctx, u)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return true
			}
			ok = false
			w.met.ioErrors.WithLabelValues("grant_peer_read").Inc()
			w.log.Warn("cannot grant a peer read access to our exports; will retry", "user", u, "err", err)
			continue
		}
		w.mu.Lock()
		w.grants[u] = true
		w.mu.Unlock()
		w.log.Info("granted a peer read access to our exports", "user", u)
	}
	return ok
}
