package federation

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation/fence"
	"github.com/fedmesh/fedmesh/federation/gwprobe"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/merge"
	"github.com/fedmesh/fedmesh/federation/replicate"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/topology"
)

// ErrNotRunning is returned by Status when Run is not running.
var ErrNotRunning = errors.New("federation is not running")

// Federation is one control plane's view of the federation. Run drives
// it; View, Subscribe, Status and Handler may be used from any goroutine.
type Federation struct {
	cfg Config
	// proofSlots holds a token per proof running (see maxProofs).
	proofSlots chan struct{}
	// scope is Config.ImportScope as a set; nil imports everything.
	scope map[catalog.ServiceKey]bool
	log   *slog.Logger
	met   *metrics
	io    *ioWorker
	// prober probes peers' gateways; nil without Config.ProbeBundle.
	prober *gwprobe.Prober

	view      atomic.Pointer[catalog.View]
	started   atomic.Bool
	wake      chan struct{} // cap 1: a replicator has news in mail
	mail      mailbox
	trust     trustMail
	statusReq chan chan Status
	done      chan struct{} // closed when Run returns

	subMu   sync.Mutex // guards the following
	subs    map[uint64]chan *catalog.View
	nextSub uint64
	closed  bool

	// Owned by Run's goroutine.
	merger    *merge.Merger
	peers     map[string]*peer
	local     replicate.Snapshot
	viewRev   uint64
	dirty     bool
	pendingAt time.Time // when the oldest change not yet in a view arrived
	// targetsDirty is set when a peer's exports or gateway changed, so
	// the prober's targets are computed again.
	targetsDirty bool
	gen          uint64
	startedAt    time.Time
	// candidates are the gossip members not trusted (yet), by name.
	candidates map[string]*candidate
	// refused are the exports whose producer policies were refused, by
	// cluster and service (see checkPolicies).
	refused map[string]map[catalog.ServiceKey]RefusedPolicies
}

// peer is what the federation knows of one peer cluster.
type peer struct {
	name string
	// member is the last gossip state seen; nil before the first.
	member *membership.Member
	// exports are the peer's exports at revision, as replicated or
	// persisted; lastSync is when they were last confirmed.
	exports  []catalog.Export
	revision int64
	lastSync time.Time
	// persisted is what the peer's import state said at start.
	persisted topology.Locality
	gateway   string
	rtt       time.Duration
	rep       *runningReplicator
	// downSince is when the peer became unreachable for lack of a
	// replicator (the start of Run, for a persisted peer).
	downSince time.Time
	fenced    bool
	reason    string // why it is fenced; empty when it is not
	// verdict is the last fencing decision, fenced or not, for Status.
	verdict fence.Verdict
	// proven are the member instances (replicas of the cluster's control
	// plane) that proved the control plane identity of this cluster, with
	// their member names, and identity that ID; empty until a proof in
	// this run (a peer known only from persisted imports).
	proven   map[proofKey]string
	identity string
	// revCatalog is the catalog address revision was read from: each
	// replica of a peer serves its own store, whose revisions mean
	// nothing to another's. Empty when unknown (persisted by an older
	// version): the revision is then trusted.
	revCatalog string
}

// runningReplicator is a replicator and how to stop it.
type runningReplicator struct {
	r      *replicate.Replicator
	addr   string
	gen    uint64
	cancel context.CancelFunc
	done   chan struct{}
}

// mailbox holds the newest snapshot of each cluster until Run takes it.
type mailbox struct {
	mu    sync.Mutex // guards the following
	snaps map[string]mail
}

type mail struct {
	gen   uint64
	snap  replicate.Snapshot
	first time.Time // arrival of the oldest snapshot this one replaced
}

