package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
)

// storedImportState is the value at ImportStateKey: the ImportState and
// the generation of the peer's imports it goes with.
type storedImportState struct {
	ImportState
	// Generation tells where the peer's exports are: 0 under
	// PeerImportsPrefix, n > 0 under ImportGenerationPrefix(n). Keys of
	// any other generation are leftovers nobody reads.
	Generation uint64 `json:"generation,omitempty"`
}

// importKeyAt is where key of peer's imports lives in generation gen.
func importKeyAt(cluster, peer string, gen uint64, key catalog.ServiceKey) string {
	if gen == 0 {
		return ImportKey(cluster, peer, key)
	}
	return ImportGenerationKey(cluster, peer, gen, key)
}

// importPrefixAt is the prefix of generation gen of peer's imports.
func importPrefixAt(cluster, peer string, gen uint64) string {
	if gen == 0 {
		return PeerImportsPrefix(cluster, peer)
	}
	return ImportGenerationPrefix(cluster, peer, gen)
}

// SetImports replaces what this cluster persisted of peer: its imported
// exports and its ImportState (no lease: imports outlive a restart).
// Every export must be valid and exported by peer; otherwise nothing is
// written and the error wraps catalog.ErrInvalid.
//
// When the change fits one transaction (Config.MaxTxnOps operations,
// Config.MaxRequestBytes), it is one transaction that writes only what
// changed. When it does not, the whole set is written as a new generation
// in as many transactions as it takes, under a prefix no reader looks at,
// and then one small transaction points the import state at it and
// deletes the old generation. Either way ListImports, and so a restarted
// control plane, reads the old set or the new one, never a mix; an
// interrupted write leaves the old set in place and its partial
// generation is deleted by the next write.
func (s *Store) SetImports(ctx context.Context, peer string, exports []catalog.Export, state ImportState) error {
	desired, err := s.encodeImports(peer, exports)
	if err != nil {
		return err
	}
	s.importMu.Lock()
	defer s.importMu.Unlock()
	cur, err := s.readPeerImportsLocked(ctx, peer)
	if err != nil {
		return err
	}
	if err := s.writeImportsLocked(ctx, peer, cur, desired, state); err != nil {
		return fmt.Errorf("imports of %s: %w", peer, err)
	}
	return nil
}

// UpdateImports applies a change of peer's exports to what this cluster
// persisted of it, with its new ImportState: puts replace or add exports,
// deletes remove them. It is the incremental form of SetImports, for a
// watch's Changes: one transaction when the change fits in one, else the
// persisted set with the change applied is written as SetImports writes
// a large set.
func (s *Store) UpdateImports(ctx context.Context, peer string, puts []catalog.Export, deletes []catalog.ServiceKey, state ImportState) error {
	changed, err := s.encodeImports(peer, puts)
	if err != nil {
		return err
	}
	for _, key := range deletes {
		if _, put := changed[key]; put {
			return fmt.Errorf("imports of %s: service %s: %w: both put and deleted", peer, key, catalog.ErrInvalid)
		}
	}
	s.importMu.Lock()
	defer s.importMu.Unlock()
	gen, stateRev, err := s.readImportStateLocked(ctx, peer)
	if err != nil {
		return err
	}
	stateValue, err := json.Marshal(&storedImportState{ImportState: state, Generation: gen})
	if err != nil {
		return fmt.Errorf("encode import state of %s: %w", peer, err)
	}
	ops := make([]clientv3.Op, 0, len(changed)+len(deletes)+1)
	for _, k := range sortedServiceKeys(changed) {
		ops = append(ops, clientv3.OpPut(importKeyAt(s.cfg.Cluster, peer, gen, k), string(changed[k])))
	}
	for _, k := range deletes {
		ops = append(ops, clientv3.OpDelete(importKeyAt(s.cfg.Cluster, peer, gen, k)))
	}
	ops = append(ops, clientv3.OpPut(ImportStateKey(s.cfg.Cluster, peer), string(stateValue)))
	if s.fits(ops) {
		if err := s.txnIfState(ctx, peer, stateRev, ops); err != nil {
			return fmt.Errorf("imports of %s: %w", peer, err)
		}
		return nil
	}
	cur, err := s.readPeerImportsLocked(ctx, peer)
	if err != nil {
		return err
	}
	desired := maps.Clone(cur.current)
	maps.Copy(desired, changed)
	for _, k := range deletes {
		delete(desired, k)
	}
	if err := s.writeImportsLocked(ctx, peer, cur, desired, state); err != nil {
		return fmt.Errorf("imports of %s: %w", peer, err)
	}
	return nil
}

