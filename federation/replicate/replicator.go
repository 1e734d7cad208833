package replicate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/store"
)

// Snapshot is a peer's whole export set at one revision of its etcd.
type Snapshot struct {
	// Peer is the exporting cluster.
	Peer string
	// Revision is the peer's etcd revision the set is at.
	Revision int64
	// Resync is true when the set comes from a full list rather than a
	// watched change.
	Resync bool
	// Exports are sorted by namespace, then name, one per service. The
	// slice and the exports' own slices are shared (the Replicator keeps
	// the slice as its current set) and must not be modified.
	Exports []catalog.Export
	// Changed names the services put or deleted since the previous
	// snapshot; nil with Resync, when any may have changed.
	Changed []catalog.ServiceKey
	// At is when the snapshot was taken (Config.Now).
	At time.Time
}

// State is how replication from one peer is doing.
type State struct {
	// Peer is the replicated cluster.
	Peer string
	// Connected is true while the peer's etcd answers.
	Connected bool
	// Since is when Connected last changed (for a replicator that never
	// connected, when it started).
	Since time.Time
	// LastContact is when the peer last answered (a probe or an update);
	// zero if never.
	LastContact time.Time
	// Revision is the peer revision the delivered exports are at.
	Revision int64
	// PeerRevision is the peer's etcd revision at the last probe; the
	// difference to Revision is the replication lag in revisions.
	PeerRevision int64
	// LastError is the last error seen, for humans; empty once connected.
	LastError string
	// Resyncs counts full lists.
	Resyncs int
}

// errHistoryReset stops a session whose peer etcd was replaced.
var errHistoryReset = errors.New("peer etcd history reset")

// Replicator follows one peer's exports. Run drives it; State may be
// called at any time from any goroutine.
type Replicator struct {
	cfg    Config
	log    *slog.Logger
	prefix string

	// Owned by the session goroutines, one at a time (the watch callback).
	// exports is sorted by key, one per key, and never modified once
	// delivered: every change makes a new slice, which the Snapshot
	// shares with the consumer (one copy of the peer's exports, not one
	// here and one per snapshot).
	exports []catalog.Export
	rev     int64

	// contacts counts the times the peer answered (a probe or an update);
	// Run resets its backoff after a session in which it grew.
	contacts atomic.Uint64
	// wait waits d between sessions, or until ctx ends; it reports whether
	// d passed. Tests replace it to see the backoff.
	wait func(ctx context.Context, d time.Duration) bool

	// notifyMu serializes state changes with their OnState calls, so that
	// OnState sees changes one at a time and in order.
	notifyMu sync.Mutex

	mu        sync.Mutex // guards the following
	state     State
	clusterID uint64
}

// New validates cfg and returns a Replicator; Run starts it.
func New(cfg Config) (*Replicator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Replicator{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "replicate", "cluster", cfg.Local, "peer", cfg.Peer),
		prefix: store.ExportsPrefix(cfg.Peer),
		wait:   sleepCtx,
	}
	if cfg.FromRevision > 0 {
		r.rev = cfg.FromRevision
		r.exports = sortedExports(slices.Clone(cfg.Initial))
	}
	r.state = State{Peer: cfg.Peer, Since: cfg.Now(), Revision: r.rev}
	return r, nil
}

// Peer returns the replicated cluster's name.
func (r *Replicator) Peer() string { return r.cfg.Peer }

// State returns how replication is doing.
func (r *Replicator) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Run replicates until ctx ends, then returns ctx's error. Run may be
// called once.
//
// A session that ends is restarted after a jittered exponential backoff.
// The backoff starts again from MinBackoff once the peer has answered:
// after an outage and a recovery, the next failure is a new run of
// failures, not the continuation of the old one.
func (r *Replicator) Run(ctx context.Context) error {
	bo := r.newBackOff()
	for {
		before := r.contacts.Load()
		err := r.session(ctx)
		if ctx.Err() != nil {
			r.setConnected(false, ctx.Err())
			return ctx.Err()
		}
		if r.contacts.Load() != before {
			bo.Reset()
		}
		d := bo.NextBackOff()
		r.log.Info("replication interrupted; restarting", "err", err, "rev", r.rev, "in", d)
		if !r.wait(ctx, d) {
			r.setConnected(false, ctx.Err())
			return ctx.Err()
		}
	}
}