// New validates cfg and returns a Federation; Run starts it.
func New(cfg Config) (*Federation, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "federation", "cluster", cfg.Cluster)
	f := &Federation{
		cfg:       cfg,
		log:       log,
		met:       met,
		wake:      make(chan struct{}, 1),
		statusReq: make(chan chan Status),
		done:      make(chan struct{}),
		subs:      make(map[uint64]chan *catalog.View),
		peers:     make(map[string]*peer),
		merger:    merge.NewMerger(cfg.Cluster),

		candidates: make(map[string]*candidate),
		refused:    make(map[string]map[catalog.ServiceKey]RefusedPolicies),
	}
	if len(cfg.ImportScope) > 0 {
		f.scope = make(map[catalog.ServiceKey]bool, len(cfg.ImportScope))
		for _, k := range cfg.ImportScope {
			f.scope[k] = true
		}
	}
	f.proofSlots = make(chan struct{}, maxProofs)
	f.mail.snaps = make(map[string]mail)
	f.trust.refused = make(map[string]uint64)
	f.io = newIOWorker(cfg.Store, cfg.IOTimeout, log, met)
	if cfg.ProbeBundle != nil {
		f.prober, err = gwprobe.New(gwprobe.Config{
			Bundle:      cfg.ProbeBundle,
			Certificate: cfg.ProbeCertificate,
			Interval:    cfg.GatewayProbeInterval,
			Timeout:     cfg.GatewayProbeTimeout,
			Dial:        probeDialer(cfg.GatewayAddress),
			OnRound:     f.poke,
			Now:         cfg.Now,
			Logger:      log,
		}, cfg.Registerer)
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// View returns the last published view, or nil before the first.
func (f *Federation) View() *catalog.View { return f.view.Load() }

// Subscribe returns a channel that receives every new view; views that
// arrive while one is pending replace it, so a slow reader gets the newest.
// The current view, if any, is pending at once. The channel is closed by
// cancel and when Run returns.
func (f *Federation) Subscribe() (<-chan *catalog.View, func()) {
	ch := make(chan *catalog.View, 1)
	f.subMu.Lock()
	defer f.subMu.Unlock()
	if f.closed {
		close(ch)
		return ch, func() {}
	}
	if v := f.view.Load(); v != nil {
		ch <- v
	}
	id := f.nextSub
	f.nextSub++
	f.subs[id] = ch
	return ch, func() {
		f.subMu.Lock()
		defer f.subMu.Unlock()
		if c, ok := f.subs[id]; ok {
			delete(f.subs, id)
			close(c)
		}
	}
}

// Run loads the persisted imports and publishes them, then follows this
// cluster's exports, membership and every peer's exports until ctx ends.
// It stops every replicator before it returns ctx's error. Run may be
// called once.
func (f *Federation) Run(ctx context.Context) error {
	if !f.started.CompareAndSwap(false, true) {
		return errors.New("federation: Run called twice")
	}
	defer close(f.done)
	defer f.closeSubs()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	f.startedAt = f.cfg.Now()
	f.loadImports(ctx)
	f.publish()

	wg.Go(func() { f.io.run(ctx) })
	if f.prober != nil {
		f.targetsDirty = true
		wg.Go(func() { _ = f.prober.Run(ctx) })
	}
	if err := f.startLocal(ctx, &wg); err != nil {
		return err
	}
	memberCh, unsubscribe := f.cfg.Membership.Subscribe()
	defer unsubscribe()
	ticker := time.NewTicker(f.cfg.tickInterval())
	defer ticker.Stop()
	var debounce <-chan time.Time
	ticks := 0
	for {
		f.updateProbeTargets()
		f.evaluateFencing()
		if f.dirty && debounce == nil {
			if f.cfg.Debounce < 0 {
				f.publish()
			} else {
				debounce = time.After(f.cfg.Debounce)
			}
		}
		select {
		case <-ctx.Done():
			f.stopAll()
			return ctx.Err()
		case _, ok := <-memberCh:
			if !ok {
				memberCh = nil
				continue
			}
			f.syncMembers(ctx, &wg)
		case <-f.wake:
			f.takeTrust(ctx, &wg)
			f.takeMail()
		case <-ticker.C:
			// Membership changes wake memberCh; what changes without an
			// event (RTT) is read every memberRefreshTicks: reading every
			// member every tick was O(N) per control plane per second
			// for nothing.
			if ticks++; ticks%memberRefreshTicks == 0 {
				f.syncMembers(ctx, &wg)
			}
		case <-debounce:
			debounce = nil
			f.publish()
		case reply := <-f.statusReq:
			reply <- f.status()
		}
	}
}

// scoped keeps the exports of the import scope (all without one):
// imports persisted before the scope was set are not loaded.
func (f *Federation) scoped(exports []catalog.Export) []catalog.Export {
	if f.scope == nil {
		return exports
	}
	return slices.DeleteFunc(exports, func(e catalog.Export) bool { return !f.scope[e.Service.Key()] })
}

// memberRefreshTicks is how many ticks pass between reads of the
// membership that no gossip event asked for.
const memberRefreshTicks = 10

// loadImports restores what was persisted of every peer.
func (f *Federation) loadImports(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, f.cfg.IOTimeout)
	defer cancel()
	imports, err := f.cfg.Store.ListImports(lctx)
	if err != nil {
		f.met.ioErrors.WithLabelValues("list_imports").Inc()
		f.log.Warn("cannot load persisted imports; starting without them", "err", err)
		return
	}
	for name, pi := range imports {
		if name == f.cfg.Cluster {
			continue
		}
		p := f.peerFor(name)
		p.exports = f.checkPolicies(name, f.scoped(pi.Exports), nil)
		p.revision = pi.State.Revision
		p.lastSync = pi.State.LastSync
		p.persisted = pi.State.Locality
		p.gateway = pi.State.GatewayAddress
		p.revCatalog = pi.State.Catalog
		f.merger.SetExports(name, p.exports, nil)
		f.targetsDirty = true
		f.log.Info("loaded persisted imports", "peer", name, "exports", len(pi.Exports), "revision", pi.State.Revision)
	}
}

