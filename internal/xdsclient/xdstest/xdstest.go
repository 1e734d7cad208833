// Package xdstest runs a real xDS control plane for tests: go-control-plane's
// ADS server over a SnapshotCache, on a loopback port, recording every
// request it receives so tests can see ACKs and NACKs. It is the reference
// implementation of the protocol, standing in for fedmesh's control plane
// in tests of its clients.
package xdstest

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
)

// Server is a running xDS server. Its snapshot cache answers every node
// with the same snapshot.
type Server struct {
	t     testing.TB
	Cache cachev3.SnapshotCache
	tls   *tls.Config

	mu       sync.Mutex // guards the following
	addr     string
	grpc     *grpc.Server
	done     chan struct{}
	requests []*discoveryv3.DiscoveryRequest
	deltas   []*discoveryv3.DeltaDiscoveryRequest
	sotwOnly bool
}

// New starts a server on 127.0.0.1:0 (plaintext when tlsCfg is nil) and
// stops it when the test ends. It serves ADS state of the world and delta.
func New(t testing.TB, tlsCfg *tls.Config) *Server {
	t.Helper()
	s := &Server{t: t, tls: tlsCfg, Cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)}
	s.start("127.0.0.1:0")
	t.Cleanup(s.Stop)
	return s
}

// NewSotW is New for a server that speaks state of the world only: its
// DeltaAggregatedResources answers Unimplemented, as an older control
// plane's does.
func NewSotW(t testing.TB, tlsCfg *tls.Config) *Server {
	t.Helper()
	s := &Server{t: t, tls: tlsCfg, Cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil), sotwOnly: true}
	s.start("127.0.0.1:0")
	t.Cleanup(s.Stop)
	return s
}

// sotwOnly serves StreamAggregatedResources and leaves
// DeltaAggregatedResources unimplemented.
type sotwOnly struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	sotw discoveryv3.AggregatedDiscoveryServiceServer
}

func (s sotwOnly) StreamAggregatedResources(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return s.sotw.StreamAggregatedResources(st)
}

func (s *Server) start(addr string) {
	s.t.Helper()
	var lis net.Listener
	var err error
	// A restarted server takes its old port back; another process may
	// hold it for a moment after close, so retry briefly.
	deadline := time.Now().Add(5 * time.Second)
	for {
		lis, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("xdstest: listen %s: %v", addr, err)
	}
	var opts []grpc.ServerOption
	if s.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	g := grpc.NewServer(opts...)
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.requests = append(s.requests, proto.Clone(req).(*discoveryv3.DiscoveryRequest))
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.deltas = append(s.deltas, proto.Clone(req).(*discoveryv3.DeltaDiscoveryRequest))
			return nil
		},
	}
	srv := serverv3.NewServer(context.Background(), s.Cache, cb)
	if s.sotwOnly {
		discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, sotwOnly{sotw: srv})
	} else {
		discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, srv)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(lis)
	}()
	s.mu.Lock()
	s.addr, s.grpc, s.done = lis.Addr().String(), g, done
	s.mu.Unlock()
}

// Addr returns host:port of the server.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Set publishes a snapshot to every node id given (the cache is keyed by
// node id).
func (s *Server) Set(version string, res map[string][]types.Resource, nodeIDs ...string) {
	s.t.Helper()
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		s.t.Fatalf("xdstest: snapshot %s: %v", version, err)
	}
	for _, id := range nodeIDs {
		if err := s.Cache.SetSnapshot(context.Background(), id, snap); err != nil {
			s.t.Fatalf("xdstest: set snapshot %s: %v", version, err)
		}
	}
}

// Requests returns a copy of every request received so far.
func (s *Server) Requests() []*discoveryv3.DiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discoveryv3.DiscoveryRequest(nil), s.requests...)
}

// DeltaRequests returns a copy of every delta request received so far.
func (s *Server) DeltaRequests() []*discoveryv3.DeltaDiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discoveryv3.DeltaDiscoveryRequest(nil), s.deltas...)
}

// Stop stops the server, closing its streams; it is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	g, done := s.grpc, s.done
	s.grpc = nil
	s.mu.Unlock()
	if g == nil {
		return
	}
	g.Stop()
	<-done
}

// Restart starts a stopped server again on its old address.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start(s.Addr())
}
