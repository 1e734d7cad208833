package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/topology"
)

// DefaultBindPort is the serf gossip port (TCP and UDP) of a control plane.
const DefaultBindPort = 7946

// Profile selects gossip timings. Presets build on each other: WAN is
// memberlist's DefaultWANConfig, LAN its DefaultLANConfig, Local its
// DefaultLocalConfig with faster push-pull, reconnect and reap.
type Profile string

const (
	// ProfileWAN suits control planes in different networks or regions:
	// slow probes, tolerant failure detection. The default.
	ProfileWAN Profile = "wan"
	// ProfileLAN suits control planes on one fast network.
	ProfileLAN Profile = "lan"
	// ProfileLocal suits several control planes on one machine (local mode
	// and tests): probes every 500ms, failure detected in about two
	// seconds, failed members reaped after ReconnectTimeout (default 30s).
	ProfileLocal Profile = "local"
)

// profileTimings are the serf-level timings of a profile; memberlist's
// come from its own presets.
type profileTimings struct {
	reconnectTimeout  time.Duration // how long a failed member is kept before it is reaped
	tombstoneTimeout  time.Duration // how long a left member is kept
	reapInterval      time.Duration
	serfReconnect     time.Duration // serf's own attempts to reach failed members
	rejoinInterval    time.Duration // our rejoin loop over known addresses
	memberlistPresets func() *memberlist.Config
}

func (p Profile) timings() (profileTimings, error) {
	switch p {
	case ProfileWAN:
		return profileTimings{
			reconnectTimeout:  24 * time.Hour,
			tombstoneTimeout:  24 * time.Hour,
			reapInterval:      15 * time.Second,
			serfReconnect:     30 * time.Second,
			rejoinInterval:    time.Minute,
			memberlistPresets: withReclaim(memberlist.DefaultWANConfig, 30*time.Second),
		}, nil
	case ProfileLAN:
		return profileTimings{
			reconnectTimeout:  time.Hour,
			tombstoneTimeout:  time.Hour,
			reapInterval:      15 * time.Second,
			serfReconnect:     15 * time.Second,
			rejoinInterval:    30 * time.Second,
			memberlistPresets: withReclaim(memberlist.DefaultLANConfig, 30*time.Second),
		}, nil
	case ProfileLocal:
		return profileTimings{
			reconnectTimeout: 30 * time.Second,
			tombstoneTimeout: 30 * time.Second,
			reapInterval:     time.Second,
			serfReconnect:    2 * time.Second,
			rejoinInterval:   2 * time.Second,
			memberlistPresets: func() *memberlist.Config {
				c := memberlist.DefaultLocalConfig()
				c.ProbeInterval = 500 * time.Millisecond
				c.ProbeTimeout = 250 * time.Millisecond
				c.GossipInterval = 50 * time.Millisecond
				c.PushPullInterval = 5 * time.Second
				c.GossipToTheDeadTime = 5 * time.Second
				c.SuspicionMaxTimeoutMult = 2
				c.DeadNodeReclaimTime = time.Second
				return c
			},
		}, nil
	}
	return profileTimings{}, fmt.Errorf("unknown profile %q: want wan, lan or local", string(p))
}

// withReclaim lets a cluster whose member has been dead for d come back
// from another address under the same name (a restarted control plane
// that got a new address); memberlist's default never allows it.
func withReclaim(preset func() *memberlist.Config, d time.Duration) func() *memberlist.Config {
	return func() *memberlist.Config {
		c := preset()
		c.DeadNodeReclaimTime = d
		return c
	}
}