func (f *Federation) peerFor(name string) *peer {
	p, ok := f.peers[name]
	if !ok {
		p = &peer{name: name, downSince: f.cfg.Now()}
		f.peers[name] = p
	}
	return p
}

// startLocal follows this cluster's own exports in the local store.
func (f *Federation) startLocal(ctx context.Context, wg *sync.WaitGroup) error {
	rc := f.replicateConfig(f.cfg.Cluster)
	rc.Client = f.cfg.Store.Client()
	rc.OnExports = func(s replicate.Snapshot) { f.post(f.cfg.Cluster, 0, s) }
	r, err := replicate.New(rc)
	if err != nil {
		return err
	}
	wg.Go(func() { _ = r.Run(ctx) })
	return nil
}

// replicateConfig is what every replicator of this federation shares,
// for peer; the caller adds where to read and what to do with it.
func (f *Federation) replicateConfig(peer string) replicate.Config {
	return replicate.Config{
		Local:         f.cfg.Cluster,
		Peer:          peer,
		ProbeInterval: f.cfg.ProbeInterval,
		ProbeTimeout:  f.cfg.ProbeTimeout,
		DialTimeout:   f.cfg.DialTimeout,
		MinBackoff:    f.cfg.MinBackoff,
		MaxBackoff:    f.cfg.MaxBackoff,
		Now:           f.cfg.Now,
		Logger:        f.cfg.Logger,
		Metrics:       f.met.replicate,
	}
}

// post leaves a snapshot for Run and wakes it; it never blocks.
func (f *Federation) post(cluster string, gen uint64, s replicate.Snapshot) {
	f.mail.mu.Lock()
	m := mail{gen: gen, snap: s, first: s.At}
	if old, ok := f.mail.snaps[cluster]; ok && old.gen == gen {
		// Run has not taken the older snapshot: this one replaces it, so
		// its changes add up.
		m.first = old.first
		if old.snap.Changed == nil || s.Changed == nil {
			m.snap.Changed = nil
		} else {
			m.snap.Changed = append(slices.Clone(old.snap.Changed), s.Changed...)
		}
	}
	f.mail.snaps[cluster] = m
	f.mail.mu.Unlock()
	f.poke()
}

