package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
)

// Config configures a Server.
type Config struct {
	// Cluster is the local cluster's name; nodes of other clusters are
	// refused. Required.
	Cluster string
	// Settings tune the generated resources; TrustDomain is required.
	Settings Settings
	// Authenticator proves each node's identity. Required.
	Authenticator Authenticator
	// Issuer signs sidecars' certificates; nil means no SDS secrets are
	// served (sidecars then get none).
	Issuer Issuer
	// CertTTL is the lifetime of issued certificates, renewed at half
	// life; default 24h.
	CertTTL time.Duration
	// Debounce delays a rebuild after a view change so that a burst of
	// changes makes one push; default 100ms.
	Debounce time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives the server's logs; default slog.Default().
	Logger *slog.Logger
	// Registerer registers the server's metrics; nil means unregistered.
	Registerer prometheus.Registerer
	// Limits bound connections and streams; zero fields take
	// DefaultLimits.
	Limits Limits
	// GatewayIdentities are the identities allowed to connect as role
	// gateway: a gateway proves itself like every node, and its proven
	// identity must be one of these. Default DefaultGatewayIdentities.
	GatewayIdentities []Identity
	// WaitForPolicies holds back sidecars' snapshots until UpdatePolicies
	// is first called, so that a restarted control plane never serves
	// inbound listeners without the authorization in force. Set it when
	// a policy source feeds UpdatePolicies.
	WaitForPolicies bool
}

// Server is the xDS server of one control plane.
type Server struct {
	cfg     Config
	log     *slog.Logger
	cache   *pushCache
	xds     serverv3.Server
	metrics *metrics
	conns   *connTracker

	kick chan struct{} // a node appeared or a rebuild is due now

	// updateMu serializes UpdateView and UpdatePolicies, each of which
	// derives the next generator from the current one.
	updateMu sync.Mutex

	mu         sync.Mutex // guards the following
	policies   []policy.AuthorizationPolicy
	policiesIn bool // UpdatePolicies was called
	view       *catalog.View
	gen        *Generator
	viewDirty  bool // every node needs a rebuild after the debounce
	viewAt     time.Time
	streams    map[streamID]*streamState
	nodes      map[string]*nodeState // by Node.Key()
	identities map[string]*identityState
	dirty      map[string]bool // nodes to build at the next flush
}

type streamState struct {
	ctx  context.Context
	key  string // "" until the first request authenticates
	node *nodeState
}

type nodeState struct {
	node    Node
	id      Identity
	streams int
	built   *Built // last snapshot set in the cache
	// certs is the identity whose certificate this node holds a
	// reference to (holdsCertificate); nil for gateways, which neither
	// add to nor take from an identity's count.
	certs *identityState
}

// holdsCertificate reports whether nodes of role are issued their
// identity's SVID over SDS: every role. Sidecars terminate mTLS with it;
// proxyless nodes get it for `fedmesh certs`, which writes it for
// grpc-go's file_watcher; gateways, which never terminate traffic, answer
// peers' probes of the gateway itself with it and verify the control
// plane with the bundle that comes with it (so they follow a root
// rotation).
func holdsCertificate(role string) bool {
	return role == naming.RoleSidecar || role == naming.RoleProxyless || role == naming.RoleGateway
}

type identityState struct {
	id    Identity
	nodes int
	cert  *svid
	err   error
	retry time.Time
}

// NewServer checks cfg and builds a server; Run drives it.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Cluster == "" {
		return nil, errors.New("xds: config: cluster is empty")
	}
	if cfg.Authenticator == nil {
		return nil, errors.New("xds: config: authenticator is nil")
	}
	s, err := cfg.Settings.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("xds: config: %w", err)
	}
	cfg.Settings = s
	if cfg.CertTTL == 0 {
		cfg.CertTTL = 24 * time.Hour
	}
	if cfg.CertTTL < 0 || cfg.Debounce < 0 {
		return nil, errors.New("xds: config: cert TTL and debounce must not be negative")
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Limits, err = cfg.Limits.withDefaults(); err != nil {
		return nil, fmt.Errorf("xds: config: %w", err)
	}
	if len(cfg.GatewayIdentities) == 0 {
		cfg.GatewayIdentities = DefaultGatewayIdentities()
	}
	for i, id := range cfg.GatewayIdentities {
		if err := id.validate(); err != nil {
			return nil, fmt.Errorf("xds: config: gateway identity %d (%s): %w", i, id, err)
		}
	}
	srv := &Server{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "xds", "cluster", cfg.Cluster),
		metrics:    newMetrics(),
		kick:       make(chan struct{}, 1),
		streams:    make(map[streamID]*streamState),
		nodes:      make(map[string]*nodeState),
		identities: make(map[string]*identityState),
		dirty:      make(map[string]bool),
	}
	if cfg.Registerer != nil {
		if err := srv.metrics.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("xds: register metrics: %w", err)
		}
	}
	srv.view = &catalog.View{Local: cfg.Cluster}
	srv.gen, _ = NewGenerator(cfg.Settings, srv.view)
	srv.conns = newConnTracker(cfg.Limits, srv.metrics)
	srv.cache = newPushCache()
	srv.xds = serverv3.NewServer(context.Background(), srv.cache, srv.callbacks())
	return srv, nil
}