// Config configures one control plane's membership. Zero values are
// filled by New; contradictions are errors.
type Config struct {
	// NodeName is this cluster's name, a DNS-1123 label, unique in the
	// federation. It is the "cluster" tag, and the serf member name when
	// Replica is empty.
	NodeName string
	// Replica names this control plane among the replicas of its cluster
	// (the pod name), a DNS-1123 label. When set, the serf member name is
	// NodeName.Replica (see MemberName) and the "rep" tag carries it, so
	// several replicas of one cluster gossip side by side. Empty: one
	// replica, whose member name is NodeName.
	Replica string
	// Locality is where this cluster runs. Region is required; Cluster is
	// filled from NodeName and, when set, must equal it.
	Locality topology.Locality
	// GatewayAddr is this cluster's east-west gateway, host:port.
	GatewayAddr string
	// CatalogAddr is the etcd client URL peers replicate this cluster's
	// exports from, e.g. https://127.0.0.11:2379.
	CatalogAddr string
	// CIDRs are the address ranges this cluster's workloads and nodes
	// send from, announced in the cidrs tag (see ParseCIDRs for the
	// rules: canonical, distinct, at most MaxCIDRs). Optional.
	CIDRs []netip.Prefix

	// BindAddr is the IP address serf listens on (TCP and UDP). Default
	// 0.0.0.0, which needs AdvertiseAddr or a private address on the host.
	BindAddr string
	// BindPort is the gossip port; 0 picks a free port (tests), which
	// Local().Addr then reports. Control planes pass DefaultBindPort.
	BindPort int
	// AdvertiseAddr is the IP address peers reach this member on. Default:
	// the bound address.
	AdvertiseAddr string
	// AdvertisePort is the port peers reach this member on. Default: the
	// bound port.
	AdvertisePort int

	// Keys is the gossip keyring, 16, 24 or 32 bytes each, the first the
	// primary key used to encrypt. Ignored when KeyringFile exists. When
	// both are empty New generates a random key: a federation of one that
	// AdoptKeys later moves into a real federation.
	Keys [][]byte
	// KeyringFile, if set, persists the keyring (serf's format: a JSON list
	// of base64 keys, primary first). Read at start when it exists; written
	// on every key change.
	KeyringFile string
	// SnapshotPath, if set, is serf's snapshot file, so that a restarted
	// control plane rejoins the members it knew.
	SnapshotPath string

	// Profile selects gossip timings. Default ProfileWAN.
	Profile Profile
	// ReconnectTimeout is how long a failed member is kept (and retried by
	// serf) before it is reaped. Zero: the profile's.
	ReconnectTimeout time.Duration
	// TombstoneTimeout is how long a member that left is kept. Zero: the
	// profile's.
	TombstoneTimeout time.Duration
	// ReconnectInterval is the period of the rejoin loop, which joins the
	// known addresses of members that are not alive (also those reaped
	// after a long partition). Zero: the profile's.
	ReconnectInterval time.Duration
	// ForgetAfter is how long a known member that is not seen alive is
	// still retried by the rejoin loop. Default 72h.
	ForgetAfter time.Duration
	// KnownMembers persists the addresses of members seen alive. Default:
	// in memory only.
	KnownMembers KnownMembers

	// WrapTransport, if set, wraps the network transport serf's memberlist
	// uses; tests inject faults with it (see package faulttransport).
	WrapTransport func(memberlist.Transport) memberlist.Transport

	// Logger receives membership logs and serf's own. Default: discard.
	Logger *slog.Logger
	// Registerer registers the membership metrics. Default: none.
	Registerer prometheus.Registerer
	// Now tells the time for known-member bookkeeping; default time.Now.
	Now func() time.Time
}