// sleepCtx waits d, or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newDeniedBackOff retries a list the peer refused for lack of permission:
// from MinBackoff to DeniedMaxBackoff.
func (r *Replicator) newDeniedBackOff() backoff.BackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = r.cfg.MinBackoff
	bo.MaxInterval = max(r.cfg.MaxBackoff, r.cfg.DeniedMaxBackoff)
	bo.RandomizationFactor = 0.5
	bo.MaxElapsedTime = 0
	bo.Reset()
	return bo
}

func (r *Replicator) newBackOff() backoff.BackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = r.cfg.MinBackoff
	bo.MaxInterval = r.cfg.MaxBackoff
	bo.RandomizationFactor = 0.5
	bo.MaxElapsedTime = 0 // never give up: ctx ends the retries
	bo.Reset()
	return bo
}

// keepAlive is how often the connection to a peer's etcd pings it: the
// shortest gRPC allows a client (etcd's --grpc-keepalive-min-time, 5 s,
// allows it too). A ping unanswered for ProbeTimeout closes the
// connection, which marks the peer down (see probeLoop).
const keepAlive = 10 * time.Second

// session connects (unless given a client), then runs the watch and the
// probe until one fails for good or ctx ends.
func (r *Replicator) session(ctx context.Context) error {
	cli := r.cfg.Client
	if cli == nil {
		var err error
		cli, err = clientv3.New(clientv3.Config{
			Endpoints:            r.cfg.Endpoints,
			TLS:                  r.cfg.TLS,
			DialTimeout:          r.cfg.DialTimeout,
			DialKeepAliveTime:    keepAlive,
			DialKeepAliveTimeout: r.cfg.ProbeTimeout,
			// A peer's connection is idle but for its watch's events:
			// no 32 KiB read buffer of its own per peer (TLS buffers
			// the record).
			DialOptions: []grpc.DialOption{grpc.WithReadBufferSize(0)},
			Context:     ctx,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			r.count(r.cfg.Metrics.restarts(), RestartClientError)
			r.setConnected(false, err)
			return fmt.Errorf("connect to %v: %w", r.cfg.Endpoints, err)
		}
		defer cli.Close()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return store.WatchPrefix(gctx, cli, r.prefix, r.rev, r.apply, store.WatchOptions{
			Logger:     r.log,
			NewBackOff: r.newBackOff,
			// Not granted yet: the peer grants once it has proven this
			// cluster, one of up to N-1 at a time when a federation
			// forms; meanwhile ask it rarely.
			NewDeniedBackOff: r.newDeniedBackOff,
		})
	})
	g.Go(func() error { return r.probeLoop(gctx, cli) })
	err := g.Wait()
	if errors.Is(err, errHistoryReset) {
		r.count(r.cfg.Metrics.restarts(), RestartHistoryReset)
		// Nothing of the new history is applied yet: the next session's
		// probe must not hold the peer's revision against the old one.
		r.rev = 0
		r.mu.Lock()
		r.state.Revision = 0
		r.mu.Unlock()
	}
	return err
}

// probeLoop asks the peer for its revision when the session starts,
// every ProbeInterval, and at once whenever its connection comes back.
// Between probes the connection's state tells whether the peer answers:
// leaving Ready (the connection closed or refused, or its keepalive ping
// unanswered) marks the peer down at once. A probe is a read served by
// the peer's etcd (TLS, gRPC, a count of the prefix): done every two
// seconds for every peer it was most of an idle federation's CPU, and
// the keepalive pings the connection sends anyway tell the same.
func (r *Replicator) probeLoop(ctx context.Context, cli *clientv3.Client) error {
	t := time.NewTicker(r.cfg.ProbeInterval)
	defer t.Stop()
	conn := cli.ActiveConnection()
	moved := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		for s := conn.GetState(); conn.WaitForStateChange(ctx, s); s = conn.GetState() {
			select {
			case moved <- struct{}{}:
			default:
			}
		}
	})
	ready := conn.GetState() == connectivity.Ready
	probe := true
	for {
		if probe {
			probe = false
			if err := r.probe(ctx, cli); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			probe = true
		case <-moved:
			s := conn.GetState()
			switch was := ready; {
			case s == connectivity.Ready && !was:
				ready, probe = true, true
			case s != connectivity.Ready:
				ready = false
				if r.setConnected(false, fmt.Errorf("%w: connection %s", errConnLost, s)) {
					r.count(r.cfg.Metrics.restarts(), RestartDisconnected)
					r.log.Warn("peer etcd connection lost", "state", s.String())
				}
			}
		}
	}
}

