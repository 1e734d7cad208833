package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/pgv"
)

// Type URLs of the resources fedmesh uses, in the order they are
// subscribed (clusters before endpoints, listeners before routes, as
// Envoy's ADS ordering recommends).
const (
	ClusterType  = resourcev3.ClusterType
	EndpointType = resourcev3.EndpointType
	ListenerType = resourcev3.ListenerType
	RouteType    = resourcev3.RouteType
	SecretType   = resourcev3.SecretType
)

// AllTypes is the default subscription list.
var AllTypes = []string{ClusterType, EndpointType, ListenerType, RouteType, SecretType}

// ErrRejected is wrapped by every error that makes the client NACK a
// response.
var ErrRejected = errors.New("xds response rejected")

// Update is one accepted set of resources of one type. Unless Incremental
// is set it is the whole set: resources missing from it are gone.
type Update struct {
	// TypeURL names the resource type (ClusterType, ...).
	TypeURL string
	// Version is the control plane's version_info of this set
	// (system_version_info in delta xDS).
	Version string
	// Resources are the decoded resources by name: *clusterv3.Cluster,
	// *endpointv3.ClusterLoadAssignment, *listenerv3.Listener,
	// *routev3.RouteConfiguration or *tlsv3.Secret. With Incremental, the
	// resources added or changed only.
	Resources map[string]proto.Message
	// Incremental is set on a delta update to a Handler that asked for
	// them (Config.Incremental): Resources holds what was added or
	// changed, Removed what is gone, and every other resource the
	// Handler accepted before is unchanged.
	Incremental bool
	// Removed names the resources gone (Incremental updates only).
	Removed []string
	// Persisted is set on an update read from Config.DataDir at start,
	// handed over because no control plane answered in time; the control
	// plane's next update of the type replaces it.
	Persisted bool
}

// Sources of the configuration a client has handed its Handler
// (Status.Source, the source label of fedmesh_xds_config_source).
const (
	// SourceNone: nothing yet.
	SourceNone = ""
	// SourcePersisted: at least one type comes from the data directory,
	// because no control plane has answered since start.
	SourcePersisted = "persisted"
	// SourceControlPlane: every type comes from the control plane.
	SourceControlPlane = "control_plane"
)