// Register adds ADS and the per-type discovery services to g.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	secretservice.RegisterSecretDiscoveryServiceServer(g, s.xds)
}

// UpdateView publishes a new federation view; nodes are rebuilt after the
// debounce. A view of another cluster is refused. Safe to call from any
// goroutine.
func (s *Server) UpdateView(v *catalog.View) error {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	if v == nil {
		return errors.New("xds: nil view")
	}
	if v.Local != s.cfg.Cluster {
		s.metrics.invalid.WithLabelValues("view_cluster").Inc()
		return fmt.Errorf("xds: view of cluster %q, want %q", v.Local, s.cfg.Cluster)
	}
	s.mu.Lock()
	prev := s.gen
	s.mu.Unlock()
	// The new generator reuses what prev built for unchanged services.
	gen, err := prev.next(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.view != nil && v.Revision != 0 && v.Revision < s.view.Revision {
		s.mu.Unlock()
		return fmt.Errorf("xds: view revision %d is older than %d", v.Revision, s.view.Revision)
	}
	s.view, s.gen = v, gen
	if !s.viewDirty {
		s.viewDirty, s.viewAt = true, s.cfg.Now()
	}
	s.mu.Unlock()
	s.signal()
	return nil
}

func (s *Server) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run rebuilds snapshots and renews certificates until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := s.flush()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-timer.C:
		}
	}
}

// flush builds what is due and returns how long until the next thing is.
func (s *Server) flush() time.Duration {
	now := s.cfg.Now()
	next := time.Hour

	s.mu.Lock()
	if s.viewDirty {
		if due := s.viewAt.Add(s.cfg.Debounce); now.Before(due) {
			next = min(next, due.Sub(now))
		} else {
			s.viewDirty = false
			for k := range s.nodes {
				s.dirty[k] = true
			}
		}
	}
	// Certificates: issue for new identities, renew due ones.
	var renew []*identityState
	for _, is := range s.identities {
		switch {
		case s.cfg.Issuer == nil:
		case is.cert == nil && (is.retry.IsZero() || !now.Before(is.retry)),
			is.cert != nil && !now.Before(is.cert.renewAt):
			renew = append(renew, is)
		case is.cert == nil:
			next = min(next, is.retry.Sub(now))
		default:
			next = min(next, is.cert.renewAt.Sub(now))
		}
	}
	s.mu.Unlock()

	for _, is := range renew {
		cert, err := issue(s.cfg.Issuer, is.id, s.cfg.CertTTL, now)
		s.mu.Lock()
		if err != nil {
			is.err, is.retry = err, now.Add(5*time.Second)
			next = min(next, 5*time.Second)
			s.metrics.certs.WithLabelValues("error").Inc()
			s.log.Error("certificate issuance failed", "identity", is.id.Namespace+"/"+is.id.ServiceAccount, "err", err)
		} else {
			renewal := is.cert != nil
			is.cert, is.err, is.retry = cert, nil, time.Time{}
			next = min(next, max(0, cert.renewAt.Sub(now)))
			s.metrics.certs.WithLabelValues("ok").Inc()
			s.log.Info("certificate issued", "identity", is.id.Namespace+"/"+is.id.ServiceAccount,
				"serial", cert.serial, "notAfter", cert.notAfter, "renewal", renewal)
			for k, n := range s.nodes {
				if n.certs == is {
					s.dirty[k] = true
				}
			}
		}
		s.mu.Unlock()
	}

	s.mu.Lock()
	gen := s.gen
	holdSidecars := s.cfg.WaitForPolicies && !s.policiesIn
	type job struct {
		key string
		n   *nodeState
		sec *part
	}
	jobs := make([]job, 0, len(s.dirty))
	for k := range s.dirty {
		n, ok := s.nodes[k]
		if !ok {
			continue
		}
		if holdSidecars && n.node.Role == naming.RoleSidecar {
			continue // built when the policies arrive (UpdatePolicies)
		}
		var sec *part
		if is := n.certs; is != nil && is.cert != nil {
			sec = is.cert.part
		}
		jobs = append(jobs, job{k, n, sec})
	}
	clear(s.dirty)
	s.mu.Unlock()
	if len(jobs) == 0 {
		return max(next, time.Millisecond)
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].key < jobs[j].key })

	start := time.Now()
	for _, j := range jobs {
		b, err := gen.build(j.n.node, j.sec)
		if err != nil {
			reason := "build"
			var ve *ValidationError
			if errors.As(err, &ve) {
				reason = ve.Reason
			}
			s.metrics.invalid.WithLabelValues(reason).Inc()
			s.log.Error("snapshot not sent: validation failed; the node keeps its last good one",
				"node", j.n.node.ID, "err", err)
			continue
		}
		s.mu.Lock()
		current, ok := s.nodes[j.key]
		if !ok || current != j.n {
			s.mu.Unlock()
			continue // the node left meanwhile
		}
		j.n.built = b
		// Under s.mu, so that a node that leaves is never set again
		// after closeStream cleared it.
		s.cache.SetSnapshot(j.key, b.Snapshot)
		s.mu.Unlock()
		s.metrics.builds.Inc()
	}
	s.metrics.flushSeconds.Observe(time.Since(start).Seconds())
	return max(next, time.Millisecond)
}