// errConnLost is the State.LastError of a peer whose connection left Ready.
var errConnLost = errors.New("peer etcd connection lost")

// probe reads the count of the exports prefix: cheap, linearizable, and
// allowed by the read-only role. It returns an error only to end the
// session (history reset).
func (r *Replicator) probe(ctx context.Context, cli *clientv3.Client) error {
	// What was applied before the read: a linearizable read started after
	// a change was delivered can never return an older revision.
	applied := r.State().Revision
	pctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), r.cfg.ProbeTimeout)
	resp, err := cli.Get(pctx, r.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if m := r.cfg.Metrics; m != nil {
			m.ProbeFailures.WithLabelValues(r.cfg.Peer).Inc()
		}
		if r.setConnected(false, err) {
			r.count(r.cfg.Metrics.restarts(), RestartDisconnected)
			r.log.Warn("peer etcd does not answer", "err", err)
		}
		return nil
	}
	r.mu.Lock()
	known := r.clusterID
	r.clusterID = resp.Header.ClusterId
	r.state.PeerRevision = max(r.state.PeerRevision, resp.Header.Revision)
	r.mu.Unlock()
	if (known != 0 && known != resp.Header.ClusterId) || resp.Header.Revision < applied {
		r.log.Warn("peer etcd was replaced; listing again", "revision", resp.Header.Revision, "applied", applied)
		return fmt.Errorf("%w: revision %d below applied %d or new cluster id", errHistoryReset, resp.Header.Revision, applied)
	}
	r.contact()
	return nil
}

// apply folds one watch update into the export set and delivers it. It
// runs on the watch's goroutine.
func (r *Replicator) apply(u store.Update) error {
	var changed []catalog.ServiceKey
	if u.Resync {
		next := make([]catalog.Export, 0, len(u.Puts))
		for _, kv := range u.Puts {
			if !r.inScope(kv.Key) {
				continue
			}
			key, e, ok := r.decode(kv)
			if ok {
				next = append(next, e)
			} else if old, had := r.find(key); had && key != (catalog.ServiceKey{}) {
				next = append(next, old) // keep the last good value
			}
		}
		r.exports = sortedExports(next)
		if m := r.cfg.Metrics; m != nil {
			m.Resyncs.WithLabelValues(r.cfg.Peer).Inc()
		}
	} else {
		changed = make([]catalog.ServiceKey, 0, len(u.Puts)+len(u.Deletes))
		puts := make(map[catalog.ServiceKey]catalog.Export, len(u.Puts))
		for _, kv := range u.Puts {
			if !r.inScope(kv.Key) {
				continue
			}
			if key, e, ok := r.decode(kv); ok {
				puts[key] = e
				changed = append(changed, key)
			}
		}
		deletes := make(map[catalog.ServiceKey]bool, len(u.Deletes))
		for _, k := range u.Deletes {
			if _, key, err := store.ParseExportKey(k); err == nil && r.inScope(k) {
				deletes[key] = true
				delete(puts, key)
				changed = append(changed, key)
			}
		}
		// A new slice: the one delivered before is the consumer's too.
		next := make([]catalog.Export, 0, len(r.exports)+len(puts))
		for _, e := range r.exports {
			k := e.Service.Key()
			if p, ok := puts[k]; ok {
				next = append(next, p)
				delete(puts, k)
			} else if !deletes[k] {
				next = append(next, e)
			}
		}
		for _, e := range puts {
			next = append(next, e)
		}
		r.exports = sortedExports(next)
	}
	r.rev = u.Rev
	snap := Snapshot{Peer: r.cfg.Peer, Revision: u.Rev, Resync: u.Resync, Changed: changed, At: r.cfg.Now(), Exports: r.exports}
	r.mu.Lock()
	r.state.Revision = u.Rev
	r.state.PeerRevision = max(r.state.PeerRevision, u.Rev)
	if u.Resync {
		r.state.Resyncs++
	}
	r.mu.Unlock()
	r.contact()
	if m := r.cfg.Metrics; m != nil {
		m.Updates.WithLabelValues(r.cfg.Peer).Inc()
	}
	r.cfg.OnExports(snap)
	return nil
}

