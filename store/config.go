package store

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/catalog"
)

// Defaults.
const (
	// DefaultLeaseTTL is how long this cluster's exports outlive a control
	// plane that stopped renewing its lease.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultEmbeddedMaxTxnOps is the largest transaction the embedded etcd
	// accepts: a whole export set is written in one transaction, so this
	// bounds how many services one cluster can change at once.
	DefaultEmbeddedMaxTxnOps = 16384
	// DefaultExternalMaxTxnOps is etcd's own default (--max-txn-ops).
	DefaultExternalMaxTxnOps = 128
	// DefaultMaxRequestBytes is the largest request the embedded etcd
	// accepts and the client sends (etcd's own default is 1.5 MiB).
	DefaultMaxRequestBytes = 16 << 20
	// DefaultCompactionRetention is how much history the embedded etcd
	// keeps before compacting it (periodic compaction).
	DefaultCompactionRetention = time.Hour
	// DefaultDialTimeout bounds the first connection to etcd.
	DefaultDialTimeout = 5 * time.Second
)

// minTxnOps is the smallest Config.MaxTxnOps: DeleteImports needs three
// operations in one transaction.
const minTxnOps = 3

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid store config")

// Config configures a Store. The zero value of every field but Cluster,
// and DataDir when embedding, has a working default.
type Config struct {
	// Cluster is this cluster's name (a DNS-1123 label); every key the
	// store writes is under ClusterPrefix(Cluster).
	Cluster string

	// Endpoints are the client URLs of an external etcd cluster. When set,
	// nothing is embedded and the embedded-only fields below must be
	// empty.
	Endpoints []string

	// DataDir is where the embedded etcd keeps its data. Required when
	// embedding.
	DataDir string
	// ListenClientURLs are the embedded etcd's client URLs, such as
	// https://127.0.0.11:2379. A port of 0 picks a free port; ClientURL
	// tells which. Default http://127.0.0.1:0 (tests); production passes
	// an https URL with the TLS files below.
	ListenClientURLs []string
	// ListenPeerURL is the embedded etcd's raft peer URL. It is a
	// single-member cluster that never talks to raft peers, so this
	// listener only has to exist. Default http://127.0.0.1:0: an http URL
	// must be on a loopback address; an https URL needs the peer TLS files
	// below and may be on any address. PeerURL tells the port it got.
	ListenPeerURL string
	// PeerCertFile, PeerKeyFile and PeerCAFile are the raft peer
	// listener's certificate, key and the CAs whose client certificates
	// it accepts (PEM files), all three required for an https
	// ListenPeerURL and only then. Use a CA that signs raft peers only,
	// never the federation's bundle: any holder of a certificate it signed
	// can speak raft to this member.
	PeerCertFile string
	PeerKeyFile  string
	PeerCAFile   string
	// ServerCertFile and ServerKeyFile are the embedded etcd's serving
	// certificate (PEM files); required for https client URLs.
	ServerCertFile string
	ServerKeyFile  string
	// ClientCAFile is the federation's trust bundle (PEM root
	// certificates, each with the URI SAN spiffe://TRUST-DOMAIN). When
	// set, the store serves the client URLs itself and accepts only
	// control plane SVIDs of that trust domain signed by their own
	// cluster's CA and whose common name is EtcdUser for their cluster:
	// "root" for this cluster's control plane, PeerUser(NAME) for peer
	// NAME's (see the package doc, "Peer access"). Every other client is
	// refused in the TLS handshake and counted
	// (fedmesh_store_client_refusals_total). With auth enabled
	// (EnableAuth) the common name is the etcd user. The client URLs must
	// then be https and serve only gRPC (no /health or /metrics). The
	// file is read by Open and again whenever its modification time
	// changes (a CA rotation replaces it); one that no longer parses
	// keeps the last good bundle.
	ClientCAFile string
	// MaxTxnOps is the most operations one transaction may hold, at least
	// 3. For the embedded etcd it is set on the server (default
	// DefaultEmbeddedMaxTxnOps); for an external etcd it must tell the
	// server's --max-txn-ops (default DefaultExternalMaxTxnOps). An
	// exports write needing more fails with ErrTooManyOps instead of being
	// split; an imports write needing more is written as a new generation
	// in several transactions (see SetImports).
	MaxTxnOps int
	// MaxRequestBytes is the largest request sent to, and for the embedded
	// etcd accepted by, the server. Default DefaultMaxRequestBytes; for an
	// external etcd it should match the server's --max-request-bytes.
	MaxRequestBytes int
	// UnsafeNoFsync turns the embedded etcd's fsyncs off (etcd's
	// --unsafe-no-fsync): a crash loses what the page cache held. Only
	// for a simulator or a test running many stores on one disk, whose
	// fsync rate would be what it measures.
	UnsafeNoFsync bool
	// CompactionRetention is the history the embedded etcd keeps (periodic
	// auto-compaction). Default DefaultCompactionRetention; negative turns
	// auto-compaction off.
	CompactionRetention time.Duration

	// ClientTLS is the TLS configuration of the store's own etcd client:
	// the CA that signed the server's certificate, and a client certificate
	// (common name "root" once auth is enabled; with ClientCAFile, a
	// control plane SVID of Cluster signed by Cluster's CA, as
	// controlplane/ca's IssueEtcdRoot makes it). Required when the
	// endpoints or client URLs are https.
	ClientTLS *tls.Config
	// DialTimeout bounds the first connection. Default DefaultDialTimeout.
	DialTimeout time.Duration

	// LeaseTTL is the TTL of the lease this cluster's exports are written
	// under. Default DefaultLeaseTTL; etcd's minimum is about 2s.
	LeaseTTL time.Duration

	// Logger receives the store's logs, and etcd's own warnings at debug
	// level and errors at warn level. Default slog.Default().
	Logger *slog.Logger
	// Registerer registers the store's metrics; nil leaves them
	// unregistered.
	Registerer prometheus.Registerer
}

