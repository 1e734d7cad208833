package replicate

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
)

// Defaults.
const (
	// DefaultProbeInterval is how often the peer's etcd is asked for its
	// revision while the watch runs (and at once when its connection
	// comes back). Whether the peer answers meanwhile is the
	// connection's state, kept by keepalive pings: the probe is for the
	// revision (the import lag, a recreated etcd) and a peer without a
	// leader.
	DefaultProbeInterval = 30 * time.Second
	// DefaultProbeTimeout is how long a probe, or a keepalive ping, may
	// go unanswered before the peer counts as not answering.
	DefaultProbeTimeout = 5 * time.Second
	// DefaultDialTimeout bounds one connection attempt to the peer.
	DefaultDialTimeout = 5 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the jittered
	// exponential backoff between reconnections.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	// DefaultDeniedMaxBackoff bounds the backoff while the peer refuses
	// to list its exports for lack of permission (it has not granted this
	// cluster read access yet).
	DefaultDeniedMaxBackoff = 15 * time.Second
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid replicator config")

// Config configures a Replicator of one peer.
type Config struct {
	// Local is this cluster's name, for logs.
	Local string
	// Peer is the cluster whose exports are replicated (a DNS-1123 label).
	Peer string

	// Endpoints are the peer's etcd client URLs (its catalog address from
	// gossip). The Replicator dials them itself and closes its client on
	// return. Exactly one of Endpoints and Client is set.
	Endpoints []string
	// TLS is the client TLS configuration for https endpoints: this
	// control plane's certificate (its common name is the etcd user the
	// peer granted read access) and the federation's roots.
	TLS *tls.Config
	// Client is an etcd client to use instead of dialing Endpoints, such as
	// the local store's own client when following this cluster's exports.
	// It is not closed by the Replicator.
	Client *clientv3.Client

	// FromRevision is the peer revision that Initial is at (the persisted
	// import state): the watch resumes after it. Zero lists the prefix
	// first.
	FromRevision int64
	// Initial is the peer's export set at FromRevision, as persisted. It
	// is the base the watch's changes apply to; ignored when FromRevision
	// is zero.
	Initial []catalog.Export

	// Scope, if set, names the services replicated (scoped imports: the
	// services this cluster's workloads consume). The peer's other
	// exports are skipped by key, before they are decoded: never
	// delivered, kept or persisted. nil replicates every export.
	Scope func(catalog.ServiceKey) bool

	// OnExports receives the peer's whole export set after every change.
	// It is called from one goroutine at a time and must not block for
	// long: the watch waits for it.
	OnExports func(Snapshot)
	// OnState is called when the peer starts or stops answering. It is
	// called from one goroutine at a time and must not block for long.
	// Optional.
	OnState func(State)

	// ProbeInterval is how often the peer is asked for its revision.
	// Default DefaultProbeInterval.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe and one keepalive ping of the
	// connection; a probe that fails or times out, or a connection
	// closed for an unanswered ping, marks the peer disconnected.
	// Default DefaultProbeTimeout.
	ProbeTimeout time.Duration
	// DialTimeout bounds a connection attempt. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential backoff
	// between restarts of the watch. Defaults DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// DeniedMaxBackoff bounds the backoff while the peer refuses the list
	// for lack of permission. Default DefaultDeniedMaxBackoff; never below
	// MaxBackoff.
	DeniedMaxBackoff time.Duration

	// Now tells the time; default time.Now.
	Now func() time.Time
	// Logger receives the replicator's logs; default slog.Default().
	Logger *slog.Logger
	// Metrics counts updates, resyncs, restarts and refused values; nil
	// counts nothing. One Metrics serves every replicator of a process.
	Metrics *Metrics
}

func (c Config) withDefaults() (Config, error) {
	if why := catalog.IsDNS1123Label(c.Peer); why != "" {
		return c, fmt.Errorf("%w: peer %q %s", ErrConfig, c.Peer, why)
	}
	switch {
	case c.Client == nil && len(c.Endpoints) == 0:
		return c, fmt.Errorf("%w: peer %s: neither endpoints nor a client", ErrConfig, c.Peer)
	case c.Client != nil && len(c.Endpoints) != 0:
		return c, fmt.Errorf("%w: peer %s: both endpoints and a client", ErrConfig, c.Peer)
	}
	for _, e := range c.Endpoints {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("%w: peer %s: endpoint %q is not an http or https URL", ErrConfig, c.Peer, e)
		}
		if u.Scheme == "https" && c.TLS == nil {
			return c, fmt.Errorf("%w: peer %s: endpoint %s is https but no TLS config is given", ErrConfig, c.Peer, e)
		}
	}
	if c.FromRevision < 0 {
		return c, fmt.Errorf("%w: peer %s: negative revision %d", ErrConfig, c.Peer, c.FromRevision)
	}
	if c.OnExports == nil {
		return c, fmt.Errorf("%w: peer %s: OnExports is required", ErrConfig, c.Peer)
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.DeniedMaxBackoff == 0 {
		c.DeniedMaxBackoff = DefaultDeniedMaxBackoff
	}
	switch {
	case c.ProbeInterval < 0, c.ProbeTimeout < 0, c.DialTimeout < 0, c.MinBackoff < 0:
		return c, fmt.Errorf("%w: peer %s: negative duration", ErrConfig, c.Peer)
	case c.MaxBackoff < c.MinBackoff:
		return c, fmt.Errorf("%w: peer %s: max backoff %s is below min backoff %s", ErrConfig, c.Peer, c.MaxBackoff, c.MinBackoff)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