func (f *Federation) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// takeMail applies the snapshots replicators left.
func (f *Federation) takeMail() {
	f.mail.mu.Lock()
	snaps := f.mail.snaps
	f.mail.snaps = make(map[string]mail, len(snaps))
	f.mail.mu.Unlock()
	for cluster, m := range snaps {
		if cluster == f.cfg.Cluster {
			m.snap.Exports = f.checkPolicies(cluster, m.snap.Exports, m.snap.Changed)
			f.local = m.snap
			f.merger.SetExports(cluster, m.snap.Exports, m.snap.Changed)
			f.markDirty(m.first)
			continue
		}
		p, ok := f.peers[cluster]
		if !ok || p.rep == nil || p.rep.gen != m.gen {
			continue // from a replicator since replaced
		}
		p.exports = f.checkPolicies(cluster, m.snap.Exports, m.snap.Changed)
		p.revision = m.snap.Revision
		p.revCatalog = p.rep.addr
		p.lastSync = m.snap.At
		f.merger.SetExports(cluster, p.exports, m.snap.Changed)
		f.markDirty(m.first)
		f.targetsDirty = true
		f.io.persist(p.name, p.exports, m.snap.Changed, f.importState(p))
	}
}

func (f *Federation) markDirty(at time.Time) {
	if !at.IsZero() && (f.pendingAt.IsZero() || at.Before(f.pendingAt)) {
		f.pendingAt = at
	}
	f.dirty = true
}

// syncMembers follows gossip: peer info, replicators, grants, RTT, and
// peers that left or were forgotten. A peer cluster may run several
// control plane replicas, each its own gossip member (CLUSTER.REPLICA):
// they are one peer. Only a member that proved the control plane
// identity of its cluster (see package proof) is trusted: the others get
// a proof loop and nothing else. The peer follows one trusted replica
// (see syncCluster).
func (f *Federation) syncMembers(ctx context.Context, wg *sync.WaitGroup) {
	inGossip := make(map[string]bool)
	byCluster := make(map[string][]membership.Member)
	for _, m := range f.cfg.Membership.Members() {
		if m.Cluster == f.cfg.Cluster {
			continue // this control plane, or another replica of it
		}
		inGossip[m.Name] = true
		byCluster[m.Cluster] = append(byCluster[m.Cluster], m)
	}
	for _, cluster := range slices.Sorted(maps.Keys(byCluster)) {
		f.syncCluster(ctx, wg, cluster, byCluster[cluster])
	}
	for name := range f.candidates {
		if !inGossip[name] {
			f.dropCandidate(name)
		}
	}
	// A member forgotten here that gossip no longer knows (reaped, or
	// known only from persisted imports) has nobody to report it left.
	for _, name := range f.cfg.Membership.Forgotten() {
		cluster, _, _ := membership.SplitMemberName(name)
		if p, ok := f.peers[cluster]; ok && len(byCluster[cluster]) == 0 {
			f.removePeer(p, RemovedForgotten)
		}
	}
	f.countPending()
}

// syncCluster follows the gossip members of one peer cluster: one per
// control plane replica. Members not proven get a proof loop; the peer
// follows the best proven replica (alive first, the one replicated now
// first among equals), with its status: alive while any proven replica
// is. It leaves when every replica has left.
func (f *Federation) syncCluster(ctx context.Context, wg *sync.WaitGroup, cluster string, members []membership.Member) {
	p := f.peers[cluster]
	var trusted []membership.Member
	leftTrusted, allLeft := false, true
	current := make(map[proofKey]bool)
	for _, m := range members {
		proven := p != nil && p.proven[keyOf(m)] != ""
		if m.Status == membership.StatusLeft {
			// It left on purpose (or was forgotten): serf keeps it as
			// left for a while, but it is no longer a replica.
			f.dropCandidate(m.Name)
			leftTrusted = leftTrusted || proven
			continue
		}
		allLeft = false
		current[keyOf(m)] = true
		if proven {
			f.dropCandidate(m.Name)
			trusted = append(trusted, m)
			continue
		}
		wasTrusted := p != nil && slices.Contains(slices.Collect(maps.Values(p.proven)), m.Name)
		f.wantProof(ctx, wg, m, wasTrusted)
	}
	if allLeft {
		// An instance that never proved itself removes nobody, except
		// a peer not proven in this run (known from persisted imports).
		if p != nil && (leftTrusted || len(p.proven) == 0) {
			f.removePeer(p, RemovedLeft)
		}
		return
	}
	if p == nil {
		return
	}
	for k := range p.proven {
		if !current[k] {
			delete(p.proven, k) // a replica gone, restarted or moved
		}
	}
	if len(trusted) == 0 {
		f.untrust(p, "no proven replica of the member in gossip: a new instance or address")
		return
	}
	f.applyMember(ctx, wg, p, f.pickReplica(p, trusted))
}