// DeleteImports forgets everything persisted of peer, in one transaction.
func (s *Store) DeleteImports(ctx context.Context, peer string) error {
	if why := catalog.IsDNS1123Label(peer); why != "" {
		return fmt.Errorf("imports of peer %q: %w: %s", peer, catalog.ErrInvalid, why)
	}
	s.importMu.Lock()
	defer s.importMu.Unlock()
	_, err := s.txn(ctx, "imports", []clientv3.Op{
		clientv3.OpDelete(ImportStateKey(s.cfg.Cluster, peer)),
		clientv3.OpDelete(PeerImportsPrefix(s.cfg.Cluster, peer), clientv3.WithPrefix()),
		clientv3.OpDelete(PeerImportGenerationsPrefix(s.cfg.Cluster, peer), clientv3.WithPrefix()),
	})
	if err != nil {
		return fmt.Errorf("imports of %s: %w", peer, err)
	}
	return nil
}

// storedImports is what etcd holds of one peer's imports.
type storedImports struct {
	// gen is the generation the import state points at.
	gen uint64
	// stateRev is the import state's mod revision; 0 when there is none.
	stateRev int64
	// current is the exports of generation gen, encoded.
	current map[catalog.ServiceKey][]byte
	// stale are the other generations that hold keys.
	stale []uint64
}

// readImportStateLocked reads the generation and mod revision of peer's
// import state. A state that does not decode counts as generation 0.
func (s *Store) readImportStateLocked(ctx context.Context, peer string) (gen uint64, rev int64, err error) {
	resp, err := s.cli.Get(ctx, ImportStateKey(s.cfg.Cluster, peer))
	if err != nil {
		return 0, 0, fmt.Errorf("read import state of %s: %w", peer, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, 0, nil
	}
	kv := resp.Kvs[0]
	var st storedImportState
	if err := decodeJSON("import state of "+peer, kv.Value, &st); err != nil {
		s.invalid("importstate", err)
	}
	return st.Generation, kv.ModRevision, nil
}

// readPeerImportsLocked reads peer's import state and every generation
// of its imports, at one revision.
func (s *Store) readPeerImportsLocked(ctx context.Context, peer string) (storedImports, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(ImportStateKey(s.cfg.Cluster, peer)),
		clientv3.OpGet(PeerImportsPrefix(s.cfg.Cluster, peer), clientv3.WithPrefix()),
		clientv3.OpGet(PeerImportGenerationsPrefix(s.cfg.Cluster, peer), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return storedImports{}, fmt.Errorf("read imports of %s: %w", peer, err)
	}
	var out storedImports
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		var st storedImportState
		if err := decodeJSON("import state of "+peer, kvs[0].Value, &st); err != nil {
			s.invalid("importstate", err)
		}
		out.gen, out.stateRev = st.Generation, kvs[0].ModRevision
	}
	out.current = make(map[catalog.ServiceKey][]byte)
	stale := make(map[uint64]bool)
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		_, _, key, err := ParseImportKey(string(kv.Key))
		switch {
		case out.gen != 0:
			stale[0] = true
		case err == nil:
			out.current[key] = kv.Value
		}
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		_, _, gen, key, err := ParseImportGenerationKey(string(kv.Key))
		switch {
		case err != nil:
			// Not ours to interpret; the prefix delete of its generation,
			// if any, takes it.
		case gen != out.gen:
			stale[gen] = true
		default:
			out.current[key] = kv.Value
		}
	}
	out.stale = slices.Sorted(maps.Keys(stale))
	return out, nil
}