// Handler consumes updates. OnUpdate is called from the client's stream
// goroutine, one call at a time; it must not block for long. Returning an
// error rejects the update: the client NACKs it with the error's text and
// the handler must keep what it had before.
type Handler interface {
	OnUpdate(u Update) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(u Update) error

// OnUpdate calls f(u).
func (f HandlerFunc) OnUpdate(u Update) error { return f(u) }

// Config configures a Client.
type Config struct {
	// Target is the control plane's xDS address, host:port. Required.
	Target string
	// Credentials secure the connection; required unless Insecure is set
	// (tests of the protocol alone). Use credentials.NewTLS with
	// ServerTLSConfig to verify the control plane's SPIFFE ID.
	Credentials credentials.TransportCredentials
	// Insecure allows a plaintext connection when Credentials is nil.
	Insecure bool
	// Node identifies this node to the control plane, with its metadata
	// (naming.Meta* keys, the bootstrap token among them). Required.
	Node *corev3.Node
	// TokenFile, when set, is read at the start of every stream and its
	// content (trimmed) sent as the node's naming.MetaToken metadata in
	// place of Node's: a projected ServiceAccount token that the kubelet
	// renews on disk is presented fresh at every reconnect. A file that
	// cannot be read fails that attempt, which is retried with backoff.
	TokenFile string
	// Types lists the type URLs to subscribe to; empty means AllTypes.
	Types []string
	// Handler receives validated updates. Required.
	Handler Handler
	// Logger receives connection and rejection logs; nil discards them.
	Logger *slog.Logger
	// InitialBackoff is the first reconnect delay; zero means
	// DefaultInitialBackoff.
	InitialBackoff time.Duration
	// MaxBackoff caps the reconnect delay, of the gRPC channel and of
	// the client alike (backoff.go); zero means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// DataDir, when set, is where the last accepted resources of every
	// type are kept (persist.go), to start from when the control plane
	// does not answer. The client creates it (0700); its files are 0600.
	DataDir string
	// RestoreAfter is how long Run waits for the control plane's first
	// response before it hands over the persisted resources; zero means
	// DefaultRestoreAfter. Used with DataDir only.
	RestoreAfter time.Duration
	// CheckRestored, when set, vets the persisted updates (one per type
	// found, in subscription order) before any reaches the Handler; an
	// error refuses them all, for example a workload certificate that
	// has expired. It is called from Run's goroutine, at most once.
	CheckRestored func([]Update) error
	// DialOptions are appended to the client's gRPC dial options.
	DialOptions []grpc.DialOption
	// LoadReports, when set, is read every load reporting interval and
	// its quota counts sent to the control plane as LRS load reports
	// (lrs.go, docs/xds.md "Load reports"), on the same connection. It
	// is called from one goroutine at a time and must not block.
	LoadReports func() []LoadCount
	// SotW makes the client speak state-of-the-world ADS only. By
	// default it speaks delta ADS (delta.go) and falls back to state of
	// the world for good when the control plane answers Unimplemented.
	SotW bool
	// Incremental hands the Handler delta updates as they come
	// (Update.Incremental) instead of whole sets, and the client keeps
	// no decoded resources of its own (Client.Resources returns nil):
	// the Handler keeps what it needs. Without it the client merges
	// every delta into the whole set it hands over.
	Incremental bool
}

// TypeStatus is the state of one subscribed type.
type TypeStatus struct {
	// Version is the last accepted version, empty before the first.
	Version string `json:"version"`
	// Nonce is the nonce of the last response, accepted or not.
	Nonce string `json:"nonce"`
	// LastError is the reason of the last rejection, cleared on accept.
	LastError string `json:"lastError,omitempty"`
	// Resources is the number of accepted resources.
	Resources int `json:"resources"`
	// Updated is when the type was last accepted.
	Updated time.Time `json:"updated,omitzero"`
	// Persisted is set while the type's resources are the persisted
	// ones (Version is then empty: nothing was accepted from the control
	// plane yet).
	Persisted bool `json:"persisted,omitempty"`
}

// Status is the client's state, for admin pages.
type Status struct {
	Target    string `json:"target"`
	Connected bool   `json:"connected"`
	LastError string `json:"lastError,omitempty"`
	// Source is where the configuration handed over comes from:
	// SourceNone, SourcePersisted or SourceControlPlane.
	Source string `json:"source,omitempty"`
	// Restore says what became of the persisted state at start, for
	// humans: empty without one, else restored or why not.
	Restore string `json:"restore,omitempty"`
	// Protocol is the xDS variant in use: "delta" or "sotw".
	Protocol string                `json:"protocol,omitempty"`
	Types    map[string]TypeStatus `json:"types"`
}

// DefaultRestoreAfter is how long a client waits for a control plane at
// start before it serves what it persisted.
const DefaultRestoreAfter = 2 * time.Second

// Client holds an ADS stream. Create it with New and drive it with Run.
type Client struct {
	cfg   Config
	log   *slog.Logger
	types []string

	responses       *prometheus.CounterVec
	reconnects      prometheus.Counter
	connected       prometheus.Gauge
	source          *prometheus.GaugeVec
	persistRejected *prometheus.CounterVec
	persistErrors   prometheus.Counter
	loads           loadMetrics

	// handleMu serializes calls of the Handler: the stream's responses
	// and the restore of persisted state.
	handleMu sync.Mutex // guards the following
	answered bool       // a response of the control plane was accepted

	mu        sync.Mutex // guards the following
	status    Status
	resources map[string]map[string]proto.Message // last accepted, by type; not with Incremental
	delta     map[string]*deltaState              // per type, delta streams only
	sotw      bool                                // speaking state of the world (Config.SotW or fallen back)
	running   bool
}

// New validates cfg and builds a client; its metrics are registered with
// reg when reg is not nil.
func New(cfg Config, reg prometheus.Registerer) (*Client, error) {
	switch {
	case cfg.Target == "":
		return nil, errors.New("xdsclient: target is required")
	case cfg.Credentials == nil && !cfg.Insecure:
		return nil, errors.New("xdsclient: credentials are required (or set Insecure)")
	case cfg.Node == nil || cfg.Node.GetId() == "":
		return nil, errors.New("xdsclient: node with an id is required")
	case cfg.Handler == nil:
		return nil, errors.New("xdsclient: handler is required")
	}
	if len(cfg.Types) == 0 {
		cfg.Types = AllTypes
	}
	for _, t := range cfg.Types {
		if newResource(t) == nil {
			return nil, fmt.Errorf("xdsclient: unsupported type %q", t)
		}
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = DefaultInitialBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.InitialBackoff)
	}
	if cfg.RestoreAfter <= 0 {
		cfg.RestoreAfter = DefaultRestoreAfter
	}
	if cfg.MaxBackoff < cfg.InitialBackoff {
		return nil, fmt.Errorf("xdsclient: max backoff %v is below initial backoff %v", cfg.MaxBackoff, cfg.InitialBackoff)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		cfg:   cfg,
		log:   log.With("component", "xdsclient", "target", cfg.Target),
		types: cfg.Types,
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_xds_responses_total",
			Help: "xDS responses received, by type, result (ack, nack) and reason of a NACK.",
		}, []string{"type", "result", "reason"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_xds_stream_reconnects_total",
			Help: "ADS streams opened after the first.",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_xds_connected",
			Help: "1 while an ADS stream to the control plane is open and has answered.",
		}),
		source: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_xds_config_source",
			Help: "1 for where the configuration in use comes from: persisted (the data directory, no control plane has answered since start) or control_plane.",
		}, []string{"source"}),
		persistRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_xds_persisted_rejected_total",
			Help: "Persisted xDS files refused at start and ignored, by reason (read, decode, type, version, name, duplicate, invalid, rejected, check).",
		}, []string{"reason"}),
		persistErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_xds_persist_errors_total",
			Help: "Accepted xDS responses that could not be written to the data directory.",
		}),
		loads:     newLoadMetrics(),
		status:    Status{Target: cfg.Target, Types: map[string]TypeStatus{}},
		resources: map[string]map[string]proto.Message{},
		delta:     map[string]*deltaState{},
		sotw:      cfg.SotW,
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.responses, c.reconnects, c.connected, c.source, c.persistRejected, c.persistErrors, c.loads.sent} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("xdsclient: register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Status returns a copy of the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Types = maps.Clone(c.status.Types)
	return s
}

