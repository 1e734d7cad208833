package membership

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"
	"github.com/hashicorp/serf/serf"
)

// Sentinel errors callers decide on.
var (
	// ErrDuplicateName: another live member already claims this cluster
	// name; the join was refused and nothing was merged.
	ErrDuplicateName = errors.New("cluster name already taken by another member of the federation")
	// ErrAlreadyFederated: the control plane already gossips with other
	// members under another gossip key, so it cannot switch keys alone.
	ErrAlreadyFederated = errors.New("control plane already belongs to a federation with another gossip key")
	// ErrShutdown: the membership was shut down.
	ErrShutdown = errors.New("membership is shut down")
	// ErrMemberAlive: ForceLeave was asked to forget a member that is
	// alive; only a member that failed (or is gone) can be forgotten.
	ErrMemberAlive = errors.New("member is alive: only a failed member can be forgotten")
	// ErrForgetSelf: ForceLeave was asked to forget this control plane.
	ErrForgetSelf = errors.New("a control plane cannot forget itself: stop it with a leave instead")
)

// Status is a member's state as serf sees it.
type Status string

// Member states.
const (
	StatusAlive   Status = "alive"
	StatusLeaving Status = "leaving"
	StatusLeft    Status = "left"
	StatusFailed  Status = "failed"
)

func statusOf(s serf.MemberStatus) (Status, bool) {
	switch s {
	case serf.StatusAlive:
		return StatusAlive, true
	case serf.StatusLeaving:
		return StatusLeaving, true
	case serf.StatusLeft:
		return StatusLeft, true
	case serf.StatusFailed:
		return StatusFailed, true
	}
	return "", false
}

// Member is one valid federation member: a cluster's control plane.
type Member struct {
	MemberInfo
	// Name is the serf member name: Cluster, or Cluster.Replica for one
	// of several replicas of a cluster (see MemberName).
	Name string
	// Addr is the member's gossip address, host:port.
	Addr string
	// Status is alive, leaving, left or failed.
	Status Status
	// RTT is the round-trip time to the member estimated from serf's
	// network coordinates; valid only when HasRTT. Zero for the local
	// member.
	RTT time.Duration
	// HasRTT tells whether a coordinate of the member is known yet.
	HasRTT bool
}

// Membership is one control plane's serf membership in the federation.
// Its methods are safe for concurrent use.
type Membership struct {
	cfg       Config
	name      string // this member's serf name, MemberName(NodeName, Replica)
	log       *slog.Logger
	serf      *serf.Serf
	keyring   *memberlist.Keyring
	local     MemberInfo
	localAddr string
	met       *metrics
	eventCh   chan serf.Event

	cancel       context.CancelFunc
	wg           sync.WaitGroup
	shutdownOnce sync.Once
	shutdownErr  error

	// dupRefusals counts merges refused for a duplicate name, so that Join
	// can tell why memberlist failed.
	dupRefusals atomic.Uint64

	keyMu sync.Mutex // serializes local keyring changes and keyring file writes

	// saveMu serializes KnownMembers.Save (its contract: one goroutine at
	// a time); the list is taken under it, so the last save is the newest.
	saveMu sync.Mutex

	mu        sync.Mutex // guards the following
	peers     map[string]peerIdentity
	known     map[string]KnownMember
	lastSaved time.Time
	subs      map[uint64]chan struct{}
	nextSub   uint64
	closed    bool
	// forgotten are the members ForceLeave forgot here and not seen
	// joining since.
	forgotten map[string]bool
}

// peerIdentity is what the merge delegate compares to spot an impostor.
type peerIdentity struct {
	addr   string
	iid    string
	status serf.MemberStatus
}

