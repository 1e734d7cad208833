package xds

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// DefaultLoadReportInterval is how often sidecars send load reports
// unless LRSConfig.Interval says otherwise.
const DefaultLoadReportInterval = 2 * time.Second

// LoadReport is one node's load for one quota over one reporting
// interval, as the LRS server received it.
type LoadReport struct {
	// Node is the reporting node's ID (node.id).
	Node string
	// Load is what it reported.
	Load xdsresource.QuotaLoad
	// Received is when the report arrived.
	Received time.Time
}

// LRSConfig configures an LRSServer.
type LRSConfig struct {
	// Cluster is the local cluster's name; nodes of other clusters are
	// refused. Required.
	Cluster string
	// Authenticator proves each node's identity, as for xDS. Required.
	Authenticator Authenticator
	// GatewayIdentities are the identities allowed to claim role
	// gateway; default DefaultGatewayIdentities.
	GatewayIdentities []Identity
	// Interval is the load reporting interval the server asks of every
	// node; default DefaultLoadReportInterval.
	Interval time.Duration
	// OnLoad receives every accepted quota load report. Required. It is
	// called from the streams' goroutines, concurrently, and must not
	// block.
	OnLoad func(LoadReport)
	// OnGone, when set, is called with a node's ID when its last stream
	// ends, so that its demand can be forgotten.
	OnGone func(node string)
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives the server's logs; default slog.Default().
	Logger *slog.Logger
	// Registerer registers the server's metrics; nil means unregistered.
	Registerer prometheus.Registerer
}

// LRSServer serves the Load Reporting Service
// (envoy.service.load_stats.v3) on the xDS port: sidecars report their
// quota demand on it (docs/xds.md, "Load reports"). It authenticates a
// stream's first request as the xDS server does; a malformed report is
// refused with a counted reason, logged and changes nothing, and the
// stream stays up.
type LRSServer struct {
	lrsv3.UnimplementedLoadReportingServiceServer

	cfg      LRSConfig
	log      *slog.Logger
	reports  prometheus.Counter
	rejected *prometheus.CounterVec

	gone *nodeRefs
}

// NewLRSServer checks cfg and builds an LRSServer.
func NewLRSServer(cfg LRSConfig) (*LRSServer, error) {
	if cfg.Cluster == "" {
		return nil, errors.New("lrs: config: cluster is empty")
	}
	if cfg.Authenticator == nil {
		return nil, errors.New("lrs: config: authenticator is nil")
	}
	if cfg.OnLoad == nil {
		return nil, errors.New("lrs: config: OnLoad is nil")
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("lrs: config: interval %v is negative", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultLoadReportInterval
	}
	if cfg.Interval > xdsresource.MaxLoadInterval {
		return nil, fmt.Errorf("lrs: config: interval %v is longer than %v", cfg.Interval, xdsresource.MaxLoadInterval)
	}
	if len(cfg.GatewayIdentities) == 0 {
		cfg.GatewayIdentities = DefaultGatewayIdentities()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &LRSServer{
		cfg: cfg,
		log: cfg.Logger.With("component", "lrs", "cluster", cfg.Cluster),
		reports: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_lrs_reports_total", Help: "Quota load reports accepted from nodes (one per quota per report).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_lrs_rejected_total", Help: "Load reporting streams or reports refused, by reason.",
		}, []string{"reason"}),
		gone: newNodeRefs(),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.reports, s.rejected} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("lrs: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Register adds the Load Reporting Service to g.
func (s *LRSServer) Register(g *grpc.Server) {
	lrsv3.RegisterLoadReportingServiceServer(g, s)
}

func (s *LRSServer) reject(reason string, code codes.Code, msg string, args ...any) error {
	s.rejected.WithLabelValues(reason).Inc()
	s.log.Warn("load report refused", append([]any{"reason", reason, "err", msg}, args...)...)
	return status.Error(code, msg)
}

// StreamLoadStats serves one node's load reporting stream: the first
// request names and authenticates the node, the answer asks for every
// cluster's load every Interval, and each later request's quota reports
// go to OnLoad.
func (s *LRSServer) StreamLoadStats(stream lrsv3.LoadReportingService_StreamLoadStatsServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	n, err := ParseNode(first.GetNode())
	if err != nil {
		return s.reject("bad_node", codes.InvalidArgument, err.Error())
	}
	if n.Cluster != s.cfg.Cluster {
		return s.reject("wrong_cluster", codes.PermissionDenied,
			fmt.Sprintf("node %q is of cluster %q, this control plane serves %q", n.ID, n.Cluster, s.cfg.Cluster))
	}
	ident, err := s.cfg.Authenticator.Authenticate(stream.Context(), n)
	if err != nil {
		return s.reject("unauthenticated", codes.Unauthenticated, err.Error(), "node", n.ID)
	}
	if err := checkClaims(n, ident, s.cfg.GatewayIdentities); err != nil {
		return s.reject("identity_mismatch", codes.PermissionDenied, err.Error())
	}
	s.gone.add(n.ID)
	defer func() {
		if s.gone.remove(n.ID) && s.cfg.OnGone != nil {
			s.cfg.OnGone(n.ID)
		}
	}()
	if err := stream.Send(&lrsv3.LoadStatsResponse{
		SendAllClusters:       true,
		LoadReportingInterval: durationpb.New(s.cfg.Interval),
	}); err != nil {
		return err
	}
	key := n.Key()
	for req := first; ; {
		if pn := req.GetNode(); pn != nil && (nodeHash{}).ID(pn) != key {
			return s.reject("node_changed", codes.InvalidArgument, "node changed within a stream", "node", n.ID)
		}
		s.take(n.ID, req)
		req, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// take hands the quota reports of req to OnLoad; a bad one is refused
// alone. Reports of ordinary clusters are not fedmesh's and are ignored.
func (s *LRSServer) take(node string, req *lrsv3.LoadStatsRequest) {
	now := s.cfg.Now()
	for _, cs := range req.GetClusterStats() {
		if !xdsresource.IsQuotaLoad(cs) {
			continue
		}
		l, err := xdsresource.ParseQuotaLoad(cs)
		if err != nil {
			s.rejected.WithLabelValues("bad_report").Inc()
			s.log.Warn("load report refused", "reason", "bad_report", "node", node, "err", err)
			continue
		}
		s.reports.Inc()
		s.cfg.OnLoad(LoadReport{Node: node, Load: l, Received: now})
	}
}

// nodeRefs counts the open streams of each node.
type nodeRefs struct {
	mu   sync.Mutex     // guards the following
	refs map[string]int // open streams by node ID
}

func newNodeRefs() *nodeRefs { return &nodeRefs{refs: make(map[string]int)} }

func (r *nodeRefs) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs[id]++
}

// remove reports whether id's last stream ended.
func (r *nodeRefs) remove(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs[id]--
	if r.refs[id] > 0 {
		return false
	}
	delete(r.refs, id)
	return true
}

var _ lrsv3.LoadReportingServiceServer = (*LRSServer)(nil)

// RefreshQuotaShares rebuilds every node after the debounce, because
// Settings.QuotaShares answers differently now (a new quota split). Safe
// to call from any goroutine.
func (s *Server) RefreshQuotaShares() {
	s.mu.Lock()
	if !s.viewDirty {
		s.viewDirty, s.viewAt = true, s.cfg.Now()
	}
	s.mu.Unlock()
	s.signal()
}
