package config

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
	"github.com/fedmesh/fedmesh/topology"
)

// Protocol is how a service port is spoken.
type Protocol string

// Protocols of a service port.
const (
	// HTTP is HTTP/1.1 or HTTP/2 between app and sidecar; sidecars speak
	// HTTP/2 to each other.
	HTTP Protocol = "http"
	// GRPC is HTTP/2 (h2c) to the app.
	GRPC Protocol = "grpc"
	// TCP is an opaque byte stream.
	TCP Protocol = "tcp"
)

// IsHTTP reports whether requests of this protocol are routed one by one.
func (p Protocol) IsHTTP() bool { return p == HTTP || p == GRPC }

// Endpoint is one place a service port can be reached.
type Endpoint struct {
	// Address is host:port to dial: a workload's inbound listener or a
	// remote cluster's gateway.
	Address string `json:"address"`
	// Priority is the failover level, 0 most preferred.
	Priority uint32 `json:"priority"`
	// Weight is the endpoint's load balancing weight, at least 1.
	Weight uint32 `json:"weight"`
	// Healthy is the control plane's view of the endpoint (false for a
	// fenced cluster or an unready workload).
	Healthy bool `json:"healthy"`
	// Cluster is the fedmesh cluster the endpoint belongs to.
	Cluster string `json:"cluster"`
	// Locality is where the endpoint runs.
	Locality topology.Locality `json:"locality"`
	// SNI is the TLS server name to send; the service's SNI when the
	// endpoint does not set one.
	SNI string `json:"sni"`
	// Identity is the SPIFFE ID the endpoint must present; empty means any
	// of the service's identities.
	Identity string `json:"identity,omitempty"`
	// Remote is true for a gateway entry (the endpoint metadata had an sni).
	Remote bool `json:"remote,omitempty"`
	// Workload is the workload serving the endpoint (EDS
	// Endpoint.hostname, a DNS-1123 subdomain the control plane takes from
	// its catalog); "" when unknown, as for a gateway entry standing for
	// endpoints of several workloads.
	Workload string `json:"workload,omitempty"`
}

// RetryPolicy is a route's retry policy.
type RetryPolicy struct {
	// Retries is how many times a request may be retried (0: never).
	Retries int `json:"retries"`
	// On5xx retries responses with a 5xx status.
	On5xx bool `json:"on5xx"`
	// OnGatewayError retries 502, 503 and 504.
	OnGatewayError bool `json:"onGatewayError"`
	// OnConnectFailure retries failed connects and resets before a
	// response.
	OnConnectFailure bool `json:"onConnectFailure"`
	// StatusCodes are further retriable status codes.
	StatusCodes []int `json:"statusCodes,omitempty"`
	// HostAttempts is how many picks may be tried to find an endpoint not
	// tried before.
	HostAttempts int `json:"hostAttempts"`
	// On4xx retries 409 (retriable-4xx).
	On4xx bool `json:"on4xx,omitempty"`
	// GRPCCodes is a bit set of the gRPC status codes (1 << code) retried
	// when a response's headers carry them (a trailers-only response).
	GRPCCodes uint32 `json:"grpcCodes,omitempty"`
	// PerTryTimeout bounds each attempt (0: only the request's timeout).
	PerTryTimeout time.Duration `json:"perTryTimeout,omitempty"`
	// BackOffBase is the base of the jittered exponential back-off
	// between attempts (0: retry at once).
	BackOffBase time.Duration `json:"backOffBase,omitempty"`
	// BackOffMax caps one back-off.
	BackOffMax time.Duration `json:"backOffMax,omitempty"`
}

// RetriableGRPC reports whether a gRPC status code allows a retry.
func (r RetryPolicy) RetriableGRPC(code int) bool {
	return code > 0 && code < 32 && r.GRPCCodes&(1<<uint(code)) != 0
}