func identityKey(id Identity) string { return id.Namespace + "/" + id.ServiceAccount }

// callbacks authenticate streams and count what they refuse.
func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.openStream(ctx, streamID{id: id})
			return nil
		},
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.openStream(ctx, streamID{id: id, delta: true})
			return nil
		},
		StreamClosedFunc:      func(id int64, _ *corev3.Node) { s.closeStream(streamID{id: id}) },
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.closeStream(streamID{id: id, delta: true}) },
		StreamRequestFunc: func(id int64, req *discoverygrpc.DiscoveryRequest) error {
			return s.onRequest(streamID{id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResourceNames())
		},
		StreamDeltaRequestFunc: func(id int64, req *discoverygrpc.DeltaDiscoveryRequest) error {
			if reason, err := checkDeltaRequest(req); err != nil {
				return s.reject(reason, codes.InvalidArgument, err.Error(), "node", req.GetNode().GetId())
			}
			return s.onRequest(streamID{id: id, delta: true}, req.GetNode(), req.GetTypeUrl(), req.GetResourceNamesSubscribe())
		},
		FetchRequestFunc: func(context.Context, *discoverygrpc.DiscoveryRequest) error {
			s.metrics.rejected.WithLabelValues("fetch").Inc()
			return status.Error(codes.Unimplemented, "fetch is not served; use a stream")
		},
	}
}

// streamID names a stream: go-control-plane numbers state-of-the-world
// and delta streams apart, each from 1, so the number alone is not
// unique.
type streamID struct {
	id    int64
	delta bool
}

func (s *Server) openStream(ctx context.Context, id streamID) {
	s.mu.Lock()
	s.streams[id] = &streamState{ctx: ctx}
	s.mu.Unlock()
}

func (s *Server) closeStream(id streamID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[id]
	if !ok {
		return
	}
	delete(s.streams, id)
	if st.node == nil {
		return
	}
	st.node.streams--
	if st.node.streams > 0 {
		return
	}
	delete(s.nodes, st.key)
	s.cache.ClearSnapshot(st.key)
	s.metrics.nodes.Set(float64(len(s.nodes)))
	// Only the reference this node took is given back: a gateway never
	// took one, and every other node took exactly one.
	if is := st.node.certs; is != nil {
		st.node.certs = nil
		is.nodes--
		if is.nodes == 0 && s.identities[identityKey(is.id)] == is {
			delete(s.identities, identityKey(is.id))
		}
	}
}