// New starts serf for this control plane: binds the gossip port, loads or
// creates the keyring, and starts the event and rejoin loops. It joins
// nobody yet except the members of a snapshot or of KnownMembers.
func New(cfg Config) (*Membership, error) {
	cfg, timings, err := cfg.defaulted()
	if err != nil {
		return nil, fmt.Errorf("membership config: %w", err)
	}
	name := MemberName(cfg.NodeName, cfg.Replica)
	log := cfg.Logger.With("component", "membership", "cluster", cfg.NodeName)
	if cfg.Replica != "" {
		log = log.With("replica", cfg.Replica)
	}
	la := &logAdapter{log: log}

	keys, err := loadKeys(cfg)
	if err != nil {
		return nil, err
	}
	keyring, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	if cfg.KeyringFile != "" {
		if err := writeKeyringFile(cfg.KeyringFile, keyring.GetKeys()); err != nil {
			return nil, err
		}
	}

	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}

	local := MemberInfo{
		Cluster:         cfg.NodeName,
		Locality:        cfg.Locality,
		GatewayAddr:     cfg.GatewayAddr,
		CatalogAddr:     cfg.CatalogAddr,
		ProtocolVersion: ProtocolVersion,
		InstanceID:      newInstanceID(),
		CIDRs:           cfg.CIDRs,
		Replica:         cfg.Replica,
	}
	if _, err := DecodeTags(local.Encode()); err != nil {
		return nil, fmt.Errorf("membership config: %w", err)
	}
	if _, err := DecodeCIDRs(local.Encode()); err != nil {
		return nil, fmt.Errorf("membership config: cluster CIDRs: %w", err)
	}

	nt, port, err := newTransport(cfg, la)
	if err != nil {
		return nil, err
	}
	if cfg.AdvertisePort == 0 {
		cfg.AdvertisePort = port
	}
	advIP, advPort, err := nt.FinalAdvertiseAddr(cfg.AdvertiseAddr, cfg.AdvertisePort)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("gossip advertise address: %w", err)
	}
	var transport memberlist.Transport = nt
	if cfg.WrapTransport != nil {
		transport = cfg.WrapTransport(nt)
	}

	ctx, cancel := context.WithCancel(context.Background())
	m := &Membership{
		cfg:       cfg,
		name:      name,
		log:       log,
		keyring:   keyring,
		local:     local,
		met:       met,
		eventCh:   make(chan serf.Event, 256),
		cancel:    cancel,
		localAddr: net.JoinHostPort(advIP.String(), strconv.Itoa(advPort)),
		peers:     make(map[string]peerIdentity),
		known:     make(map[string]KnownMember),
		subs:      make(map[uint64]chan struct{}),
		forgotten: make(map[string]bool),
	}
	known, err := cfg.KnownMembers.Load()
	if err != nil {
		log.Warn("cannot load known members; starting without them", "err", err)
	}
	for _, k := range known {
		if _, _, ok := SplitMemberName(k.Name); ok && k.Name != name && checkHostPort(k.Addr) == nil {
			m.known[k.Name] = k
		}
	}

	sc := cfg.serfConfig(timings, local.Encode(), transport, keyring, m.eventCh, (*mergeDelegate)(m), la)
	s, err := serf.Create(sc)
	if err != nil {
		cancel()
		_ = transport.Shutdown()
		return nil, fmt.Errorf("start serf: %w", err)
	}
	m.serf = s
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(newMembersCollector(m)); err != nil {
			cancel()
			_ = s.Shutdown()
			return nil, fmt.Errorf("register membership metrics: %w", err)
		}
	}

	m.wg.Add(2)
	go m.eventLoop(ctx)
	go m.rejoinLoop(ctx)
	log.Info("membership started", "addr", m.localAddr, "profile", string(cfg.Profile), "keys", len(keys))
	return m, nil
}

func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// Join contacts the given gossip addresses (host:port) and merges their
// state; one reachable member is enough for a full mesh. It returns how
// many addresses answered. A refusal because another member claims this
// cluster name wraps ErrDuplicateName.
func (m *Membership) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, errors.New("join: no addresses given")
	}
	if m.isClosed() {
		return 0, ErrShutdown
	}
	before := m.dupRefusals.Load()
	n, err := m.serf.Join(addrs, true)
	if err != nil {
		if m.dupRefusals.Load() != before {
			return n, fmt.Errorf("%w: %q: %v", ErrDuplicateName, m.name, err)
		}
		return n, fmt.Errorf("join %v: %w", addrs, err)
	}
	return n, nil
}