// Retriable reports whether a response status allows a retry.
func (r RetryPolicy) Retriable(status int) bool {
	switch {
	case r.On5xx && status >= 500:
		return true
	case r.OnGatewayError && (status == 502 || status == 503 || status == 504):
		return true
	case r.On4xx && status == 409:
		return true
	}
	for _, c := range r.StatusCodes {
		if c == status {
			return true
		}
	}
	return false
}

// Limits are a service's circuit breaker thresholds (Envoy's
// circuit_breakers, priority DEFAULT).
type Limits struct {
	MaxConnections int `json:"maxConnections"`
	MaxPending     int `json:"maxPending"`
	MaxRequests    int `json:"maxRequests"`
	MaxRetries     int `json:"maxRetries"`
}

// Outlier is a service's outlier detection configuration.
type Outlier struct {
	Consecutive5xx            int           `json:"consecutive5xx"`
	ConsecutiveGatewayFailure int           `json:"consecutiveGatewayFailure"`
	Interval                  time.Duration `json:"interval"`
	BaseEjectionTime          time.Duration `json:"baseEjectionTime"`
	MaxEjectionPercent        int           `json:"maxEjectionPercent"`
}

// LBPolicy is a cluster's load balancing policy (CDS lb_policy).
type LBPolicy string

// Load balancing policies.
const (
	// LeastRequest is the better of two random hosts by outstanding
	// requests.
	LeastRequest LBPolicy = "least_request"
	// RoundRobin takes the hosts in turn.
	RoundRobin LBPolicy = "round_robin"
	// RingHash maps a request's hash key to a host on a consistent hash
	// ring (ring_hash_lb_config).
	RingHash LBPolicy = "ring_hash"
)

// Ring sizes of a RING_HASH cluster (Envoy's defaults and limit).
const (
	DefaultMinRingSize = 1024
	DefaultMaxRingSize = 8 << 20
)

// Service is one port of one service as a client reaches it, or one
// subset of it (Subset "local": only the local cluster's endpoints).
type Service struct {
	// Port names the service port.
	Port naming.ServicePort `json:"port"`
	// ClusterSetIP is the service's virtual address across the
	// clusterset: the first IP literal among its virtual host's domains,
	// or, for an opaque TCP port, the first full-length prefix range of
	// its outbound listener's filter chain (the control plane puts the
	// ClusterSetIP first, then the local cluster's ClusterIPs, which are
	// matched too but not answered by DNS), in netip.Addr's text form;
	// "" when it has none.
	ClusterSetIP string `json:"clusterSetIP,omitempty"`
	// Cluster is the xDS cluster name, outbound|PORT||HOST (or
	// outbound|PORT|local|HOST for the local subset).
	Cluster string `json:"cluster"`
	// Subset is "" for the whole service, naming.SubsetLocal for the
	// local-only subset.
	Subset string `json:"subset,omitempty"`
	// LB is the load balancing policy.
	LB LBPolicy `json:"lb"`
	// MinRingSize and MaxRingSize bound a RingHash ring.
	MinRingSize uint64 `json:"minRingSize,omitempty"`
	MaxRingSize uint64 `json:"maxRingSize,omitempty"`
	// IdleTimeout closes upstream connections idle this long (0: the
	// proxy's default).
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
	// Protocol is how the port is spoken.
	Protocol Protocol `json:"protocol"`
	// SNI is the server name for the port (PORT.NAME.NS.svc.clusterset.local).
	SNI string `json:"sni"`
	// Identities are the SPIFFE IDs a server of this service may present.
	Identities []string `json:"identities"`
	// ConnectTimeout bounds each dial and TLS handshake.
	ConnectTimeout time.Duration `json:"connectTimeout"`
	// Timeout bounds a whole request, retries included (0: none).
	Timeout time.Duration `json:"timeout"`
	// Retry is the route's retry policy.
	Retry RetryPolicy `json:"retry"`
	// Limits are the circuit breaker thresholds.
	Limits Limits `json:"limits"`
	// Outlier configures outlier detection.
	Outlier Outlier `json:"outlier"`
	// PanicThreshold is the healthy percentage below which a priority
	// uses all its endpoints.
	PanicThreshold float64 `json:"panicThreshold"`
	// Endpoints are sorted by priority, then address.
	Endpoints []Endpoint `json:"endpoints"`
	// Routes is the service's compiled route table when a route is in
	// force; nil for the default (every request to Cluster, with Timeout
	// and Retry), the fast path.
	Routes *VirtualHost `json:"-"`
	// Version changes whenever anything above changes, so consumers can
	// skip unchanged services.
	Version string `json:"version"`
}