// embedded reports whether the store runs its own etcd.
func (c *Config) embedded() bool { return len(c.Endpoints) == 0 }

// withDefaults validates the config and returns a copy with zero fields
// filled in.
func (c Config) withDefaults() (Config, error) {
	if why := catalog.IsDNS1123Label(c.Cluster); why != "" {
		return c, fmt.Errorf("%w: cluster %q %s", ErrConfig, c.Cluster, why)
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.LeaseTTL < 2*time.Second {
		return c, fmt.Errorf("%w: lease TTL %s is shorter than etcd's minimum of 2s", ErrConfig, c.LeaseTTL)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxRequestBytes < 0 {
		return c, fmt.Errorf("%w: max request bytes %d is negative", ErrConfig, c.MaxRequestBytes)
	}
	if c.MaxTxnOps < 0 {
		return c, fmt.Errorf("%w: max txn ops %d is negative", ErrConfig, c.MaxTxnOps)
	}
	if c.MaxTxnOps > 0 && c.MaxTxnOps < minTxnOps {
		return c, fmt.Errorf("%w: max txn ops %d is below %d, the operations of the smallest imports write", ErrConfig, c.MaxTxnOps, minTxnOps)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	var urls []string
	if c.embedded() {
		if c.DataDir == "" {
			return c, fmt.Errorf("%w: a data dir is required for the embedded etcd", ErrConfig)
		}
		if len(c.ListenClientURLs) == 0 {
			c.ListenClientURLs = []string{"http://127.0.0.1:0"}
		}
		if c.ListenPeerURL == "" {
			c.ListenPeerURL = "http://127.0.0.1:0"
		}
		if c.MaxTxnOps == 0 {
			c.MaxTxnOps = DefaultEmbeddedMaxTxnOps
		}
		if c.CompactionRetention == 0 {
			c.CompactionRetention = DefaultCompactionRetention
		}
		if (c.ServerCertFile == "") != (c.ServerKeyFile == "") {
			return c, fmt.Errorf("%w: server cert and key files must be given together", ErrConfig)
		}
		if c.ClientCAFile != "" && c.ServerCertFile == "" {
			return c, fmt.Errorf("%w: a client CA file needs a server cert and key", ErrConfig)
		}
		if err := c.checkPeer(); err != nil {
			return c, err
		}
		urls = c.ListenClientURLs
	} else {
		switch {
		case c.DataDir != "":
			return c, fmt.Errorf("%w: a data dir is only for the embedded etcd, not with endpoints", ErrConfig)
		case len(c.ListenClientURLs) != 0 || c.ListenPeerURL != "":
			return c, fmt.Errorf("%w: listen URLs are only for the embedded etcd, not with endpoints", ErrConfig)
		case c.ServerCertFile != "" || c.ServerKeyFile != "" || c.ClientCAFile != "":
			return c, fmt.Errorf("%w: server TLS files are only for the embedded etcd, not with endpoints", ErrConfig)
		case c.PeerCertFile != "" || c.PeerKeyFile != "" || c.PeerCAFile != "":
			return c, fmt.Errorf("%w: peer TLS files are only for the embedded etcd, not with endpoints", ErrConfig)
		case c.CompactionRetention != 0:
			return c, fmt.Errorf("%w: compaction retention is only for the embedded etcd, not with endpoints", ErrConfig)
		}
		if c.MaxTxnOps == 0 {
			c.MaxTxnOps = DefaultExternalMaxTxnOps
		}
		urls = c.Endpoints
	}
	for _, s := range urls {
		u, err := parseURL("client URL", s, true)
		if err != nil {
			return c, err
		}
		if u.Scheme == "https" && c.ClientTLS == nil {
			return c, fmt.Errorf("%w: client URL %s is https but no client TLS config is given", ErrConfig, s)
		}
		if u.Scheme == "https" && c.embedded() && c.ServerCertFile == "" {
			return c, fmt.Errorf("%w: client URL %s is https but no server cert is given", ErrConfig, s)
		}
		if u.Scheme == "http" && c.embedded() && c.ServerCertFile != "" {
			return c, fmt.Errorf("%w: client URL %s is http but a server cert is given; use https", ErrConfig, s)
		}
	}
	return c, nil
}

// checkPeer accepts a raft peer URL on loopback, or an https one with
// all three peer TLS files.
func (c *Config) checkPeer() error {
	u, err := parseURL("listen peer URL", c.ListenPeerURL, true)
	if err != nil {
		return err
	}
	files := 0
	for _, f := range []string{c.PeerCertFile, c.PeerKeyFile, c.PeerCAFile} {
		if f != "" {
			files++
		}
	}
	switch {
	case u.Scheme == "https" && files != 3:
		return fmt.Errorf("%w: listen peer URL %s is https but the peer cert, key and CA files are not all given", ErrConfig, c.ListenPeerURL)
	case u.Scheme == "http" && files != 0:
		return fmt.Errorf("%w: peer TLS files are given but listen peer URL %s is http; use https", ErrConfig, c.ListenPeerURL)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return fmt.Errorf("%w: listen peer URL %s is plain http on a non-loopback address; the single-member etcd needs no raft peers, so bind it to loopback (the default, http://127.0.0.1:0) or use https with peer TLS files", ErrConfig, c.ListenPeerURL)
	}
	return nil
}

// isLoopback reports whether host is a loopback IP address or
// "localhost".
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseURL(what, s string, https bool) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q: %w", ErrConfig, what, s, err)
	}
	switch {
	case u.Scheme == "http", u.Scheme == "https" && https:
	default:
		return nil, fmt.Errorf("%w: %s %q: scheme must be http or https", ErrConfig, what, s)
	}
	if u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("%w: %s %q: must have a host and a port", ErrConfig, what, s)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("%w: %s %q: must not have a path", ErrConfig, what, s)
	}
	return u, nil
}
