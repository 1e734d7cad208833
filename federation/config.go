package federation

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation/fence"
	"github.com/fedmesh/fedmesh/federation/gwprobe"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/proof"
	"github.com/fedmesh/fedmesh/federation/replicate"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/topology"
)

// Defaults.
const (
	// DefaultFencePeriod is how long a peer's catalog may be unreachable
	// before its endpoints are fenced.
	DefaultFencePeriod = 15 * time.Second
	// DefaultDebounce is how long changes are gathered into one view.
	DefaultDebounce = 20 * time.Millisecond
	// DefaultIOTimeout bounds one write to the local store.
	DefaultIOTimeout = 10 * time.Second
	// DefaultMaxProofBackoff bounds the wait between two proofs of a
	// member that has not proved its identity.
	DefaultMaxProofBackoff = 30 * time.Second
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid federation config")

// Store is what the federation needs of the local etcd store. Its methods
// are called from several goroutines at once. *store.Store implements it.
type Store interface {
	// Client is the store's etcd client; the federation watches this
	// cluster's exports prefix with it.
	Client() *clientv3.Client
	// ListImports reads what was persisted of every peer.
	ListImports(ctx context.Context) (map[string]store.PeerImports, error)
	// SetImports persists a peer's whole export set and import state.
	SetImports(ctx context.Context, peer string, exports []catalog.Export, state store.ImportState) error
	// UpdateImports persists a change of a peer's exports and its import
	// state.
	UpdateImports(ctx context.Context, peer string, puts []catalog.Export, deletes []catalog.ServiceKey, state store.ImportState) error
	// DeleteImports forgets everything persisted of a peer that left.
	DeleteImports(ctx context.Context, peer string) error
	// GrantPeerRead lets a peer's etcd user read this cluster's exports.
	GrantPeerRead(ctx context.Context, peerUser string) error
}

var _ Store = (*store.Store)(nil)

// Membership is what the federation needs of serf membership. Its methods
// are called from the federation's goroutine. *membership.Membership
// implements it.
type Membership interface {
	// Members returns the valid members, this one included.
	Members() []membership.Member
	// Subscribe wakes the caller after every membership change.
	Subscribe() (<-chan struct{}, func())
	// Forgotten names the members forgotten for good on this control
	// plane (membership.Membership.ForceLeave), also those serf no longer
	// knows, until they join again.
	Forgotten() []string
}

var _ Membership = (*membership.Membership)(nil)

// Prover checks that a gossip member is the control plane of the
// cluster it names. Its methods are called from several goroutines at
// once. *proof.Prover implements it.
type Prover interface {
	// Prove checks the identity the member's catalog address presents;
	// the error of a refusal is a *proof.Error.
	Prove(ctx context.Context, cluster, catalog string) (proof.Identity, error)
	// PeerTLS returns base restricted to the control plane identity of
	// cluster, reporting refusals to onRefuse; nil stays nil.
	PeerTLS(base *tls.Config, cluster string, onRefuse func(error)) *tls.Config
}

var _ Prover = (*proof.Prover)(nil)

// Config configures a Federation.
type Config struct {
	// Cluster is this cluster's name.
	Cluster string
	// Locality is this cluster's region and zone; Locality.Cluster is set
	// to Cluster.
	Locality topology.Locality
	// GatewayAddress is this cluster's east-west gateway, host:port, as
	// announced in gossip.
	GatewayAddress string
	// CIDRs are the address ranges this cluster declares (also announced
	// in gossip); the view's ClusterInfo.CIDRs. Optional.
	CIDRs []netip.Prefix

	// Store is this cluster's etcd store. Required.
	Store Store
	// Membership is this control plane's serf membership. Required.
	Membership Membership
	// Prover proves every gossip member's control plane identity before
	// the member is trusted: granted read access, replicated, shown as a
	// member, allowed to fence or unfence its endpoints. The gossip key
	// alone proves nothing. Required.
	Prover Prover
	// MaxProofBackoff bounds the wait between proofs of a member that
	// has not proven itself; the first wait is MinBackoff. Default
	// DefaultMaxProofBackoff.
	MaxProofBackoff time.Duration
	// PeerTLS is the client TLS configuration for peers' etcd: this
	// control plane's certificate and the federation's roots. Required
	// when peers announce https catalog addresses.
	PeerTLS *tls.Config
	// ImportScope, if not empty, is the services this cluster's
	// workloads consume (scoped imports): only their exports are
	// replicated from peers, merged, persisted and planned; peers' other
	// exports are skipped before they are decoded. This cluster's own
	// exports are merged whatever the scope. Empty: every peer export.
	ImportScope []catalog.ServiceKey
	// GrantPeerRead grants every peer that proved its identity read-only
	// access to this cluster's exports (with etcd auth on).
	GrantPeerRead bool
	// PeerUser names a peer's etcd user; default "fedmesh-cp-<peer>".
	PeerUser func(peer string) string

	// FencePeriod is how long a peer's catalog may be unreachable before
	// its control plane counts as gone (see package fence). Default
	// DefaultFencePeriod.
	FencePeriod time.Duration
	// ProbeBundle is the federation's trust bundle. With it, every
	// peer's gateway is probed through the mTLS path (package gwprobe)
	// and a peer is fenced on that evidence too: one whose control plane
	// is gone keeps its endpoints while its gateway serves. Nil: no
	// probes; fencing follows the control plane alone.
	ProbeBundle identity.BundleSource
	// ProbeCertificate is this control plane's SVID. With it (and
	// ProbeBundle), a peer that exports no service with a ready endpoint
	// is probed too: its gateway answers such a probe itself (package
	// gwprobe), so a dead peer without exports is fenced as fast as one
	// with, and a live one is not fenced for its control plane alone.
	// Nil: such a peer is not probed.
	ProbeCertificate identity.CertSource
	// GatewayProbeInterval is the mean time between probes of a peer's
	// gateway. Default gwprobe.DefaultInterval.
	GatewayProbeInterval time.Duration
	// GatewayProbeTimeout bounds one probe. Default
	// gwprobe.DefaultTimeout.
	GatewayProbeTimeout time.Duration
	// GatewayProbeFailures is how many probes of a peer's gateway in a
	// row must fail before it is fenced, whatever its control plane
	// says. Default fence.DefaultProbeFailures.
	GatewayProbeFailures int
	// StaleAfter bounds how old a peer's last confirmed state may grow
	// while its control plane is gone and its gateway serves; then it is
	// fenced. Default fence.DefaultStaleAfter.
	StaleAfter time.Duration
	// Debounce is how long changes are gathered before a new view is
	// published. Default DefaultDebounce; negative publishes at once.
	Debounce time.Duration
	// ProbeInterval, ProbeTimeout, MinBackoff and MaxBackoff tune the
	// replicators (see replicate.Config); zero takes replicate's defaults.
	ProbeInterval, ProbeTimeout, MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds a replicator's connection to a peer's catalog;
	// zero takes replicate.DefaultDialTimeout.
	DialTimeout time.Duration
	// IOTimeout bounds one write to the local store. Default
	// DefaultIOTimeout.
	IOTimeout time.Duration

	// Now tells the time; default time.Now.
	Now func() time.Time
	// Logger receives the federation's logs; default slog.Default().
	Logger *slog.Logger
	// Registerer registers the federation's and the replicators' metrics;
	// nil leaves them unregistered.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() (Config, error) {
	if why := catalog.IsDNS1123Label(c.Cluster); why != "" {
		return c, fmt.Errorf("%w: cluster %q %s", ErrConfig, c.Cluster, why)
	}
	if c.Locality.Cluster != "" && c.Locality.Cluster != c.Cluster {
		return c, fmt.Errorf("%w: locality names cluster %q, not %q", ErrConfig, c.Locality.Cluster, c.Cluster)
	}
	for _, k := range c.ImportScope {
		if why := catalog.IsDNS1123Label(k.Namespace); why != "" {
			return c, fmt.Errorf("%w: import scope: service %s: namespace %s", ErrConfig, k, why)
		}
		if why := catalog.IsDNS1123Label(k.Name); why != "" {
			return c, fmt.Errorf("%w: import scope: service %s: name %s", ErrConfig, k, why)
		}
	}
	c.Locality.Cluster = c.Cluster
	for _, p := range c.CIDRs {
		if !p.IsValid() || p.Masked() != p {
			return c, fmt.Errorf("%w: cluster CIDR %s is not a canonical prefix", ErrConfig, p)
		}
	}
	if c.Store == nil {
		return c, fmt.Errorf("%w: a store is required", ErrConfig)
	}
	if c.Membership == nil {
		return c, fmt.Errorf("%w: a membership is required", ErrConfig)
	}
	if c.Prover == nil {
		return c, fmt.Errorf("%w: a prover of members' identities is required", ErrConfig)
	}
	if c.MaxProofBackoff == 0 {
		c.MaxProofBackoff = DefaultMaxProofBackoff
	}
	if c.MaxProofBackoff < 0 {
		return c, fmt.Errorf("%w: negative max proof backoff %s", ErrConfig, c.MaxProofBackoff)
	}
	if c.PeerUser == nil {
		c.PeerUser = func(peer string) string { return "fedmesh-cp-" + peer }
	}
	if c.FencePeriod == 0 {
		c.FencePeriod = DefaultFencePeriod
	}
	if c.FencePeriod < 0 {
		return c, fmt.Errorf("%w: negative fence period %s", ErrConfig, c.FencePeriod)
	}
	if c.GatewayProbeInterval < 0 || c.GatewayProbeTimeout < 0 || c.GatewayProbeFailures < 0 || c.StaleAfter < 0 {
		return c, fmt.Errorf("%w: negative gateway probe interval %s, timeout %s, failures %d or staleness bound %s",
			ErrConfig, c.GatewayProbeInterval, c.GatewayProbeTimeout, c.GatewayProbeFailures, c.StaleAfter)
	}
	c.GatewayProbeInterval = cmp.Or(c.GatewayProbeInterval, gwprobe.DefaultInterval)
	c.GatewayProbeTimeout = cmp.Or(c.GatewayProbeTimeout, gwprobe.DefaultTimeout)
	c.GatewayProbeFailures = cmp.Or(c.GatewayProbeFailures, fence.DefaultProbeFailures)
	c.StaleAfter = cmp.Or(c.StaleAfter, fence.DefaultStaleAfter)
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.IOTimeout == 0 {
		c.IOTimeout = DefaultIOTimeout
	}
	if c.IOTimeout < 0 {
		return c, fmt.Errorf("%w: negative IO timeout %s", ErrConfig, c.IOTimeout)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// proofMinBackoff is the first wait after a failed proof.
func (c *Config) proofMinBackoff() time.Duration {
	return min(cmp.Or(c.MinBackoff, replicate.DefaultMinBackoff), c.MaxProofBackoff)
}

// tickInterval is how often fencing and RTT are re-evaluated.
func (c *Config) tickInterval() time.Duration {
	return min(max(c.FencePeriod/4, 50*time.Millisecond), time.Second)
}

// fenceConfig is the bounds of the fencing decision. A probe result is
// evidence for two of the longest waits between probes plus a timeout,
// so that one late round changes nothing.
func (c *Config) fenceConfig() fence.Config {
	longest := time.Duration(float64(c.GatewayProbeInterval) * (1 + gwprobe.Jitter))
	return fence.Config{
		CatalogPeriod: c.FencePeriod,
		ProbeFailures: c.GatewayProbeFailures,
		ProbeGrace:    2*longest + c.GatewayProbeTimeout,
		StaleAfter:    c.StaleAfter,
	}
}