// Local returns this control plane's own member.
func (m *Membership) Local() Member {
	return Member{MemberInfo: m.local, Name: m.name, Addr: m.localAddr, Status: StatusAlive}
}

// Members returns the valid members, this one included, sorted by name.
// Members whose tags are missing, invalid or of an unknown protocol
// version are left out (they are logged and counted when they appear).
func (m *Membership) Members() []Member {
	localCoord := m.localCoordinate()
	var out []Member
	for _, sm := range m.serf.Members() {
		status, ok := statusOf(sm.Status)
		if !ok {
			continue
		}
		if sm.Name == m.name {
			l := m.Local()
			l.Status = status
			out = append(out, l)
			continue
		}
		info, err := decodeMember(sm)
		if err != nil {
			continue
		}
		mem := Member{MemberInfo: info, Name: sm.Name, Addr: memberAddr(sm), Status: status}
		if localCoord != nil {
			if c, ok := m.serf.GetCachedCoordinate(sm.Name); ok && c != nil && c.IsCompatibleWith(localCoord) {
				mem.RTT = max(localCoord.DistanceTo(c), 0)
				mem.HasRTT = true
			}
		}
		out = append(out, mem)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Peers returns the valid members other than this one, other replicas
// of this cluster included.
func (m *Membership) Peers() []Member {
	return slices.DeleteFunc(m.Members(), func(mem Member) bool { return mem.Name == m.name })
}

func (m *Membership) localCoordinate() *coordinate.Coordinate {
	c, err := m.serf.GetCoordinate()
	if err != nil || c == nil {
		return nil
	}
	return c
}

// decodeMember validates a serf member's tags and that its name is
// MemberName of its cluster and replica tags.
func decodeMember(sm serf.Member) (MemberInfo, error) {
	info, err := DecodeTags(sm.Tags)
	if err != nil {
		return info, err
	}
	if want := MemberName(info.Cluster, info.Replica); want != sm.Name {
		return info, &TagError{Reason: ReasonNameMismatch, Tag: TagCluster,
			Detail: fmt.Sprintf("cluster %q and replica %q make member name %q, not %q", info.Cluster, info.Replica, want, sm.Name)}
	}
	return info, nil
}

func memberAddr(sm serf.Member) string {
	return net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port)))
}

// Subscribe returns a channel that receives a value after every
// membership change (join, leave, failure, reap, tag update); changes that
// arrive while a value is pending coalesce into it. One value is pending
// at once so the subscriber reads the initial state. The channel is
// closed by cancel and by Shutdown. Call Members to see the new state.
func (m *Membership) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		close(ch)
		return ch, func() {}
	}
	id := m.nextSub
	m.nextSub++
	m.subs[id] = ch
	return ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if c, ok := m.subs[id]; ok {
			delete(m.subs, id)
			close(c)
		}
	}
}

