package federation

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/store"
)

// ioRetry is how long the io worker waits after a failed write.
const ioRetry = time.Second

// ioWorker writes to the local store off Run's goroutine: persisted
// imports (newest per peer wins), deletions of the imports of removed
// peers, and peer read grants (once each).
type ioWorker struct {
	store   Store
	timeout time.Duration
	log     *slog.Logger
	met     *metrics
	wake    chan struct{}

	mu       sync.Mutex // guards the following
	persists map[string]persistJob
	// deletes are the peers whose imports are to be deleted; deleting
	// those being deleted now.
	deletes  map[string]bool
	deleting map[string]bool
	grants   map[string]bool // user -> granted
}

type persistJob struct {
	exports []catalog.Export
	// changed names the services to write again; nil writes all.
	changed map[catalog.ServiceKey]struct{}
	state   store.ImportState
}

func newIOWorker(s Store, timeout time.Duration, log *slog.Logger, met *metrics) *ioWorker {
	return &ioWorker{
		store: s, timeout: timeout, log: log, met: met,
		wake:     make(chan struct{}, 1),
		persists: make(map[string]persistJob),
		deletes:  make(map[string]bool),
		deleting: make(map[string]bool),
		grants:   make(map[string]bool),
	}
}

// persist queues a peer's exports to be written, replacing a queued
// write; changed names the services that changed since the last call (nil:
// any), and adds up with those of the write it replaces.
func (w *ioWorker) persist(peer string, exports []catalog.Export, changed []catalog.ServiceKey, state store.ImportState) {
	w.mu.Lock()
	job := persistJob{exports: exports, state: state}
	if w.deletes[peer] || w.deleting[peer] {
		// The peer came back after it was removed: write it whole, which
		// replaces whatever the deletion left or did not reach.
		delete(w.deletes, peer)
		changed = nil
	}
	if old, queued := w.persists[peer]; changed != nil && (!queued || old.changed != nil) {
		job.changed = make(map[catalog.ServiceKey]struct{}, len(changed)+len(old.changed))
		for k := range old.changed {
			job.changed[k] = struct{}{}
		}
		for _, k := range changed {
			job.changed[k] = struct{}{}
		}
	}
	w.persists[peer] = job
	w.mu.Unlock()
	w.poke()
}

// write persists one job: the changed services only when it can.
func (w *ioWorker) write(ctx context.Context, peer string, job persistJob) error {
	if job.changed == nil {
		return w.store.SetImports(ctx, peer, job.exports, job.state)
	}
	var puts []catalog.Export
	present := make(map[catalog.ServiceKey]bool, len(job.changed))
	for _, e := range job.exports {
		if _, ok := job.changed[e.Service.Key()]; ok {
			puts = append(puts, e)
			present[e.Service.Key()] = true
		}
	}
	var deletes []catalog.ServiceKey
	for k := range job.changed {
		if !present[k] {
			deletes = append(deletes, k)
		}
	}
	return w.store.UpdateImports(ctx, peer, puts, deletes, job.state)
}

// forget queues the deletion of everything persisted of peer, in place
// of any write queued for it.
func (w *ioWorker) forget(peer string) {
	w.mu.Lock()
	delete(w.persists, peer)
	w.deletes[peer] = true
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

// grantPending writes the read grants queued and not yet written, but
// those in failed (which it adds the failures to: they wait for the
// next drain). It reports false when one failed, and stop when ctx
// ended.
func (w *ioWorker) grantPending(ctx context.Context, failed map[string]bool) (ok, stop bool) {
	w.mu.Lock()
	var users []string
	for u, done := range w.grants {
		if !done && !failed[u] {
			users = append(users, u)
		}
	}
	w.mu.Unlock()
	ok = true
	for _, u := range users {
		wctx, cancel := context.WithTimeout(ctx, w.timeout)
		err := w.store.GrantPeerRead(wctx, u)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return true, true
			}
			ok = false
			failed[u] = true
			w.met.ioErrors.WithLabelValues("grant_peer_read").Inc()
			w.log.Warn("cannot grant a peer read access to our exports; will retry", "user", u, "err", err)
			continue
		}
		w.mu.Lock()
		w.grants[u] = true
		w.mu.Unlock()
		w.log.Info("granted a peer read access to our exports", "user", u)
	}
	return ok, false
}

// drain does every queued write; it reports false when one failed and
// was queued again.
func (w *ioWorker) drain(ctx context.Context) bool {
	w.mu.Lock()
	jobs := w.persists
	w.persists = make(map[string]persistJob)
	deletes := w.deletes
	w.deletes = make(map[string]bool)
	for peer := range deletes {
		w.deleting[peer] = true
	}
	w.mu.Unlock()

	// Grants first, and again before every imports write: a peer
	// cannot read our exports (and counts our catalog as unreachable)
	// until its grant is written, and a grant is a few small writes
	// where a burst of imports is many large ones.
	failedGrants := map[string]bool{}
	ok, stop := w.grantPending(ctx, failedGrants)
	if stop {
		return true
	}
	for peer, job := range jobs {
		if granted, stop := w.grantPending(ctx, failedGrants); stop {
			return true
		} else if !granted {
			ok = false
		}
		wctx, cancel := context.WithTimeout(ctx, w.timeout)
		start := time.Now()
		err := w.write(wctx, peer, job)
		cancel()
		w.log.Debug("persisted imports", "peer", peer, "exports", len(job.exports), "changed", len(job.changed), "revision", job.state.Revision, "took", time.Since(start), "err", err)
		if err != nil {
			if ctx.Err() != nil {
				return true
			}
			ok = false
			w.met.ioErrors.WithLabelValues("set_imports").Inc()
			w.log.Warn("cannot persist imports; will retry", "peer", peer, "err", err)
			w.mu.Lock()
			if _, newer := w.persists[peer]; w.deletes[peer] {
				// Removed meanwhile: nothing to write.
			} else if !newer {
				// Whether the failed write happened is unknown: write all.
				job.changed = nil
				w.persists[peer] = job
			} else {
				w.persists[peer] = persistJob{exports: w.persists[peer].exports, state: w.persists[peer].state}
			}
			w.mu.Unlock()
		}
	}
	// After the writes: a write taken before the peer was removed must
	// not bring its imports back.
	for peer := range deletes {
		wctx, cancel := context.WithTimeout(ctx, w.timeout)
		err := w.store.DeleteImports(wctx, peer)
		cancel()
		w.mu.Lock()
		delete(w.deleting, peer)
		_, rewritten := w.persists[peer]
		if err != nil && ctx.Err() == nil && !rewritten {
			w.deletes[peer] = true
		}
		w.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return true
			}
			ok = false
			w.met.ioErrors.WithLabelValues("delete_imports").Inc()
			w.log.Warn("cannot delete the persisted imports of a removed peer; will retry", "peer", peer, "err", err)
			continue
		}
		w.log.Info("deleted the persisted imports of a removed peer", "peer", peer)
	}
	return ok
}