// writeImportsLocked makes etcd hold desired and state for peer, given
// what it holds now: in place in one transaction when that fits, else as
// a new generation.
func (s *Store) writeImportsLocked(ctx context.Context, peer string, cur storedImports, desired map[catalog.ServiceKey][]byte, state ImportState) error {
	var cleanup []clientv3.Op
	for _, g := range cur.stale {
		cleanup = append(cleanup, clientv3.OpDelete(importPrefixAt(s.cfg.Cluster, peer, g), clientv3.WithPrefix()))
	}

	// In place: only what changed, in the current generation.
	stateValue, err := json.Marshal(&storedImportState{ImportState: state, Generation: cur.gen})
	if err != nil {
		return fmt.Errorf("encode import state: %w", err)
	}
	ops := slices.Clone(cleanup)
	for _, k := range sortedServiceKeys(desired) {
		if v, ok := cur.current[k]; !ok || !bytes.Equal(v, desired[k]) {
			ops = append(ops, clientv3.OpPut(importKeyAt(s.cfg.Cluster, peer, cur.gen, k), string(desired[k])))
		}
	}
	for _, k := range sortedServiceKeys(cur.current) {
		if _, ok := desired[k]; !ok {
			ops = append(ops, clientv3.OpDelete(importKeyAt(s.cfg.Cluster, peer, cur.gen, k)))
		}
	}
	ops = append(ops, clientv3.OpPut(ImportStateKey(s.cfg.Cluster, peer), string(stateValue)))
	if s.fits(ops) {
		return s.txnIfState(ctx, peer, cur.stateRev, ops)
	}

	// A new generation, after every one etcd holds, so that it starts
	// empty: nobody reads it until the state points at it.
	next := cur.gen + 1
	if len(cur.stale) > 0 {
		next = max(next, cur.stale[len(cur.stale)-1]+1)
	}
	puts := make([]clientv3.Op, 0, len(desired))
	for _, k := range sortedServiceKeys(desired) {
		puts = append(puts, clientv3.OpPut(importKeyAt(s.cfg.Cluster, peer, next, k), string(desired[k])))
	}
	chunks := s.chunk(puts)
	for i, c := range chunks {
		if _, err := s.txn(ctx, "imports_chunk", c); err != nil {
			return fmt.Errorf("generation %d, part %d of %d: %w", next, i+1, len(chunks), err)
		}
	}
	stateValue, err = json.Marshal(&storedImportState{ImportState: state, Generation: next})
	if err != nil {
		return fmt.Errorf("encode import state: %w", err)
	}
	flip := clientv3.OpPut(ImportStateKey(s.cfg.Cluster, peer), string(stateValue))
	cleanup = append(cleanup, clientv3.OpDelete(importPrefixAt(s.cfg.Cluster, peer, cur.gen), clientv3.WithPrefix()))
	if all := append([]clientv3.Op{flip}, cleanup...); s.fits(all) {
		return s.txnIfState(ctx, peer, cur.stateRev, all)
	}
	if err := s.txnIfState(ctx, peer, cur.stateRev, []clientv3.Op{flip}); err != nil {
		return err
	}
	for _, c := range s.chunk(cleanup) {
		// Nobody reads the old generations any more: a failure here
		// leaves keys the next write deletes.
		if _, err := s.txn(ctx, "imports_cleanup", c); err != nil {
			s.log.Warn("cannot delete old generations of imports; the next write will", "peer", peer, "err", err)
			break
		}
	}
	return nil
}

// ErrImportsChanged is returned, wrapped, when a peer's import state
// changed between the read and the write of SetImports or UpdateImports:
// another writer is at work on this cluster's imports. Nothing was
// written by the failed transaction.
var ErrImportsChanged = errors.New("import state changed during the write")