// defaulted returns a copy of c with zero values filled, or an error for
// contradictions.
func (c Config) defaulted() (Config, profileTimings, error) {
	if !IsClusterName(c.NodeName) {
		return c, profileTimings{}, fmt.Errorf("node name %q is not a valid cluster name (a DNS-1123 label)", c.NodeName)
	}
	if c.Replica != "" && !isLabel(c.Replica) {
		return c, profileTimings{}, fmt.Errorf("replica %q is not a DNS-1123 label", c.Replica)
	}
	if c.Locality.Cluster == "" {
		c.Locality.Cluster = c.NodeName
	}
	if c.Locality.Cluster != c.NodeName {
		return c, profileTimings{}, fmt.Errorf("locality cluster %q differs from node name %q", c.Locality.Cluster, c.NodeName)
	}
	if c.Profile == "" {
		c.Profile = ProfileWAN
	}
	t, err := c.Profile.timings()
	if err != nil {
		return c, t, err
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if _, err := netip.ParseAddr(c.BindAddr); err != nil {
		return c, t, fmt.Errorf("bind address %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" {
		if _, err := netip.ParseAddr(c.AdvertiseAddr); err != nil {
			return c, t, fmt.Errorf("advertise address %q is not an IP address", c.AdvertiseAddr)
		}
	}
	if c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return c, t, errors.New("bind and advertise ports must be from 0 to 65535")
	}
	for i, k := range c.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return c, t, fmt.Errorf("gossip key %d: %w", i, err)
		}
	}
	if c.ReconnectTimeout < 0 || c.TombstoneTimeout < 0 || c.ReconnectInterval < 0 || c.ForgetAfter < 0 {
		return c, t, errors.New("timeouts and intervals must not be negative")
	}
	if c.ReconnectTimeout == 0 {
		c.ReconnectTimeout = t.reconnectTimeout
	}
	if c.TombstoneTimeout == 0 {
		c.TombstoneTimeout = t.tombstoneTimeout
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = t.rejoinInterval
	}
	if c.ForgetAfter == 0 {
		c.ForgetAfter = 72 * time.Hour
	}
	if c.KnownMembers == nil {
		c.KnownMembers = &MemoryKnownMembers{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, t, nil
}

// serfConfig builds serf's configuration for this member.
func (c Config) serfConfig(t profileTimings, tags map[string]string, transport memberlist.Transport,
	keyring *memberlist.Keyring, eventCh chan serf.Event, merge serf.MergeDelegate, logger *logAdapter) *serf.Config {
	sc := serf.DefaultConfig()
	sc.NodeName = MemberName(c.NodeName, c.Replica)
	sc.Tags = tags
	sc.EventCh = eventCh
	sc.Merge = merge
	sc.SnapshotPath = c.SnapshotPath
	sc.KeyringFile = c.KeyringFile
	sc.ReconnectTimeout = c.ReconnectTimeout
	sc.TombstoneTimeout = c.TombstoneTimeout
	sc.ReapInterval = min(t.reapInterval, max(c.ReconnectTimeout/2, 100*time.Millisecond))
	sc.ReconnectInterval = min(t.serfReconnect, max(c.ReconnectTimeout/2, 100*time.Millisecond))
	sc.ValidateNodeNames = true
	// A second member claiming our name is refused by the merge delegate
	// before memberlist sees a conflict; serf's own resolution (which can
	// shut the local node down) stays as a last resort.
	sc.EnableNameConflictResolution = true
	sc.Logger = logger.logger("serf")
	sc.LogOutput = nil

	ml := t.memberlistPresets()
	ml.Name = sc.NodeName
	ml.Transport = transport
	ml.Keyring = keyring
	ml.GossipVerifyIncoming = true
	ml.GossipVerifyOutgoing = true
	ml.Logger = logger.logger("memberlist")
	ml.LogOutput = nil
	ml.BindAddr = c.BindAddr
	ml.AdvertiseAddr = c.AdvertiseAddr
	ml.AdvertisePort = c.AdvertisePort
	sc.MemberlistConfig = ml
	return sc
}

// newTransport binds memberlist's network transport, retrying when a free
// TCP port turns out to be taken for UDP.
func newTransport(c Config, logger *logAdapter) (*memberlist.NetTransport, int, error) {
	var lastErr error
	for range 10 {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{c.BindAddr},
			BindPort:  c.BindPort,
			Logger:    logger.logger("memberlist"),
		})
		if err == nil {
			return nt, nt.GetAutoBindPort(), nil
		}
		lastErr = err
		if c.BindPort != 0 {
			break
		}
	}
	return nil, 0, fmt.Errorf("bind gossip on %s: %w", net.JoinHostPort(c.BindAddr, fmt.Sprint(c.BindPort)), lastErr)
}
