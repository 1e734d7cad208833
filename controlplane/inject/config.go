package inject

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/fedmesh/fedmesh/internal/portset"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid inject config")

// Annotations and labels that steer injection.
const (
	// NamespaceLabel=NamespaceLabelValue on a namespace turns injection on
	// for its pods (the webhook's namespaceSelector).
	NamespaceLabel      = "fedmesh.io/inject"
	NamespaceLabelValue = "enabled"
	// AnnotationInject "false" on a pod keeps it out of the mesh.
	AnnotationInject = "fedmesh.io/inject"
	// AnnotationInjected marks an injected pod; injecting it again changes
	// nothing.
	AnnotationInjected = "fedmesh.io/injected"
	// AnnotationExcludeInboundPorts lists ports (comma separated) whose
	// inbound traffic bypasses the sidecar.
	AnnotationExcludeInboundPorts = "fedmesh.io/exclude-inbound-ports"
	// AnnotationExcludeOutboundPorts and AnnotationExcludeOutboundCIDRs
	// list destination ports and address prefixes (comma separated,
	// IPv4 and IPv6) whose outbound traffic bypasses the sidecar.
	AnnotationExcludeOutboundPorts = "fedmesh.io/exclude-outbound-ports"
	AnnotationExcludeOutboundCIDRs = "fedmesh.io/exclude-outbound-cidrs"
	// AnnotationInboundMode is the workload's inbound mode: ModeStrict
	// (mTLS only) or ModePermissive (mTLS from mesh peers, plaintext
	// from anyone else), the default.
	AnnotationInboundMode = "fedmesh.io/inbound-mode"
	// AnnotationInboundPlaintextPorts lists ports that take plaintext
	// even when the workload is STRICT.
	AnnotationInboundPlaintextPorts = "fedmesh.io/inbound-plaintext-ports"
	// AnnotationCaptureDNS "false" leaves the pod's DNS queries alone:
	// clusterset names then do not resolve in it.
	AnnotationCaptureDNS = "fedmesh.io/capture-dns"
)

// Inbound modes.
const (
	ModeStrict     = "STRICT"
	ModePermissive = "PERMISSIVE"
)

// Names of what injection adds.
const (
	SidecarName     = "fedmesh-sidecar"
	InitName        = "fedmesh-init"
	TokenVolumeName = "fedmesh-token"
	// TokenDir is where the sidecar finds its projected ServiceAccount
	// token (file "token").
	TokenDir = "/var/run/secrets/fedmesh/token"
	// RootsVolumeName, RootsDir and RootsKey: the federation's root bundle
	// (file root.pem) from a ConfigMap.
	RootsVolumeName = "fedmesh-roots"
	RootsDir        = "/etc/fedmesh/roots"
	RootsKey        = "root.pem"
	// StateVolumeName and StateDir: an emptyDir where the sidecar keeps
	// its last good configuration and certificate (--data-dir), so that
	// a sidecar container restarted while the control plane is away
	// serves from it. It lives as long as the pod.
	StateVolumeName = "fedmesh-state"
	StateDir        = "/var/lib/fedmesh"
	// ProxyCommand is what the sidecar container runs: the lean data-plane
	// binary, which the fedmesh and fedmesh-proxy images both hold.
	ProxyCommand = "/usr/local/bin/fedmesh-proxy"
	// DefaultRootsConfigMap names the ConfigMap with the root bundle.
	DefaultRootsConfigMap = "fedmesh-roots"
)

// Defaults.
const (
	DefaultProxyUID        = 1337
	DefaultOutboundPort    = 15001
	DefaultInboundPort     = 15006
	DefaultAdminPort       = 15000
	DefaultReadyPort       = 15021
	DefaultDNSPort         = 15053
	DefaultTokenAudience   = "fedmesh"
	DefaultTokenExpiration = 3600
	DefaultXDSAddress      = "fedmesh-controlplane.fedmesh-system.svc:15010"
)

