package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cenkalti/backoff/v4"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// KV is one stored key and value as a watch delivers it.
type KV struct {
	Key   string
	Value []byte
	// ModRevision is the revision of the key's last change.
	ModRevision int64
}

// Update is what a watch delivers: either a full resync or the changes of
// one revision.
//
// With Resync, Puts holds every key of the prefix at Rev and Deletes is
// empty: the consumer replaces its whole state. Without it, Puts and
// Deletes are the changes of exactly one revision Rev (one transaction), so
// a consumer applying an Update at a time never holds half a transaction;
// no key appears twice in one Update.
type Update struct {
	Resync  bool
	Rev     int64
	Puts    []KV
	Deletes []string
}

// WatchOptions tune WatchPrefix. The zero value works.
type WatchOptions struct {
	// Logger receives restarts (at info level) and re-lists; default
	// slog.Default().
	Logger *slog.Logger
	// Metrics counts restarts and re-lists; nil counts nothing.
	Metrics *Metrics
	// NewBackOff makes the retry policy of one run of failures; default
	// exponential from 100ms to 10s with ±50% jitter, without end.
	NewBackOff func() backoff.BackOff
	// NewDeniedBackOff makes the retry policy while the etcd refuses the
	// list for lack of permission (a peer that has not granted this
	// cluster read access yet); default NewBackOff. A peer meeting
	// hundreds of clusters at once grants them one by one: retrying as
	// fast as after an outage makes every one of them ask it every few
	// seconds meanwhile.
	NewDeniedBackOff func() backoff.BackOff
}

// ErrWatchStopped wraps an error returned by the watch's callback.
var ErrWatchStopped = errors.New("watch stopped by its consumer")

// WatchPrefix follows every key under prefix in the etcd of cli (this
// cluster's, or a peer's over mTLS), calling fn, from one goroutine, with
// each Update in revision order, until ctx ends or fn returns an error.
//
// fromRev is the last revision the consumer already holds: 0 starts with a
// Resync of the prefix; a positive fromRev resumes with the changes after
// it. When that history was compacted, or is compacted while the watch
// runs, the prefix is listed again and delivered as a Resync, so that the
// consumer replaces its state and neither loses nor repeats a change. Other
// errors (a lost connection, a member without a leader: the watch requires
// one) restart the watch from the last delivered revision after a jittered,
// capped backoff.
//
// It returns ctx.Err() when ctx ends, or fn's error wrapped in
// ErrWatchStopped.
func WatchPrefix(ctx context.Context, cli *clientv3.Client, prefix string, fromRev int64, fn func(Update) error, opts WatchOptions) error {
	w := &watcher{cli: cli, prefix: prefix, fn: fn, opts: opts, rev: fromRev}
	if w.opts.Logger == nil {
		w.opts.Logger = slog.Default()
	}
	w.opts.Logger = w.opts.Logger.With("component", "store-watch", "prefix", prefix)
	if w.opts.NewBackOff == nil {
		w.opts.NewBackOff = func() backoff.BackOff { return newBackoff() }
	}
	if w.opts.NewDeniedBackOff == nil {
		w.opts.NewDeniedBackOff = w.opts.NewBackOff
	}
	return w.run(ctx)
}

// Watch is WatchPrefix on the store's own etcd, counted in its metrics.
func (s *Store) Watch(ctx context.Context, prefix string, fromRev int64, fn func(Update) error) error {
	return WatchPrefix(ctx, s.cli, prefix, fromRev, fn, WatchOptions{Logger: s.log, Metrics: s.metrics})
}

type watcher struct {
	cli    *clientv3.Client
	prefix string
	fn     func(Update) error
	opts   WatchOptions
	// rev is the last revision delivered to fn; 0 means a list is needed.
	rev int64
}

// errConsumer marks fn's errors so that run returns them.
type errConsumer struct{ err error }