func (s *Server) reject(reason string, code codes.Code, msg string, args ...any) error {
	s.metrics.rejected.WithLabelValues(reason).Inc()
	s.log.Warn("xds request refused", append([]any{"reason", reason, "err", msg}, args...)...)
	return status.Error(code, msg)
}

// onRequest checks every request's type and names, authenticates a
// stream's first request and checks that later ones keep its node. It
// runs before the stream server creates a watch, so nothing is sent on a
// stream whose first request did not authenticate: the error ends it.
func (s *Server) onRequest(id streamID, pn *corev3.Node, typeURL string, names []string) error {
	s.mu.Lock()
	st, ok := s.streams[id]
	key := ""
	var ns *nodeState
	if ok {
		key, ns = st.key, st.node
	}
	s.mu.Unlock()
	if !ok {
		return status.Error(codes.Internal, "unknown stream")
	}
	if reason, err := checkRequest(typeURL, names); err != nil {
		return s.reject(reason, codes.InvalidArgument, err.Error(), "node", pn.GetId())
	}
	if key == "" {
		var err error
		if ns, err = s.authenticate(st, pn); err != nil {
			return err
		}
	} else if pn != nil && (nodeHash{}).ID(pn) != key {
		return s.reject("node_changed", codes.InvalidArgument, "node changed within a stream", "node", pn.GetId())
	}
	if typeURL == resourcev3.SecretType {
		for _, name := range names {
			if name != naming.SecretWorkload && name != naming.SecretRootCA {
				s.metrics.rejected.WithLabelValues("secret_name").Inc()
				s.log.Error("node asked for a secret that is not its own", "node", ns.node.ID,
					"identity", identityKey(ns.id), "secret", name)
			}
		}
		if !holdsCertificate(ns.node.Role) && len(names) > 0 {
			s.metrics.rejected.WithLabelValues("secret_role").Inc()
			s.log.Error("node of role "+ns.node.Role+" asked for secrets", "node", ns.node.ID)
		}
	}
	return nil
}

func (s *Server) authenticate(st *streamState, pn *corev3.Node) (*nodeState, error) {
	n, err := ParseNode(pn)
	if err != nil {
		return nil, s.reject("bad_node", codes.InvalidArgument, err.Error())
	}
	if n.Cluster != s.cfg.Cluster {
		return nil, s.reject("wrong_cluster", codes.PermissionDenied,
			fmt.Sprintf("node %q is of cluster %q, this control plane serves %q", n.ID, n.Cluster, s.cfg.Cluster))
	}
	ident, err := s.cfg.Authenticator.Authenticate(st.ctx, n)
	if err != nil {
		return nil, s.reject("unauthenticated", codes.Unauthenticated, err.Error(), "node", n.ID)
	}
	if err := checkClaims(n, ident, s.cfg.GatewayIdentities); err != nil {
		return nil, s.reject("identity_mismatch", codes.PermissionDenied, err.Error())
	}
	key := n.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.nodes[key]
	if ns == nil {
		ns = &nodeState{node: n, id: ident}
		s.nodes[key] = ns
		s.dirty[key] = true
		s.metrics.nodes.Set(float64(len(s.nodes)))
		if holdsCertificate(n.Role) {
			ik := identityKey(ident)
			is := s.identities[ik]
			if is == nil {
				is = &identityState{id: ident}
				s.identities[ik] = is
			}
			is.nodes++
			ns.certs = is
		}
	} else if ns.node.Workload != n.Workload || FormatAppPorts(ns.node.AppPorts) != FormatAppPorts(n.AppPorts) || ns.node.Locality != n.Locality {
		// Same id and identity, new details: the newest stream wins.
		ns.node = n
		s.dirty[key] = true
	}
	ns.streams++
	st.key, st.node = key, ns
	if p, ok := peer.FromContext(st.ctx); ok {
		s.conns.authenticated(p.LocalAddr, p.Addr)
	}
	s.signal()
	return ns, nil
}

// nodeHash keys the snapshot cache by the node's identity claims and id;
// claims are checked against credentials before any watch is created.
type nodeHash struct{}

func (nodeHash) ID(pn *corev3.Node) string {
	n, err := ParseNode(pn)
	if err != nil {
		return "invalid|" + pn.GetId()
	}
	return n.Key()
}