// txnIfState commits ops if peer's import state is still at stateRev
// (0: absent).
func (s *Store) txnIfState(ctx context.Context, peer string, stateRev int64, ops []clientv3.Op) error {
	if len(ops) > s.cfg.MaxTxnOps {
		s.metrics.TxnFailures.WithLabelValues("imports", "too_many_ops").Inc()
		return fmt.Errorf("write imports: %w: %d operations, limit %d", ErrTooManyOps, len(ops), s.cfg.MaxTxnOps)
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(ImportStateKey(s.cfg.Cluster, peer)), "=", stateRev)).
		Then(ops...).Commit()
	if err != nil {
		s.metrics.TxnFailures.WithLabelValues("imports", txnFailureReason(err)).Inc()
		if errors.Is(err, rpctypes.ErrTooManyOps) {
			return fmt.Errorf("write imports: %w: %d operations: %w", ErrTooManyOps, len(ops), err)
		}
		return fmt.Errorf("write imports (%d operations): %w", len(ops), err)
	}
	if !resp.Succeeded {
		s.metrics.TxnFailures.WithLabelValues("imports", "conflict").Inc()
		return fmt.Errorf("write imports: %w", ErrImportsChanged)
	}
	s.metrics.Writes.WithLabelValues("imports").Inc()
	return nil
}

// opOverhead is a generous bound on what one operation adds to a request
// beside its key and value.
const opOverhead = 64

// requestBudget is how many bytes of operations one transaction may carry.
func (s *Store) requestBudget() int {
	return max(s.cfg.MaxRequestBytes-(16<<10), s.cfg.MaxRequestBytes/2)
}

func opSize(op clientv3.Op) int { return len(op.KeyBytes()) + len(op.ValueBytes()) + opOverhead }

// fits reports whether ops fit in one transaction.
func (s *Store) fits(ops []clientv3.Op) bool {
	if len(ops) > s.cfg.MaxTxnOps {
		return false
	}
	n := 0
	for _, op := range ops {
		n += opSize(op)
	}
	return n <= s.requestBudget()
}

// chunk splits ops, in order, into transactions that fit; an operation
// too large for any transaction is alone in its own, which etcd refuses.
func (s *Store) chunk(ops []clientv3.Op) [][]clientv3.Op {
	var out [][]clientv3.Op
	var cur []clientv3.Op
	size := 0
	for _, op := range ops {
		n := opSize(op)
		if len(cur) > 0 && (len(cur) == s.cfg.MaxTxnOps || size+n > s.requestBudget()) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, op)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (s *Store) encodeImports(peer string, exports []catalog.Export) (map[catalog.ServiceKey][]byte, error) {
	if why := catalog.IsDNS1123Label(peer); why != "" {
		return nil, fmt.Errorf("imports of peer %q: %w: %s", peer, catalog.ErrInvalid, why)
	}
	if peer == s.cfg.Cluster {
		return nil, fmt.Errorf("imports of peer %q: %w: that is this cluster", peer, catalog.ErrInvalid)
	}
	out := make(map[catalog.ServiceKey][]byte, len(exports))
	for i := range exports {
		e := &exports[i]
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("imports of %s: exports[%d]: %w", peer, i, err)
		}
		if e.Service.Cluster != peer {
			return nil, fmt.Errorf("imports of %s: exports[%d]: service %s: %w: exported by cluster %q, not the peer", peer, i, e.Service.Key(), catalog.ErrInvalid, e.Service.Cluster)
		}
		k := e.Service.Key()
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("imports of %s: exports[%d]: service %s: %w: imported twice", peer, i, k, catalog.ErrInvalid)
		}
		v, err := EncodeExport(*e)
		if err != nil {
			return nil, fmt.Errorf("imports of %s: encode service %s: %w", peer, k, err)
		}
		out[k] = v
	}
	return out, nil
}