// Resources returns the last accepted resources of one type (nil before
// the first accepted update, and always with Config.Incremental). The
// map and its messages must not be changed.
func (c *Client) Resources(typeURL string) map[string]proto.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resources[typeURL]
}

// Run holds the stream until ctx ends, reconnecting with backoff, and then
// returns nil. With Config.DataDir, it hands the Handler the persisted
// resources when no control plane has answered within RestoreAfter. It
// may be called once.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("xdsclient: Run called twice")
	}
	c.running = true
	c.mu.Unlock()

	opts := []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           connectParams(c.cfg.InitialBackoff, c.cfg.MaxBackoff),
		MinConnectTimeout: minConnectTimeout,
	})}
	if c.cfg.Credentials != nil {
		opts = append(opts, grpc.WithTransportCredentials(c.cfg.Credentials))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecureCreds()))
	}
	opts = append(opts, c.cfg.DialOptions...)
	conn, err := grpc.NewClient(c.cfg.Target, opts...)
	if err != nil {
		return fmt.Errorf("xdsclient: dial %s: %w", c.cfg.Target, err)
	}
	defer conn.Close()

	if c.cfg.LoadReports != nil {
		// Load reports share the connection and end before it closes.
		lctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.runLoadReports(lctx, conn)
		}()
		defer func() { stop(); <-done }()
	}

	if c.cfg.DataDir != "" {
		// The restore waits beside the stream and is done before Run
		// returns.
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.restoreAfter(rctx)
		}()
		defer func() { stop(); <-done }()
	}

	bo := &backoffPolicy{initial: c.cfg.InitialBackoff, max: c.cfg.MaxBackoff, rand: rand.Float64}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.reconnects.Inc()
		}
		got, err := c.runStream(ctx, conn)
		c.setConnected(false, err)
		if ctx.Err() != nil {
			return nil
		}
		if !got && c.fallBack(err) {
			continue // at once, in state of the world
		}
		if got {
			bo.reset()
		}
		d := bo.next()
		c.log.Warn("ads stream ended; reconnecting", "err", err, "backoff", d, "channel", conn.GetState())
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (c *Client) setConnected(up bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.Connected = up
	if err != nil {
		c.status.LastError = err.Error()
	} else if up {
		c.status.LastError = ""
	}
	if up {
		c.connected.Set(1)
	} else {
		c.connected.Set(0)
	}
}