// Config says what to inject.
type Config struct {
	// SidecarImage runs the sidecar, ProxyCommand (the fedmesh-proxy
	// image, or the fedmesh image, which holds it too). Required.
	SidecarImage string
	// InitImage runs the iptables redirect; it needs sh and iptables.
	// Required.
	InitImage string
	// XDSAddress is the control plane's xDS address, host:port. Default
	// DefaultXDSAddress.
	XDSAddress string
	// TrustDomain is the federation's SPIFFE trust domain. Required.
	TrustDomain string
	// Cluster is the name of the cluster the pods run in. Required.
	Cluster string
	// RootsConfigMap names the ConfigMap (in the pod's namespace) whose
	// root.pem is the federation's root bundle. Default
	// DefaultRootsConfigMap.
	RootsConfigMap string
	// ProxyUID is the user the sidecar runs as; its own traffic is not
	// redirected. Default DefaultProxyUID.
	ProxyUID int64
	// OutboundPort, InboundPort and AdminPort are the sidecar's ports.
	// Defaults 15001, 15006 and 15000. The outbound and admin listeners
	// are on 127.0.0.1, for the app alone; the inbound one on the pod
	// address.
	OutboundPort, InboundPort, AdminPort int32
	// DNSPort is the sidecar's DNS server, on 127.0.0.1 and ::1, where
	// the capture rules send the pod's DNS queries. Default 15053.
	DNSPort int32
	// ReadyPort serves the sidecar's /ready and /stats/prometheus alone on
	// the pod address, for the kubelet's startup probe and Prometheus
	// (which cannot reach the loopback admin port). Default 15021.
	ReadyPort int32
	// TokenAudience is the audience of the projected ServiceAccount token
	// the sidecar shows the control plane. Default "fedmesh".
	TokenAudience string
	// TokenExpiration is the token's lifetime in seconds (the kubelet
	// renews it). Default 3600; at least 600.
	TokenExpiration int64
	// StrictNamespaces are the namespaces whose pods take mTLS only:
	// their sidecars refuse plaintext on every port, and a pod there
	// that asks for plaintext (fedmesh.io/inbound-mode=PERMISSIVE or
	// fedmesh.io/inbound-plaintext-ports) is refused.
	StrictNamespaces []string
	// OpaquePorts are the ports where sidecars detect no protocol
	// (server-first protocols: SMTP, MySQL), as a list of ports and
	// ranges ("25,3306,5000-5010") or "none"; a pod's
	// fedmesh.io/opaque-ports replaces it. Default
	// portset.DefaultOpaque, Linkerd's opaque ports.
	OpaquePorts string
}

func (c Config) withDefaults() (Config, error) {
	if c.SidecarImage == "" || c.InitImage == "" {
		return c, fmt.Errorf("%w: the sidecar and init images are required", ErrConfig)
	}
	if c.TrustDomain == "" {
		return c, fmt.Errorf("%w: a trust domain is required", ErrConfig)
	}
	if c.Cluster == "" {
		return c, fmt.Errorf("%w: the cluster name is required", ErrConfig)
	}
	if c.RootsConfigMap == "" {
		c.RootsConfigMap = DefaultRootsConfigMap
	}
	if c.XDSAddress == "" {
		c.XDSAddress = DefaultXDSAddress
	}
	if _, port, err := net.SplitHostPort(c.XDSAddress); err != nil || port == "" {
		return c, fmt.Errorf("%w: xDS address %q is not host:port", ErrConfig, c.XDSAddress)
	}
	if c.ProxyUID == 0 {
		c.ProxyUID = DefaultProxyUID
	}
	if c.ProxyUID < 0 {
		return c, fmt.Errorf("%w: proxy uid %d", ErrConfig, c.ProxyUID)
	}
	for _, p := range []struct {
		v   *int32
		def int32
	}{{&c.OutboundPort, DefaultOutboundPort}, {&c.InboundPort, DefaultInboundPort}, {&c.AdminPort, DefaultAdminPort}, {&c.ReadyPort, DefaultReadyPort}, {&c.DNSPort, DefaultDNSPort}} {
		if *p.v == 0 {
			*p.v = p.def
		}
		if *p.v < 1 || *p.v > 65535 {
			return c, fmt.Errorf("%w: port %d", ErrConfig, *p.v)
		}
	}
	ports := []int32{c.OutboundPort, c.InboundPort, c.AdminPort, c.ReadyPort, c.DNSPort}
	for i := range ports {
		for j := range i {
			if ports[i] == ports[j] {
				return c, fmt.Errorf("%w: sidecar ports (outbound %d, inbound %d, admin %d, ready %d, dns %d) must differ", ErrConfig, c.OutboundPort, c.InboundPort, c.AdminPort, c.ReadyPort, c.DNSPort)
			}
		}
	}
	if c.TokenAudience == "" {
		c.TokenAudience = DefaultTokenAudience
	}
	if c.TokenExpiration == 0 {
		c.TokenExpiration = DefaultTokenExpiration
	}
	for _, ns := range c.StrictNamespaces {
		if ns == "" {
			return c, fmt.Errorf("%w: an empty strict namespace", ErrConfig)
		}
	}
	if c.TokenExpiration < 600 {
		return c, fmt.Errorf("%w: token expiration %ds is below the API server's minimum of 600s", ErrConfig, c.TokenExpiration)
	}
	return c, nil
}

// Injector adds the mesh to pods. It is immutable and safe for concurrent
// use.
type Injector struct {
	cfg    Config
	opaque portset.Set // cfg.OpaquePorts
}

// New validates cfg and returns an Injector.
func New(cfg Config) (*Injector, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.OpaquePorts == "" {
		cfg.OpaquePorts = portset.DefaultOpaque
	}
	opaque, err := portset.Parse(cfg.OpaquePorts)
	if err != nil {
		return nil, fmt.Errorf("%w: opaque ports: %w", ErrConfig, err)
	}
	return &Injector{cfg: cfg, opaque: opaque}, nil
}

func itoa[T int32 | int64 | int](v T) string { return strconv.FormatInt(int64(v), 10) }