func sortedServiceKeys[V any](m map[catalog.ServiceKey]V) []catalog.ServiceKey {
	return slices.SortedFunc(maps.Keys(m), func(a, b catalog.ServiceKey) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
}

// ListImports reads everything this cluster persisted of its peers, by
// peer name, read at one revision: for each peer, its import state and
// the generation of exports the state points at, so that a set written
// in several transactions is seen whole or not at all. A peer with
// exports but no state, or a state but no exports, is listed all the
// same. Keys or values that do not decode are skipped, logged and counted
// in InvalidValues.
func (s *Store) ListImports(ctx context.Context) (map[string]PeerImports, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(ImportStatePrefix(s.cfg.Cluster), clientv3.WithPrefix()),
		clientv3.OpGet(ImportsPrefix(s.cfg.Cluster), clientv3.WithPrefix()),
		clientv3.OpGet(ImportGenerationsPrefix(s.cfg.Cluster), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("list imports: %w", err)
	}
	out := make(map[string]PeerImports)
	gens := make(map[string]uint64)
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		_, peer, err := ParseImportStateKey(string(kv.Key))
		if err != nil {
			s.invalid("importstate", err)
			continue
		}
		var st storedImportState
		if err := decodeJSON("import state of "+peer, kv.Value, &st); err != nil {
			s.invalid("importstate", err)
			continue
		}
		out[peer] = PeerImports{State: st.ImportState}
		gens[peer] = st.Generation
	}
	add := func(peer string, key catalog.ServiceKey, value []byte) {
		e, err := DecodeExport(peer, key, value)
		if err != nil {
			s.invalid("imports", err)
			return
		}
		pi := out[peer]
		pi.Exports = append(pi.Exports, e)
		out[peer] = pi
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		_, peer, key, err := ParseImportKey(string(kv.Key))
		if err != nil {
			s.invalid("imports", err)
			continue
		}
		if gens[peer] == 0 {
			add(peer, key, kv.Value)
		}
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		_, peer, gen, key, err := ParseImportGenerationKey(string(kv.Key))
		if err != nil {
			s.invalid("imports", err)
			continue
		}
		if gen == gens[peer] {
			add(peer, key, kv.Value)
		}
	}
	for peer, pi := range out {
		sortExports(pi.Exports)
		out[peer] = pi
	}
	return out, nil
}

// PutMember records a known member of the federation (no lease).
func (s *Store) PutMember(ctx context.Context, m Member) error {
	if why := catalog.IsDNS1123Label(m.Name); why != "" {
		return fmt.Errorf("member %q: %w: name %s", m.Name, catalog.ErrInvalid, why)
	}
	v, err := json.Marshal(&m)
	if err != nil {
		return fmt.Errorf("encode member %s: %w", m.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.txn(ctx, "members", []clientv3.Op{clientv3.OpPut(MemberKey(s.cfg.Cluster, m.Name), string(v))}); err != nil {
		return fmt.Errorf("member %s: %w", m.Name, err)
	}
	return nil
}

// DeleteMember forgets a known member.
func (s *Store) DeleteMember(ctx context.Context, name string) error {
	if why := catalog.IsDNS1123Label(name); why != "" {
		return fmt.Errorf("member %q: %w: name %s", name, catalog.ErrInvalid, why)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.txn(ctx, "members", []clientv3.Op{clientv3.OpDelete(MemberKey(s.cfg.Cluster, name))}); err != nil {
		return fmt.Errorf("member %s: %w", name, err)
	}
	return nil
}

// ListMembers reads the known members, sorted by name. Keys or values that
// do not decode are skipped, logged and counted in InvalidValues.
func (s *Store) ListMembers(ctx context.Context) ([]Member, error) {
	resp, err := s.cli.Get(ctx, MembersPrefix(s.cfg.Cluster), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	out := make([]Member, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		_, name, err := ParseMemberKey(string(kv.Key))
		if err != nil {
			s.invalid("members", err)
			continue
		}
		var m Member
		if err := decodeJSON("member "+name, kv.Value, &m); err != nil {
			s.invalid("members", err)
			continue
		}
		if m.Name != name {
			s.invalid("members", fmt.Errorf("%w: member stored at %s names %q", ErrBadValue, name, m.Name))
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