// node is the node a new stream announces: Config.Node, with the token
// read from Config.TokenFile when one is set.
func (c *Client) node() (*corev3.Node, error) {
	if c.cfg.TokenFile == "" {
		return c.cfg.Node, nil
	}
	b, err := os.ReadFile(c.cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	n := proto.Clone(c.cfg.Node).(*corev3.Node)
	if n.Metadata == nil {
		n.Metadata = &structpb.Struct{}
	}
	if n.Metadata.Fields == nil {
		n.Metadata.Fields = map[string]*structpb.Value{}
	}
	n.Metadata.Fields[naming.MetaToken] = structpb.NewStringValue(strings.TrimSpace(string(b)))
	return n, nil
}

// runStream opens one ADS stream, delta or state of the world, and
// serves it until it fails. got reports whether any response arrived.
func (c *Client) runStream(ctx context.Context, conn *grpc.ClientConn) (got bool, err error) {
	c.mu.Lock()
	sotw := c.sotw
	if sotw {
		c.status.Protocol = protocolSotW
	} else {
		c.status.Protocol = protocolDelta
	}
	c.mu.Unlock()
	if !sotw {
		return c.runDeltaStream(ctx, conn)
	}
	return c.runSotWStream(ctx, conn)
}

// runSotWStream opens one state-of-the-world ADS stream and serves it
// until it fails.
func (c *Client) runSotWStream(ctx context.Context, conn *grpc.ClientConn) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s := conn.GetState(); s == connectivity.TransientFailure {
		c.log.Debug("waiting for the control plane", "channel", s)
	}
	// WaitForReady: while the control plane is away the stream waits for
	// the channel, whose backoff alone decides when to try again, and
	// opens as soon as the channel is Ready.
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return false, fmt.Errorf("open ads stream: %w", err)
	}
	subscribe := func(t string, node *corev3.Node) *discoveryv3.DiscoveryRequest {
		return &discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: c.version(t), Node: node}
	}
	handle := func(resp *discoveryv3.DiscoveryResponse) (*discoveryv3.DiscoveryRequest, bool) {
		req := c.handle(resp)
		return req, req != nil
	}
	return serve(c, stream, subscribe, handle, "ads stream established")
}

func (c *Client) version(typeURL string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status.Types[typeURL].Version
}

