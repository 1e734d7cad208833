package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
)

// ErrTooManyOps is returned, wrapped, by a write that needs more
// operations in its one transaction than Config.MaxTxnOps allows. The write
// is not split (a reader would see half of it); raise the server's
// --max-txn-ops for an external etcd.
var ErrTooManyOps = errors.New("transaction needs more operations than the etcd server allows")

// SetExports replaces this cluster's whole export set in one transaction:
// it puts the exports that are new or changed (or still under an older
// lease) under the store's lease, deletes those no longer in exports, and
// leaves unchanged ones alone, so that an unchanged set makes no new
// revision. A reader sees the old set or the new one, never a mix.
//
// Every export must be valid and exported by this cluster, and keys must
// not repeat; otherwise nothing is written and the error wraps
// catalog.ErrInvalid. rev is the etcd revision at which exports is the
// stored set. The set is remembered and written again if the lease is lost.
func (s *Store) SetExports(ctx context.Context, exports []catalog.Export) (rev int64, err error) {
	desired := make(map[string][]byte, len(exports))
	for i := range exports {
		e := &exports[i]
		if err := e.Validate(); err != nil {
			return 0, fmt.Errorf("exports[%d]: %w", i, err)
		}
		if e.Service.Cluster != s.cfg.Cluster {
			return 0, fmt.Errorf("exports[%d]: service %s: %w: cluster %q is not this cluster %q", i, e.Service.Key(), catalog.ErrInvalid, e.Service.Cluster, s.cfg.Cluster)
		}
		k := ExportKey(s.cfg.Cluster, e.Service.Key())
		if _, dup := desired[k]; dup {
			return 0, fmt.Errorf("exports[%d]: service %s: %w: exported twice", i, e.Service.Key(), catalog.ErrInvalid)
		}
		v, err := EncodeExport(*e)
		if err != nil {
			return 0, fmt.Errorf("exports[%d]: encode service %s: %w", i, e.Service.Key(), err)
		}
		desired[k] = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rev, err = s.writeExportsLocked(ctx, desired, "exports")
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// The lease expired before the keepalive noticed: take a new one
		// now rather than fail the caller, and write again.
		old := s.lease
		if err = s.regrantLocked(ctx, old); err == nil {
			rev, err = s.writeExportsLocked(ctx, desired, "exports")
		}
	}
	return rev, err
}

// writeExportsLocked makes the exports prefix hold desired, in one
// transaction, and records it as the desired and stored state.
func (s *Store) writeExportsLocked(ctx context.Context, desired map[string][]byte, kind string) (int64, error) {
	if s.stored == nil {
		// A failed write left etcd's state unknown: read it again.
		if err := s.readStoredLocked(ctx); err != nil {
			return 0, err
		}
	}
	var ops []clientv3.Op
	for _, k := range sortedKeys(desired) {
		v := desired[k]
		if old, ok := s.stored[k]; ok && old.lease == s.lease && bytes.Equal(old.value, v) {
			continue
		}
		ops = append(ops, clientv3.OpPut(k, string(v), clientv3.WithLease(s.lease)))
	}
	for _, k := range sortedKeys(s.stored) {
		if _, ok := desired[k]; !ok {
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	rev, err := s.txn(ctx, kind, ops)
	if err != nil {
		if !errors.Is(err, ErrTooManyOps) {
			s.stored = nil
		}
		return 0, err
	}
	stored := make(map[string]storedKV, len(desired))
	for k, v := range desired {
		stored[k] = storedKV{value: v, lease: s.lease}
	}
	s.stored = stored
	s.desired = desired
	return rev, nil
}

// txn commits ops in one unconditional transaction and returns its
// revision (the current revision when ops is empty, as nothing is written).
func (s *Store) txn(ctx context.Context, kind string, ops []clientv3.Op) (int64, error) {
	if len(ops) > s.cfg.MaxTxnOps {
		s.metrics.TxnFailures.WithLabelValues(kind, "too_many_ops").Inc()
		return 0, fmt.Errorf("write %s: %w: %d operations, limit %d", kind, ErrTooManyOps, len(ops), s.cfg.MaxTxnOps)
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		s.metrics.TxnFailures.WithLabelValues(kind, txnFailureReason(err)).Inc()
		if errors.Is(err, rpctypes.ErrTooManyOps) {
			return 0, fmt.Errorf("write %s: %w: %d operations: %w", kind, ErrTooManyOps, len(ops), err)
		}
		return 0, fmt.Errorf("write %s (%d operations): %w", kind, len(ops), err)
	}
	if len(ops) > 0 {
		s.metrics.Writes.WithLabelValues(kind).Inc()
	}
	return resp.Header.Revision, nil
}

func txnFailureReason(err error) string {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return "too_many_ops"
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return "lease_not_found"
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return "too_large"
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrUserEmpty):
		return "permission_denied"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "other"
	}
}

// ListExports reads the exports of cluster (this one or, with a shared
// external etcd, another), sorted by namespace and name, and the revision
// they were read at. Keys or values that do not decode are skipped, logged
// and counted in InvalidValues.
func (s *Store) ListExports(ctx context.Context, cluster string) ([]catalog.Export, int64, error) {
	resp, err := s.cli.Get(ctx, ExportsPrefix(cluster), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list exports of %s: %w", cluster, err)
	}
	out := make([]catalog.Export, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		e, err := DecodeExportKV(string(kv.Key), kv.Value)
		if err != nil {
			s.invalid("exports", err)
			continue
		}
		out = append(out, e)
	}
	sortExports(out)
	return out, resp.Header.Revision, nil
}

func (s *Store) invalid(kind string, err error) {
	reason := "value"
	if errors.Is(err, ErrBadKey) {
		reason = "key"
	}
	s.metrics.InvalidValues.WithLabelValues(kind, reason).Inc()
	s.log.Warn("skipping a stored value that does not decode", "kind", kind, "err", err)
}

func sortExports(es []catalog.Export) {
	sort.Slice(es, func(i, j int) bool { return es[i].Service.Key().Less(es[j].Service.Key()) })
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