func (m *Membership) notifyLocked() {
	for _, ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (m *Membership) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// Leave announces that this control plane leaves the federation on
// purpose, so peers mark it left rather than failed and stop retrying it.
// Call Shutdown afterwards.
func (m *Membership) Leave() error {
	if m.isClosed() {
		return ErrShutdown
	}
	return m.serf.Leave()
}

// ForceLeave forgets a member that failed, for good, as serf's
// RemoveFailedNode does (Consul's force-leave): every member marks it left
// and stops trying to reach it, as if it had left on purpose, and the
// rejoin loop drops its address. A member serf no longer knows (reaped
// after a long failure, or known only to the caller's own records) is
// forgotten here all the same: Forgotten lists it until it joins again.
// An alive member is refused with ErrMemberAlive, this control plane
// itself with ErrForgetSelf. A member forgotten by mistake comes back by
// joining again.
//
// name is a member name; the name of a cluster whose control plane runs
// several replicas (members CLUSTER.REPLICA) forgets all of them, and is
// refused while any of them is alive.
func (m *Membership) ForceLeave(name string) error {
	if _, _, ok := SplitMemberName(name); !ok {
		return fmt.Errorf("forget member %q: not a valid member name (a cluster name, a DNS-1123 label, or CLUSTER.REPLICA)", name)
	}
	if name == m.name || name == m.cfg.NodeName {
		return ErrForgetSelf
	}
	if m.isClosed() {
		return ErrShutdown
	}
	var replicas []string
	for _, sm := range m.serf.Members() {
		cluster, replica, _ := SplitMemberName(sm.Name)
		if sm.Name != name && (replica == "" || cluster != name) {
			continue
		}
		if sm.Status == serf.StatusAlive {
			return fmt.Errorf("forget member %q: %s: %w", name, sm.Name, ErrMemberAlive)
		}
		if sm.Name != name {
			replicas = append(replicas, sm.Name)
		}
	}
	for _, r := range replicas {
		if err := m.forget(r); err != nil {
			return err
		}
	}
	if len(replicas) > 0 {
		return nil
	}
	return m.forget(name)
}

// forget forgets one member name; see ForceLeave.
func (m *Membership) forget(name string) error {
	m.mu.Lock()
	m.forgotten[name] = true
	_, wasKnown := m.known[name]
	delete(m.known, name)
	if wasKnown {
		m.lastSaved = m.cfg.Now()
	}
	m.notifyLocked()
	m.mu.Unlock()
	if wasKnown {
		m.saveKnown()
	}
	m.met.forced.Inc()
	m.log.Info("forgetting federation member", "member", name)
	// Marks it left here at once; the broadcast tells the others.
	if err := m.serf.RemoveFailedNode(name); err != nil {
		return fmt.Errorf("forget member %q: forgotten here, but telling the other members failed: %w", name, err)
	}
	return nil
}

// Forgotten returns, sorted, the members ForceLeave forgot on this
// control plane that have not joined again since.
func (m *Membership) Forgotten() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.forgotten))
	for name := range m.forgotten {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Shutdown stops serf and the membership's goroutines and closes the
// subscriber channels. It does not leave: peers see a failure and keep
// retrying. Safe to call more than once.
func (m *Membership) Shutdown() error {
	m.shutdownOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		// serf first: it sends events holding its member lock, so the
		// event loop keeps draining them until serf has stopped.
		m.shutdownErr = m.serf.Shutdown()
		m.cancel()
		m.wg.Wait()
		m.mu.Lock()
		for id, ch := range m.subs {
			delete(m.subs, id)
			close(ch)
		}
		m.mu.Unlock()
		m.log.Info("membership shut down")
	})
	return m.shutdownErr
}

// eventLoop drains serf's events: it logs and counts invalid members,
// tracks peer identities for the duplicate-name check, records known
// members and wakes subscribers. It must not call serf methods that take
// serf's member lock (Members, Join): serf sends events holding it.
func (m *Membership) eventLoop(ctx context.Context) {
	defer m.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-m.eventCh:
			me, ok := ev.(serf.MemberEvent)
			if !ok {
				continue
			}
			m.handleMemberEvent(me)
		}
	}
}