// handle processes one response and returns the ACK or NACK to send, or
// nil for a type the client did not ask for.
func (c *Client) handle(resp *discoveryv3.DiscoveryResponse) *discoveryv3.DiscoveryRequest {
	t := resp.GetTypeUrl()
	if !c.subscribed(t) {
		return nil
	}
	req := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
	c.handleMu.Lock()
	defer c.handleMu.Unlock()
	res, reason, err := Decode(t, resp.GetResources())
	if err == nil {
		reason, err = c.offer(Update{TypeURL: t, Version: resp.GetVersionInfo(), Resources: res})
	}
	// The file is written after c.mu is released (defers run last in,
	// first out), still under handleMu, so files follow accept order.
	var persist func()
	defer func() {
		if persist != nil {
			persist()
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		req.ErrorDetail = c.rejectLocked(t, resp.GetNonce(), resp.GetVersionInfo(), reason, err)
		req.VersionInfo = c.status.Types[t].Version
		return req
	}
	c.acceptLocked(t, resp.GetNonce(), resp.GetVersionInfo(), len(res), res)
	delete(c.delta, t) // a delta stream after a fallback would start afresh
	ts := c.status.Types[t]
	c.log.Debug("accepted xds response", "type", shortType(t), "version", ts.Version, "resources", len(res))
	req.VersionInfo = ts.Version
	if c.cfg.DataDir != "" {
		version := ts.Version
		persist = func() { c.save(t, version, resp.GetResources()) }
	}
	return req
}

// Decode turns the Any resources of one response into typed, named,
// proto-validated messages. On failure it returns a short reason for the
// metrics label (decode, type, name, duplicate, invalid) and an error
// wrapping ErrRejected that names the resource.
func Decode(typeURL string, anys []*anypb.Any) (map[string]proto.Message, string, error) {
	out := make(map[string]proto.Message, len(anys))
	for i, a := range anys {
		if a.GetTypeUrl() == resourcev3.APITypePrefix+"envoy.service.discovery.v3.Resource" {
			var wrapped discoveryv3.Resource
			if err := a.UnmarshalTo(&wrapped); err != nil {
				return nil, "decode", fmt.Errorf("%w: resource %d: %w", ErrRejected, i, err)
			}
			a = wrapped.GetResource()
		}
		if a.GetTypeUrl() != typeURL {
			return nil, "type", fmt.Errorf("%w: resource %d has type %q in a %q response", ErrRejected, i, a.GetTypeUrl(), typeURL)
		}
		m := newResource(typeURL)
		if err := a.UnmarshalTo(m); err != nil {
			return nil, "decode", fmt.Errorf("%w: resource %d of %s: %w", ErrRejected, i, shortType(typeURL), err)
		}
		name := resourceName(m)
		if name == "" {
			return nil, "name", fmt.Errorf("%w: resource %d of %s has no name", ErrRejected, i, shortType(typeURL))
		}
		if _, dup := out[name]; dup {
			return nil, "duplicate", fmt.Errorf("%w: %s %q appears twice", ErrRejected, shortType(typeURL), name)
		}
		if err := pgv.Validate(m); err != nil {
			return nil, "invalid", fmt.Errorf("%w: %s %q: %w", ErrRejected, shortType(typeURL), name, err)
		}
		out[name] = m
	}
	return out, "", nil
}

func newResource(typeURL string) proto.Message {
	switch typeURL {
	case ClusterType:
		return &clusterv3.Cluster{}
	case EndpointType:
		return &endpointv3.ClusterLoadAssignment{}
	case ListenerType:
		return &listenerv3.Listener{}
	case RouteType:
		return &routev3.RouteConfiguration{}
	case SecretType:
		return &tlsv3.Secret{}
	}
	return nil
}

func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case interface{ GetName() string }:
		return r.GetName()
	}
	return ""
}

// shortType turns a type URL into a metric label: Cluster, Listener, ...
func shortType(typeURL string) string {
	switch typeURL {
	case ClusterType:
		return "cluster"
	case EndpointType:
		return "endpoint"
	case ListenerType:
		return "listener"
	case RouteType:
		return "route"
	case SecretType:
		return "secret"
	}
	return "other"
}