// InboundPort is one service port the sidecar's own workload serves.
type InboundPort struct {
	// SNI selects the port in the TLS ClientHello.
	SNI string `json:"sni"`
	// Port names the service port.
	Port naming.ServicePort `json:"port"`
	// App is host:port of the app.
	App string `json:"app"`
	// Protocol tells how to speak to the app.
	Protocol Protocol `json:"protocol"`
	// Authz is the port's authorization; nil allows everything (a chain
	// without RBAC filters, such as the tcp_proxy-only shape).
	Authz *Authz `json:"authz,omitempty"`
	// RateLimit are the request limits of an HTTP port (its local rate
	// limit filter), checked after authorization; nil limits nothing.
	RateLimit *ratelimit.Rules `json:"rateLimit,omitempty"`
	// ConnectionLimit are the new-connection limits of an opaque TCP
	// port (its network local rate limit filters); nil limits nothing.
	ConnectionLimit *ratelimit.Rules `json:"connectionLimit,omitempty"`
}

// Inbound is one inbound listener.
type Inbound struct {
	// Name is the listener name, inbound|ADDR:PORT.
	Name string `json:"name"`
	// Address is the host:port to bind.
	Address string `json:"address"`
	// Ports are keyed by SNI (lower case).
	Ports map[string]InboundPort `json:"ports"`
}

// Snapshot is the sidecar's whole runtime configuration. It is immutable.
type Snapshot struct {
	// Services are keyed by service port.
	Services map[naming.ServicePort]*Service `json:"-"`
	// Inbound lists the inbound listeners, sorted by name.
	Inbound []Inbound `json:"inbound"`
	// Certificate is the workload certificate from SDS "default", nil
	// before it arrives.
	Certificate *tls.Certificate `json:"-"`
	// Bundle is the trust bundle from SDS "ROOTCA", nil before it arrives.
	Bundle *x509bundle.Bundle `json:"-"`
	// Versions are the accepted xDS versions by type URL.
	Versions map[string]string `json:"versions"`
	// Telemetry is the node's tracing and access log configuration.
	Telemetry Telemetry `json:"telemetry"`

	hosts    map[hostPort]*Service
	ports    map[int32][]*Service
	clusters map[string]*Service
}

// Cluster finds a service or subset by its xDS cluster name.
func (s *Snapshot) Cluster(name string) (*Service, bool) {
	if s == nil {
		return nil, false
	}
	svc, ok := s.clusters[name]
	return svc, ok
}

// ClusterList returns every service and subset, sorted by cluster name.
func (s *Snapshot) ClusterList() []*Service {
	if s == nil {
		return nil
	}
	out := make([]*Service, 0, len(s.clusters))
	for _, svc := range s.clusters {
		out = append(out, svc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cluster < out[j].Cluster })
	return out
}

type hostPort struct {
	host string
	port int32
}

// Lookup finds the service a client means by host and port. host is one of
// NAME.NS.svc.clusterset.local or NAME.NS (case-insensitive, an optional
// trailing dot), or a domain of the service's virtual host.
func (s *Snapshot) Lookup(host string, port int32) (*Service, bool) {
	if s == nil {
		return nil, false
	}
	svc, ok := s.hosts[hostPort{NormalizeHost(host), port}]
	return svc, ok
}

// Port returns the services on one port, sorted by host.
func (s *Snapshot) Port(port int32) []*Service {
	if s == nil {
		return nil
	}
	return s.ports[port]
}

