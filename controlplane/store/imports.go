package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/controlplane/catalog"
)

// SetImports replaces what this cluster persisted of peer: its imported
// exports and its ImportState, in one transaction (no lease: imports
// outlive a restart). Unchanged exports are not written again. Every export
// must be valid and exported by peer; otherwise nothing is written and the
// error wraps catalog.ErrInvalid.
func (s *Store) SetImports(ctx context.Context, peer string, exports []catalog.Export, state ImportState) error {
	desired, err := s.encodeImports(peer, exports)
	if err != nil {
		return err
	}
	stateValue, err := json.Marshal(&state)
	if err != nil {
		return fmt.Errorf("encode import state of %s: %w", peer, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp, err := s.cli.Get(ctx, PeerImportsPrefix(s.cfg.Cluster, peer), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("read imports of %s: %w", peer, err)
	}
	var ops []clientv3.Op
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if v, ok := desired[k]; ok && bytes.Equal(v, kv.Value) {
			delete(desired, k)
		} else if !ok {
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	for _, k := range sortedKeys(desired) {
		ops = append(ops, clientv3.OpPut(k, string(desired[k])))
	}
	ops = append(ops, clientv3.OpPut(ImportStateKey(s.cfg.Cluster, peer), string(stateValue)))
	if _, err := s.txn(ctx, "imports", ops); err != nil {
		return fmt.Errorf("imports of %s: %w", peer, err)
	}
	return nil
}

// UpdateImports applies a change of peer's exports to what this cluster
// persisted of it, with its new ImportState, in one transaction: puts
// replace or add exports, deletes remove them. It is the incremental form
// of SetImports, for a watch's Changes.
func (s *Store) UpdateImports(ctx context.Context, peer string, puts []catalog.Export, deletes []catalog.ServiceKey, state ImportState) error {
	desired, err := s.encodeImports(peer, puts)
	if err != nil {
		return err
	}
	stateValue, err := json.Marshal(&state)
	if err != nil {
		return fmt.Errorf("encode import state of %s: %w", peer, err)
	}
	ops := make([]clientv3.Op, 0, len(puts)+len(deletes)+1)
	for _, k := range sortedKeys(desired) {
		ops = append(ops, clientv3.OpPut(k, string(desired[k])))
	}
	for _, key := range deletes {
		k := ImportKey(s.cfg.Cluster, peer, key)
		if _, put := desired[k]; put {
			return fmt.Errorf("imports of %s: service %s: %w: both put and deleted", peer, key, catalog.ErrInvalid)
		}
		ops = append(ops, clientv3.OpDelete(k))
	}
	ops = append(ops, clientv3.OpPut(ImportStateKey(s.cfg.Cluster, peer), string(stateValue)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.txn(ctx, "imports", ops); err != nil {
		return fmt.Errorf("imports of %s: %w", peer, err)
	}
	return nil
}

// DeleteImports forgets everything persisted of peer, in one transaction.
func (s *Store) DeleteImports(ctx context.Context, peer string) error {
	if why := catalog.IsDNS1123Label(peer); why != "" {
		return fmt.Errorf("imports of peer %q: %w: %s", peer, catalog.ErrInvalid, why)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.txn(ctx, "imports", []clientv3.Op{
		clientv3.OpDelete(PeerImportsPrefix(s.cfg.Cluster, peer), clientv3.WithPrefix()),
		clientv3.OpDelete(ImportStateKey(s.cfg.Cluster, peer)),
	})
	if err != nil {
		return fmt.Errorf("imports of %s: %w", peer, err)
	}
	return nil
}

func (s *Store) encodeImports(peer string, exports []catalog.Export) (map[string][]byte, error) {
	if why := catalog.IsDNS1123Label(peer); why != "" {
		return nil, fmt.Errorf("imports of peer %q: %w: %s", peer, catalog.ErrInvalid, why)
	}
	if peer == s.cfg.Cluster {
		return nil, fmt.Errorf("imports of peer %q: %w: that is this cluster", peer, catalog.ErrInvalid)
	}
	out := make(map[string][]byte, len(exports))
	for i := range exports {
		e := &exports[i]
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("imports of %s: exports[%d]: %w", peer, i, err)
		}
		if e.Service.Cluster != peer {
			return nil, fmt.Errorf("imports of %s: exports[%d]: service %s: %w: exported by cluster %q, not the peer", peer, i, e.Service.Key(), catalog.ErrInvalid, e.Service.Cluster)
		}
		k := ImportKey(s.cfg.Cluster, peer, e.Service.Key())
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("imports of %s: exports[%d]: service %s: %w: imported twice", peer, i, e.Service.Key(), catalog.ErrInvalid)
		}
		v, err := EncodeExport(*e)
		if err != nil {
			return nil, fmt.Errorf("imports of %s: encode service %s: %w", peer, e.Service.Key(), err)
		}
		out[k] = v
	}
	return out, nil
}

// ListImports reads everything this cluster persisted of its peers, by
// peer name, read at one revision. A peer with exports but no state, or a
// state but no exports, is listed all the same. Keys or values that do not
// decode are skipped, logged and counted in InvalidValues.
func (s *Store) ListImports(ctx context.Context) (map[string]PeerImports, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(ImportsPrefix(s.cfg.Cluster), clientv3.WithPrefix()),
		clientv3.OpGet(ImportStatePrefix(s.cfg.Cluster), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("list imports: %w", err)
	}
	out := make(map[string]PeerImports)
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		_, peer, key, err := ParseImportKey(string(kv.Key))
		if err != nil {
			s.invalid("imports", err)
			continue
		}
		e, err := DecodeExport(peer, key, kv.Value)
		if err != nil {
			s.invalid("imports", err)
			continue
		}
		pi := out[peer]
		pi.Exports = append(pi.Exports, e)
		out[peer] = pi
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		_, peer, err := ParseImportStateKey(string(kv.Key))
		if err != nil {
			s.invalid("importstate", err)
			continue
		}
		var st ImportState
		if err := decodeJSON("import state of "+peer, kv.Value, &st); err != nil {
			s.invalid("importstate", err)
			continue
		}
		pi := out[peer]
		pi.State = st
		out[peer] = pi
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