// setSourceLocked sets Status.Source and the source gauge from the types'
// state. c.mu must be held.
func (c *Client) setSourceLocked() {
	src := SourceNone
	for _, t := range c.types {
		ts, ok := c.status.Types[t]
		switch {
		case !ok:
		case ts.Persisted:
			src = SourcePersisted
		case src == SourceNone:
			src = SourceControlPlane
		}
	}
	c.status.Source = src
	for _, s := range []string{SourcePersisted, SourceControlPlane} {
		v := 0.0
		if s == src {
			v = 1
		}
		c.source.WithLabelValues(s).Set(v)
	}
}

// save writes one accepted response to the data directory. A failure is
// logged and counted; the client goes on with the update accepted.
func (c *Client) save(typeURL, version string, resources []*anypb.Any) {
	path := persistedFile(c.cfg.DataDir, typeURL)
	b, err := encodePersisted(typeURL, version, resources)
	if err == nil {
		err = writeFileAtomic(path, b)
	}
	if err != nil {
		c.persistErrors.Inc()
		c.log.Warn("cannot persist xds resources", "type", shortType(typeURL), "file", path, "err", err)
	}
}

// loadPersisted reads the data directory: one update per type whose file
// exists and is sound, in subscription order. Bad files are logged,
// counted and left out.
func (c *Client) loadPersisted() []Update {
	var out []Update
	for _, t := range c.types {
		path := persistedFile(c.cfg.DataDir, t)
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			c.persistRejected.WithLabelValues("read").Inc()
			c.log.Error("ignoring persisted xds file", "file", path, "reason", "read", "err", err)
			continue
		}
		u, reason, err := DecodePersisted(t, b)
		if err != nil {
			c.persistRejected.WithLabelValues(reason).Inc()
			c.log.Error("ignoring persisted xds file", "file", path, "reason", reason, "err", err)
			continue
		}
		out = append(out, u)
	}
	return out
}

// restoreAfter waits RestoreAfter for the control plane's first accepted
// response; when none came, it hands the Handler the persisted updates.
func (c *Client) restoreAfter(ctx context.Context) {
	t := time.NewTimer(c.cfg.RestoreAfter)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	c.restore()
}

// restore hands over the persisted updates unless the control plane has
// answered. An update the Handler rejects is counted and left out.
func (c *Client) restore() {
	c.handleMu.Lock()
	defer c.handleMu.Unlock()
	if c.answered {
		return
	}
	updates := c.loadPersisted()
	note := func(s string) {
		c.mu.Lock()
		c.status.Restore = s
		c.mu.Unlock()
	}
	if len(updates) == 0 {
		note("no control plane answered and nothing is persisted")
		return
	}
	if c.cfg.CheckRestored != nil {
		if err := c.cfg.CheckRestored(updates); err != nil {
			c.persistRejected.WithLabelValues("check").Inc()
			c.log.Error("not serving the persisted configuration", "dir", c.cfg.DataDir, "err", err)
			note("refused: " + err.Error())
			return
		}
	}
	var restored []string
	for _, u := range updates {
		if err := c.cfg.Handler.OnUpdate(u); err != nil {
			c.persistRejected.WithLabelValues("rejected").Inc()
			c.log.Error("ignoring persisted xds file", "file", persistedFile(c.cfg.DataDir, u.TypeURL), "reason", "rejected", "err", err)
			continue
		}
		restored = append(restored, shortType(u.TypeURL))
		c.mu.Lock()
		c.status.Types[u.TypeURL] = TypeStatus{Resources: len(u.Resources), Updated: time.Now(), Persisted: true}
		if !c.cfg.Incremental {
			c.resources[u.TypeURL] = u.Resources
		}
		c.setSourceLocked()
		c.mu.Unlock()
	}
	c.log.Warn("no control plane answered; serving the persisted configuration until one does",
		"after", c.cfg.RestoreAfter, "dir", c.cfg.DataDir, "types", restored)
	note("restored " + strings.Join(restored, ","))
}
