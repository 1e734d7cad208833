package controlplane

import (
	"time"

	"github.com/fedmesh/fedmesh/federation/adminapi"
)

// ErrNoFederation is returned by JoinToken and Join while the control
// plane runs no federation: before the mesh has started, or without one
// (no MeshConfig).
// It is adminapi.ErrNotReady, so that callers outside this package
// (package kube) can tell it without importing this one.
var ErrNoFederation = adminapi.ErrNotReady

// JoinToken creates a join token valid for ttl, as the admin API's POST
// /federation/v1/token does. Kubernetes mode publishes one in the
// control plane's namespace (package kube, JoinConfig). Safe for
// concurrent use.
func (s *Server) JoinToken(ttl time.Duration) (adminapi.TokenResponse, error) {
	api := s.joinAPI.Load()
	if api == nil {
		return adminapi.TokenResponse{}, ErrNoFederation
	}
	return api.Token(ttl)
}

// Join verifies token and joins its federation, as the admin API's POST
// /federation/v1/join does. Safe for concurrent use.
func (s *Server) Join(token string) (adminapi.JoinResponse, error) {
	api := s.joinAPI.Load()
	if api == nil {
		return adminapi.JoinResponse{}, ErrNoFederation
	}
	return api.Join(token)
}