func (e *errConsumer) Error() string { return e.err.Error() }

func (w *watcher) run(ctx context.Context) error {
	bo, denied := w.opts.NewBackOff(), w.opts.NewDeniedBackOff()
	for {
		progressed, reason, err := w.once(ctx)
		var ce *errConsumer
		switch {
		case errors.As(err, &ce):
			return fmt.Errorf("%w: %w", ErrWatchStopped, ce.err)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if reason == "compacted" {
			// Not a failure: list again at once.
			if w.opts.Metrics != nil {
				w.opts.Metrics.WatchRelists.Inc()
			}
			w.opts.Logger.Info("watched revision compacted; listing again", "rev", w.rev, "err", err)
			w.rev = 0
			bo.Reset()
			continue
		}
		if progressed {
			bo.Reset()
			denied.Reset()
		}
		if w.opts.Metrics != nil {
			w.opts.Metrics.WatchRestarts.WithLabelValues(reason).Inc()
		}
		next := bo.NextBackOff
		if reason == reasonDenied {
			next = denied.NextBackOff
		}
		d := next()
		if d == backoff.Stop {
			return fmt.Errorf("watch %s: giving up: %w", w.prefix, err)
		}
		w.opts.Logger.Info("watch interrupted; restarting", "reason", reason, "rev", w.rev, "in", d, "err", err)
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
	}
}

// reasonDenied is the restart reason of a list the etcd refused for lack
// of permission.
const reasonDenied = "denied"

// once lists when needed, then watches until an error. It reports whether
// anything was delivered and why it stopped.
func (w *watcher) once(ctx context.Context) (progressed bool, reason string, err error) {
	if w.rev <= 0 {
		resp, err := w.cli.Get(ctx, w.prefix, clientv3.WithPrefix())
		if errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, rpctypes.ErrUserNotFound) {
			return false, reasonDenied, err
		}
		if err != nil {
			return false, "list_error", err
		}
		u := Update{Resync: true, Rev: resp.Header.Revision, Puts: make([]KV, 0, len(resp.Kvs))}
		for _, kv := range resp.Kvs {
			u.Puts = append(u.Puts, toKV(kv))
		}
		if err := w.fn(u); err != nil {
			return true, "", &errConsumer{err}
		}
		w.rev = u.Rev
		progressed = true
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.cli.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))
	for wr := range wch {
		if wr.CompactRevision != 0 || errors.Is(wr.Err(), rpctypes.ErrCompacted) {
			return progressed, "compacted", wr.Err()
		}
		if err := wr.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrNoLeader) {
				return progressed, "no_leader", err
			}
			return progressed, "watch_error", err
		}
		if err := w.deliver(wr.Events); err != nil {
			return true, "", err
		}
		if len(wr.Events) > 0 {
			progressed = true
		}
	}
	if ctx.Err() != nil {
		return progressed, "", ctx.Err()
	}
	return progressed, "closed", errors.New("watch channel closed")
}

// deliver splits events into one Update per revision. etcd never splits a
// revision's events across watch responses (fragmenting is off).
func (w *watcher) deliver(events []*clientv3.Event) error {
	var u Update
	flush := func() error {
		if u.Rev == 0 {
			return nil
		}
		if err := w.fn(u); err != nil {
			return &errConsumer{err}
		}
		w.rev = u.Rev
		u = Update{}
		return nil
	}
	for _, ev := range events {
		if ev.Kv.ModRevision != u.Rev {
			if err := flush(); err != nil {
				return err
			}
			u.Rev = ev.Kv.ModRevision
		}
		switch ev.Type {
		case mvccpb.PUT:
			u.Puts = append(u.Puts, toKV(ev.Kv))
		case mvccpb.DELETE:
			u.Deletes = append(u.Deletes, string(ev.Kv.Key))
		}
	}
	return flush()
}

func toKV(kv *mvccpb.KeyValue) KV {
	return KV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}
}
