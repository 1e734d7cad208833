package filesource

import (
	"context"
	"errors"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/fedmesh/fedmesh/catalog"
)

// ErrRunning is returned by Run when the source is already running.
var ErrRunning = errors.New("file source is already running")

// maxDebounceFactor bounds how long a stream of changes can hold off a
// re-read: at most this many Debounce periods after the first change.
const maxDebounceFactor = 10

// Run reads the directory, calls update with the exports, and then watches
// the directory, calling update again whenever the exports change. It reads
// again Config.Debounce after the last change seen by the watch, and every
// Config.Rescan in any case. update is called on Run's goroutine. Run
// blocks until ctx is done and then returns nil; it returns ErrRunning if
// the source is already running.
func (s *FileSource) Run(ctx context.Context, update func([]catalog.Export)) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)

	w := s.watch()
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	if w != nil {
		defer w.Close()
		events, watchErrs = w.Events, w.Errors
	}

	var last uint64
	emit := func(initial bool) {
		s.mu.Lock()
		s.scanLocked()
		if w != nil && len(w.WatchList()) == 0 {
			// The directory was removed and is back: watch it again.
			_ = w.Add(s.cfg.Dir)
		}
		gen, exports := s.gen, []catalog.Export(nil)
		if initial || gen != last {
			exports = cloneExports(s.exports)
		}
		s.mu.Unlock()
		if initial || gen != last {
			last = gen
			s.log.Info("exports", "services", len(exports))
			update(exports)
		}
	}
	emit(true)

	rescan := time.NewTicker(s.cfg.Rescan)
	defer rescan.Stop()
	debounce := time.NewTimer(s.cfg.Debounce)
	debounce.Stop()
	defer debounce.Stop()
	var pendingSince time.Time // zero when no re-read is pending
	poke := func() {
		now := time.Now()
		if pendingSince.IsZero() {
			pendingSince = now
		} else if now.Sub(pendingSince) >= maxDebounceFactor*s.cfg.Debounce {
			return // let the armed timer fire
		}
		debounce.Reset(s.cfg.Debounce)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			// Any change can matter, even to a hidden name: a mounted
			// ConfigMap swaps a hidden ..data link under visible names.
			poke()
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			s.log.Warn("directory watch", "err", err)
			poke() // events may have been lost
		case <-debounce.C:
			pendingSince = time.Time{}
			emit(false)
		case <-rescan.C:
			emit(false)
		}
	}
}

// watch starts watching the directory, or returns nil (the periodic rescan
// then sees changes) when the platform cannot watch it.
func (s *FileSource) watch() *fsnotify.Watcher {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Warn("cannot watch directory; relying on the periodic rescan", "err", err, "rescan", s.cfg.Rescan)
		return nil
	}
	if err := w.Add(s.cfg.Dir); err != nil {
		s.log.Warn("cannot watch directory; relying on the periodic rescan", "err", err, "rescan", s.cfg.Rescan)
		_ = w.Close()
		return nil
	}
	return w
}