// Ports returns every service port number, sorted.
func (s *Snapshot) Ports() []int32 {
	if s == nil {
		return nil
	}
	out := make([]int32, 0, len(s.ports))
	for p := range s.ports {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ServiceList returns the services sorted by namespace, name and port.
func (s *Snapshot) ServiceList() []*Service {
	if s == nil {
		return nil
	}
	out := make([]*Service, 0, len(s.Services))
	for _, svc := range s.Services {
		out = append(out, svc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cluster < out[j].Cluster })
	return out
}

// IsServiceName reports whether host (without port) names a known
// service, for DNS.
func (s *Snapshot) IsServiceName(host string) bool {
	if s == nil {
		return false
	}
	h := NormalizeHost(host)
	for _, svc := range s.Services {
		if h == svc.Port.Host() || h == svc.Port.Name+"."+svc.Port.Namespace {
			return true
		}
	}
	return false
}

// ClusterSetIP returns the ClusterSetIP of the service host names
// (NAME.NS.svc.clusterset.local or NAME.NS), for DNS; false when the
// service is unknown or has none.
func (s *Snapshot) ClusterSetIP(host string) (netip.Addr, bool) {
	if s == nil {
		return netip.Addr{}, false
	}
	h := NormalizeHost(host)
	for _, svc := range s.Services {
		if svc.ClusterSetIP != "" && (h == svc.Port.Host() || h == svc.Port.Name+"."+svc.Port.Namespace) {
			ip, err := netip.ParseAddr(svc.ClusterSetIP)
			return ip, err == nil
		}
	}
	return netip.Addr{}, false
}

// NormalizeHost lower-cases a host name and drops one trailing dot.
func NormalizeHost(h string) string {
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// SplitHostPort splits a Host header or CONNECT authority into a
// normalized host and a port, using defPort when none is given. It accepts
// host, host:port, [v6], [v6]:port; it rejects empty hosts, ports outside
// 1..65535 and hosts with characters that cannot be in a DNS name or an IP
// literal.
func SplitHostPort(authority string, defPort int32) (string, int32, error) {
	if authority == "" {
		return "", 0, errBadAuthority("empty")
	}
	if len(authority) > 300 {
		return "", 0, errBadAuthority("longer than 300 bytes")
	}
	host, portStr := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", 0, errBadAuthority("unclosed [")
		}
		host, portStr = authority[1:end], authority[end+1:]
		if portStr != "" {
			if portStr[0] != ':' {
				return "", 0, errBadAuthority("junk after ]")
			}
			portStr = portStr[1:]
			if portStr == "" {
				return "", 0, errBadAuthority("empty port")
			}
		}
		if net.ParseIP(host) == nil {
			return "", 0, errBadAuthority("bad IPv6 literal")
		}
	} else if i := strings.LastIndexByte(authority, ':'); i >= 0 {
		host, portStr = authority[:i], authority[i+1:]
		if portStr == "" {
			return "", 0, errBadAuthority("empty port")
		}
		if strings.IndexByte(host, ':') >= 0 {
			return "", 0, errBadAuthority("IPv6 address without brackets")
		}
	}
	if host == "" {
		return "", 0, errBadAuthority("empty host")
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '_'
		if !ok {
			return "", 0, errBadAuthority("bad character in host")
		}
	}
	port := defPort
	if portStr != "" {
		p, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || p == 0 {
			return "", 0, errBadAuthority("port is not a number from 1 to 65535")
		}
		port = int32(p)
	}
	host = NormalizeHost(host)
	if host == "" || host[0] == '.' || strings.HasSuffix(host, ".") || strings.Contains(host, "..") {
		return "", 0, errBadAuthority("empty label in host")
	}
	return host, port, nil
}

type badAuthority string

func (e badAuthority) Error() string { return "bad host or authority: " + string(e) }

// ErrBadAuthority is the type of SplitHostPort's errors; match with
// errors.As.
type ErrBadAuthority = badAuthority

func errBadAuthority(why string) error { return badAuthority(why) }
