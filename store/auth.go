package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RootUser is etcd's administrative user. With auth enabled, the store's
// own client authenticates as it by a client certificate whose common name
// is "root".
const RootUser = "root"

// PeerReadRole is the etcd role granted to every peer user: read-only
// access to ExportsPrefix of this cluster, nothing else.
const PeerReadRole = "fedmesh-exports-reader"

// ErrBadUser is returned, wrapped, for a peer user name that cannot be
// granted access.
var ErrBadUser = errors.New("bad peer user")

// EnableAuth turns on etcd authentication, once: it creates the root role
// and a password-less root user and enables auth. From then on every client
// needs a user: with client-cert-auth the common name of its certificate,
// so the store's own client certificate must name "root". Calling it when
// auth is already on does nothing.
func (s *Store) EnableAuth(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.cli.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("enable auth: read status: %w", err)
	}
	if st.Enabled {
		return nil
	}
	if _, err := s.cli.RoleAdd(ctx, RootUser); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return fmt.Errorf("enable auth: add role root: %w", err)
	}
	if _, err := s.cli.UserAddWithOptions(ctx, RootUser, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("enable auth: add user root: %w", err)
	}
	if _, err := s.cli.UserGrantRole(ctx, RootUser, RootUser); err != nil {
		return fmt.Errorf("enable auth: grant role root to user root: %w", err)
	}
	if _, err := s.cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("enable auth: %w", err)
	}
	s.metrics.Writes.WithLabelValues("auth").Inc()
	s.log.Info("etcd auth enabled")
	return nil
}

// GrantPeerRead lets peerUser (the common name of a peer's client
// certificate) read, and watch, this cluster's ExportsPrefix and nothing
// else: the user has no password and only PeerReadRole. It is idempotent.
func (s *Store) GrantPeerRead(ctx context.Context, peerUser string) error {
	if err := checkPeerUser(peerUser); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The role is the same for every peer: it is written by the first
	// grant of this store, so that each further peer costs two writes
	// (a federation of N clusters grants N-1 peers at once when it forms).
	if !s.peerRoleReady {
		if _, err := s.cli.RoleAdd(ctx, PeerReadRole); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("grant peer %s: add role: %w", peerUser, err)
		}
		prefix := ExportsPrefix(s.cfg.Cluster)
		if _, err := s.cli.RoleGrantPermission(ctx, PeerReadRole, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermRead)); err != nil {
			return fmt.Errorf("grant peer %s: grant read on %s: %w", peerUser, prefix, err)
		}
		s.peerRoleReady = true
	}
	if _, err := s.cli.UserAddWithOptions(ctx, peerUser, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("grant peer %s: add user: %w", peerUser, err)
	}
	if _, err := s.cli.UserGrantRole(ctx, peerUser, PeerReadRole); err != nil {
		return fmt.Errorf("grant peer %s: grant role: %w", peerUser, err)
	}
	s.metrics.Writes.WithLabelValues("auth").Inc()
	s.log.Info("peer may read exports", "user", peerUser)
	return nil
}

// RevokePeer deletes peerUser, so that its certificate no longer grants
// anything. Revoking an unknown user does nothing.
func (s *Store) RevokePeer(ctx context.Context, peerUser string) error {
	if err := checkPeerUser(peerUser); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.cli.UserDelete(ctx, peerUser); err != nil && !errors.Is(err, rpctypes.ErrUserNotFound) {
		return fmt.Errorf("revoke peer %s: %w", peerUser, err)
	}
	s.metrics.Writes.WithLabelValues("auth").Inc()
	s.log.Info("peer access revoked", "user", peerUser)
	return nil
}

func checkPeerUser(u string) error {
	switch {
	case u == "":
		return fmt.Errorf("%w: empty", ErrBadUser)
	case u == RootUser:
		return fmt.Errorf("%w: %q is the administrative user", ErrBadUser, u)
	case len(u) > 253:
		return fmt.Errorf("%w: %q: longer than 253 characters", ErrBadUser, u)
	}
	return nil
}