// pickReplica chooses the replica a peer follows among its proven
// members: the best status (alive, leaving, failed), then the one
// replicated now, then the first by name, so the choice is stable.
func (f *Federation) pickReplica(p *peer, trusted []membership.Member) membership.Member {
	rank := func(s membership.Status) int {
		switch s {
		case membership.StatusAlive:
			return 0
		case membership.StatusLeaving:
			return 1
		}
		return 2
	}
	best := trusted[0]
	better := func(m membership.Member) bool {
		if rank(m.Status) != rank(best.Status) {
			return rank(m.Status) < rank(best.Status)
		}
		if p.rep != nil && (m.CatalogAddr == p.rep.addr) != (best.CatalogAddr == p.rep.addr) {
			return m.CatalogAddr == p.rep.addr
		}
		return m.Name < best.Name
	}
	for _, m := range trusted[1:] {
		if better(m) {
			best = m
		}
	}
	return best
}

// applyMember follows the gossip state of a trusted member: locality,
// gateway, status and RTT, its replicator and its read grant.
func (f *Federation) applyMember(ctx context.Context, wg *sync.WaitGroup, p *peer, m membership.Member) {
	if old := p.member; old == nil || old.Status != m.Status || old.Locality != m.Locality ||
		old.GatewayAddr != m.GatewayAddr || !slices.Equal(old.CIDRs, m.CIDRs) {
		f.markDirty(time.Time{})
		f.targetsDirty = true
	}
	if m.HasRTT && rttMoved(p.rtt, m.RTT) {
		p.rtt = m.RTT
		f.markDirty(time.Time{})
	}
	mm := m
	p.member = &mm
	if m.CatalogAddr != "" && (p.rep == nil || p.rep.addr != m.CatalogAddr) {
		f.stopReplicator(p)
		f.startReplicator(ctx, wg, p, m.CatalogAddr)
	}
	// m proved its cluster's control plane identity (only proven
	// members get here): it is granted at once, whatever serf says of
	// its liveness. A member serf suspects while the federation forms
	// (a starved machine) would otherwise wait for gossip to heal before
	// it can read our exports, and count our catalog unreachable.
	if f.cfg.GrantPeerRead {
		f.io.grant(f.cfg.PeerUser(m.Cluster))
	}
}

// Reasons a peer is removed, the label of
// fedmesh_federation_peers_removed_total.
const (
	// RemovedLeft: serf reports the peer left (on purpose, or forgotten
	// on some member).
	RemovedLeft = "left"
	// RemovedForgotten: forgotten on this control plane while gossip did
	// not know it.
	RemovedForgotten = "forgotten"
)

// removePeer forgets a peer that is no longer part of the federation:
// its replicator stops, its exports leave the view and its persisted
// imports are deleted. If it comes back, it is a new peer.
func (f *Federation) removePeer(p *peer, reason string) {
	f.stopReplicator(p)
	f.merger.SetExports(p.name, nil, nil)
	delete(f.peers, p.name)
	delete(f.refused, p.name)
	f.io.forget(p.name)
	if f.prober != nil {
		f.prober.Forget(p.name)
	}
	f.targetsDirty = true
	f.met.removed.WithLabelValues(reason).Inc()
	f.markDirty(time.Time{})
	f.log.Info("peer removed from the federation: its exports and persisted imports go", "peer", p.name, "reason", reason)
}

// rttMoved reports whether an RTT changed enough to publish: by more than
// a fifth and more than a millisecond, so coordinate jitter makes no views.
func rttMoved(old, cur time.Duration) bool {
	d := cur - old
	if d < 0 {
		d = -d
	}
	return old == 0 || (d > old/5 && d > time.Millisecond)
}