// inScope reports whether the export at key is replicated (see
// Config.Scope). A key that does not parse is in scope, so that decode
// refuses and counts it.
func (r *Replicator) inScope(key string) bool {
	if r.cfg.Scope == nil {
		return true
	}
	_, k, err := store.ParseExportKey(key)
	return err != nil || r.cfg.Scope(k)
}

// compareExports orders exports by namespace, then name.
func compareExports(a, b catalog.Export) int {
	return cmp.Or(strings.Compare(a.Service.Namespace, b.Service.Namespace), strings.Compare(a.Service.Name, b.Service.Name))
}

// sortedExports sorts es by key and keeps the last of each key.
func sortedExports(es []catalog.Export) []catalog.Export {
	slices.SortStableFunc(es, compareExports)
	out := es[:0]
	for i, e := range es {
		if i+1 < len(es) && compareExports(e, es[i+1]) == 0 {
			continue
		}
		out = append(out, e)
	}
	return slices.Clip(out)
}

// find returns the export of key in the current set.
func (r *Replicator) find(key catalog.ServiceKey) (catalog.Export, bool) {
	i, ok := slices.BinarySearchFunc(r.exports, key, func(e catalog.Export, k catalog.ServiceKey) int {
		return cmp.Or(strings.Compare(e.Service.Namespace, k.Namespace), strings.Compare(e.Service.Name, k.Name))
	})
	if !ok {
		return catalog.Export{}, false
	}
	return r.exports[i], true
}

// decode reads one key and value of the peer. A refused one is logged and
// counted; the returned key is set when at least the key parsed.
func (r *Replicator) decode(kv store.KV) (catalog.ServiceKey, catalog.Export, bool) {
	cluster, key, err := store.ParseExportKey(kv.Key)
	if err == nil && cluster != r.cfg.Peer {
		err = fmt.Errorf("%w %q: names cluster %s, not the peer", store.ErrBadKey, kv.Key, cluster)
	}
	if err != nil {
		r.refuse(ReasonBadKey, err)
		return catalog.ServiceKey{}, catalog.Export{}, false
	}
	e, err := store.DecodeExport(cluster, key, kv.Value)
	if err != nil {
		reason := ReasonBadValue
		if errors.Is(err, catalog.ErrInvalid) {
			reason = ReasonInvalid
		}
		r.refuse(reason, err)
		return key, catalog.Export{}, false
	}
	return key, e, true
}

func (r *Replicator) refuse(reason string, err error) {
	r.log.Warn("refused a value from the peer; keeping the last good one", "reason", reason, "err", err)
	if m := r.cfg.Metrics; m != nil {
		m.BadValues.WithLabelValues(r.cfg.Peer, reason).Inc()
	}
}

func (r *Replicator) contact() {
	r.contacts.Add(1)
	r.setConnected(true, nil)
}

// setConnected records whether the peer answers and reports a change to
// OnState. It returns true when the state changed.
func (r *Replicator) setConnected(connected bool, err error) bool {
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	now := r.cfg.Now()
	r.mu.Lock()
	if connected {
		r.state.LastContact = now
		r.state.LastError = ""
	} else if err != nil {
		r.state.LastError = err.Error()
	}
	changed := r.state.Connected != connected
	if changed {
		r.state.Connected = connected
		r.state.Since = now
	}
	st := r.state
	r.mu.Unlock()
	if changed && r.cfg.OnState != nil {
		r.cfg.OnState(st)
	}
	return changed
}

func (r *Replicator) count(c counterVec, reason string) {
	if c != nil {
		c.WithLabelValues(r.cfg.Peer, reason).Inc()
	}
}