func (m *Membership) handleMemberEvent(me serf.MemberEvent) {
	now := m.cfg.Now()
	m.mu.Lock()
	changed := false
	for _, sm := range me.Members {
		if sm.Name == m.name {
			continue
		}
		addr := memberAddr(sm)
		switch me.Type {
		case serf.EventMemberJoin, serf.EventMemberUpdate:
			m.peers[sm.Name] = peerIdentity{addr: addr, iid: sm.Tags[TagInstanceID], status: serf.StatusAlive}
			if me.Type == serf.EventMemberJoin {
				delete(m.forgotten, sm.Name)
			}
			if _, err := decodeMember(sm); err != nil {
				reason := ReasonMissingTag
				var te *TagError
				if errors.As(err, &te) {
					reason = te.Reason
				}
				m.met.membersIgnored.WithLabelValues(reason).Inc()
				m.log.Warn("ignoring federation member with bad tags", "member", sm.Name, "addr", addr, "reason", reason, "err", err)
				continue
			}
			if _, err := DecodeCIDRs(sm.Tags); err != nil {
				m.met.tagsIgnored.WithLabelValues(ReasonBadCIDRs).Inc()
				m.log.Warn("ignoring a federation member's malformed cidrs tag; its gateway traffic counts as unknown", "member", sm.Name, "addr", addr, "err", err)
			}
			if k, ok := m.known[sm.Name]; !ok || k.Addr != addr {
				changed = true
			}
			m.known[sm.Name] = KnownMember{Name: sm.Name, Addr: addr, LastSeen: now}
			m.log.Info("federation member up", "member", sm.Name, "addr", addr, "event", me.Type.String())
		case serf.EventMemberLeave:
			if p, ok := m.peers[sm.Name]; ok {
				p.status = serf.StatusLeft
				m.peers[sm.Name] = p
			}
			if _, ok := m.known[sm.Name]; ok {
				delete(m.known, sm.Name)
				changed = true
			}
			m.log.Info("federation member left", "member", sm.Name, "addr", addr)
		case serf.EventMemberFailed:
			if p, ok := m.peers[sm.Name]; ok {
				p.status = serf.StatusFailed
				m.peers[sm.Name] = p
			}
			m.log.Warn("federation member failed", "member", sm.Name, "addr", addr)
		case serf.EventMemberReap:
			delete(m.peers, sm.Name)
			m.log.Info("federation member reaped", "member", sm.Name, "addr", addr)
		}
	}
	if changed {
		m.lastSaved = now
	}
	m.notifyLocked()
	m.mu.Unlock()
	if changed {
		m.saveKnown()
	}
}

func (m *Membership) knownListLocked() []KnownMember {
	out := make([]KnownMember, 0, len(m.known))
	for _, k := range m.known {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b KnownMember) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// saveKnown saves the known members as they are now. The event and rejoin
// loops both call it; saveMu keeps their saves apart and in order.
func (m *Membership) saveKnown() {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	list := m.knownListLocked()
	m.mu.Unlock()
	if err := m.cfg.KnownMembers.Save(list); err != nil {
		m.log.Warn("cannot save known members", "err", err)
	}
}

// maxRejoinTargets bounds the addresses one rejoin attempt contacts.
const maxRejoinTargets = 8

// rejoinLoop joins, every ReconnectInterval, the known addresses of
// members that are not alive. serf retries failed members only until it
// reaps them; this loop goes on until ForgetAfter, so a partition longer
// than the reap time heals by itself.
func (m *Membership) rejoinLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		m.rejoinOnce()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Membership) rejoinOnce() {
	alive := make(map[string]bool)
	for _, sm := range m.serf.Members() {
		if sm.Status == serf.StatusAlive {
			alive[sm.Name] = true
		}
	}
	now := m.cfg.Now()
	var targets []string
	m.mu.Lock()
	changed := false
	for name, k := range m.known {
		switch {
		case alive[name]:
			k.LastSeen = now
			m.known[name] = k
		case now.Sub(k.LastSeen) > m.cfg.ForgetAfter:
			delete(m.known, name)
			changed = true
			m.log.Info("forgetting federation member not seen for a long time", "member", name, "addr", k.Addr, "lastSeen", k.LastSeen)
		default:
			targets = append(targets, k.Addr)
		}
	}
	save := changed || (len(m.known) > 0 && now.Sub(m.lastSaved) > time.Hour)
	if save {
		m.lastSaved = now
	}
	m.mu.Unlock()
	if save {
		m.saveKnown()
	}
	if len(targets) == 0 {
		return
	}
	mrand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	targets = targets[:min(len(targets), maxRejoinTargets)]
	n, err := m.serf.Join(targets, true)
	if n > 0 {
		m.met.rejoins.WithLabelValues("ok").Inc()
		m.log.Info("rejoined known federation members", "contacted", n, "tried", targets)
		return
	}
	m.met.rejoins.WithLabelValues("failed").Inc()
	m.log.Debug("rejoin of known federation members failed", "tried", targets, "err", err)
}