func (f *Federation) startReplicator(ctx context.Context, wg *sync.WaitGroup, p *peer, addr string) {
	f.gen++
	gen := f.gen
	rc := f.replicateConfig(p.name)
	rc.Endpoints = []string{addr}
	// What is read must come from the identity that was proven.
	name := p.name
	rc.TLS = f.cfg.Prover.PeerTLS(f.cfg.PeerTLS, name, func(err error) {
		f.log.Warn("peer catalog refused: it presents another identity than the one it proved", "peer", name, "err", err)
		f.postRefused(name, gen)
	})
	if p.revCatalog == "" || p.revCatalog == addr {
		rc.FromRevision = p.revision
		rc.Initial = p.exports
	} // else another replica's store: list it from scratch
	if f.scope != nil {
		rc.Scope = func(k catalog.ServiceKey) bool { return f.scope[k] }
	}
	rc.OnExports = func(s replicate.Snapshot) { f.post(p.name, gen, s) }
	rc.OnState = func(replicate.State) { f.poke() }
	r, err := replicate.New(rc)
	if err != nil {
		f.log.Warn("cannot replicate peer: bad catalog address in gossip", "peer", p.name, "addr", addr, "err", err)
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		_ = r.Run(rctx)
	})
	p.rep = &runningReplicator{r: r, addr: addr, gen: gen, cancel: cancel, done: done}
	f.met.replicators.Inc()
	f.log.Info("replicating peer", "peer", p.name, "addr", addr, "from_revision", rc.FromRevision)
}

func (f *Federation) stopReplicator(p *peer) {
	if p.rep == nil {
		return
	}
	p.rep.cancel()
	<-p.rep.done
	p.downSince = f.cfg.Now()
	if st := p.rep.r.State(); !st.Connected {
		p.downSince = st.Since
	}
	p.rep = nil
	f.met.replicators.Dec()
}

func (f *Federation) stopAll() {
	f.stopCandidates()
	for _, p := range f.peers {
		f.stopReplicator(p)
	}
}

// importState is what is persisted of p beside its exports.
func (f *Federation) importState(p *peer) store.ImportState {
	return store.ImportState{
		Revision:       p.revision,
		LastSync:       p.lastSync,
		Locality:       f.localityOf(p),
		GatewayAddress: f.gatewayOf(p),
		Catalog:        p.revCatalog,
	}
}

func (f *Federation) localityOf(p *peer) topology.Locality {
	l := p.persisted
	if p.member != nil {
		l = p.member.Locality
	}
	l.Cluster = p.name
	return l
}

func (f *Federation) gatewayOf(p *peer) string {
	if p.member != nil {
		return p.member.GatewayAddr
	}
	return p.gateway
}

// cidrsOf returns the address ranges p declares in gossip; none while
// it is known only from persisted imports.
func (f *Federation) cidrsOf(p *peer) []netip.Prefix {
	if p.member != nil {
		return p.member.CIDRs
	}
	return nil
}

// publish merges and publishes a new view.
func (f *Federation) publish() {
	clusters := make(map[string]catalog.ClusterInfo, len(f.peers)+1)
	clusters[f.cfg.Cluster] = catalog.ClusterInfo{Locality: f.cfg.Locality, GatewayAddress: f.cfg.GatewayAddress, CIDRs: f.cfg.CIDRs}
	for name, p := range f.peers {
		clusters[name] = catalog.ClusterInfo{
			Locality:       f.localityOf(p),
			GatewayAddress: f.gatewayOf(p),
			RTT:            p.rtt,
			Fenced:         p.fenced,
			FenceReason:    p.reason,
			CIDRs:          f.cidrsOf(p),
		}
	}
	f.merger.SetClusters(clusters)
	v := f.merger.View()
	f.viewRev++
	v.Revision = f.viewRev
	f.view.Store(&v)

	conflicts := 0
	for i := range v.Services {
		conflicts += len(v.Services[i].Conditions)
	}
	f.met.conflicts.Set(float64(conflicts))
	f.met.viewRevision.Set(float64(v.Revision))
	f.met.publishes.Inc()
	if f.dirty && !f.pendingAt.IsZero() {
		f.met.propagation.Observe(f.cfg.Now().Sub(f.pendingAt).Seconds())
	}
	f.dirty = false
	f.pendingAt = time.Time{}

	f.subMu.Lock()
	defer f.subMu.Unlock()
	for _, ch := range f.subs {
		select {
		case <-ch:
		default:
		}
		ch <- &v
	}
}

func (f *Federation) closeSubs() {
	f.subMu.Lock()
	defer f.subMu.Unlock()
	f.closed = true
	for id, ch := range f.subs {
		close(ch)
		delete(f.subs, id)
	}
}
