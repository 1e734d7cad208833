package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/topology"
)

// ErrInvalid is wrapped by every error of Apply.
var ErrInvalid = errors.New("invalid sidecar configuration")

// Defaults for fields the control plane leaves unset.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultTimeout        = 15 * time.Second
	DefaultMaxRequests    = 1024
	DefaultMaxRetries     = 3
)

// Builder keeps the last accepted xDS resources, translated (state.go),
// and builds Snapshots. Its methods are safe for concurrent use; Apply is
// normally called from the xDS client's goroutine.
type Builder struct {
	trustDomain spiffeid.TrustDomain

	mu      sync.Mutex // guards the following
	state   *state
	current *Snapshot
}

// NewBuilder returns a Builder for a sidecar of the trust domain td; the
// ROOTCA bundle is read as that trust domain's.
func NewBuilder(td spiffeid.TrustDomain) *Builder {
	return &Builder{
		trustDomain: td,
		state:       newState(),
		current:     &Snapshot{Services: map[naming.ServicePort]*Service{}, hosts: map[hostPort]*Service{}, ports: map[int32][]*Service{}, clusters: map[string]*Service{}, Versions: map[string]string{}},
	}
}

// Current returns the last built Snapshot (an empty one before the first).
func (b *Builder) Current() *Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.current
}

// Apply builds a Snapshot with u in place of the previous resources of its
// type, or, for an incremental update (u.Incremental), with u's resources
// added or replaced and u.Removed gone. On error nothing changes. The
// update's messages are not kept: the Builder keeps what it translated
// them into.
func (b *Builder) Apply(u xdsclient.Update) (*Snapshot, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next, err := b.state.with(u)
	if err != nil {
		return nil, err
	}
	snap, err := next.build(b.trustDomain)
	if err != nil {
		return nil, err
	}
	b.state, b.current = next, snap
	return snap, nil
}

// invalid wraps ErrInvalid around a message; %w in format wraps an
// error too.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func u32(v *wrapperspb.UInt32Value, def int) int {
	if v == nil {
		return def
	}
	return int(v.GetValue())
}

func service(sp naming.ServicePort, c *clusterv3.Cluster) (*Service, error) {
	svc := &Service{
		Port:           sp,
		Cluster:        c.GetName(),
		Protocol:       TCP,
		SNI:            sp.SNI(),
		ConnectTimeout: DefaultConnectTimeout,
		Timeout:        DefaultTimeout,
		Retry:          RetryPolicy{HostAttempts: 3},
		Limits:         Limits{MaxConnections: DefaultMaxRequests, MaxPending: DefaultMaxRequests, MaxRequests: DefaultMaxRequests, MaxRetries: DefaultMaxRetries},
		Outlier:        Outlier{Consecutive5xx: 5, ConsecutiveGatewayFailure: 5, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 10},
		PanicThreshold: 50,
	}
	if d := c.GetConnectTimeout(); d != nil {
		svc.ConnectTimeout = d.AsDuration()
	}
	if err := lbPolicy(svc, c); err != nil {
		return nil, err
	}
	if a := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]; a != nil {
		var o upstreamhttpv3.HttpProtocolOptions
		if err := a.UnmarshalTo(&o); err != nil {
			return nil, fmt.Errorf("%s: %w", httpProtocolOptionsKey, err)
		}
		if d := o.GetCommonHttpProtocolOptions().GetIdleTimeout(); d != nil {
			if d.CheckValid() != nil || d.AsDuration() < 0 {
				return nil, fmt.Errorf("%s: idle_timeout %v is not a valid duration", httpProtocolOptionsKey, d)
			}
			svc.IdleTimeout = d.AsDuration()
		}
	}
	if th := c.GetCircuitBreakers().GetThresholds(); len(th) > 0 {
		t := th[0]
		svc.Limits = Limits{
			MaxConnections: u32(t.GetMaxConnections(), DefaultMaxRequests),
			MaxPending:     u32(t.GetMaxPendingRequests(), DefaultMaxRequests),
			MaxRequests:    u32(t.GetMaxRequests(), DefaultMaxRequests),
			MaxRetries:     u32(t.GetMaxRetries(), DefaultMaxRetries),
		}
	}
	if od := c.GetOutlierDetection(); od != nil {
		svc.Outlier = Outlier{
			Consecutive5xx:            u32(od.GetConsecutive_5Xx(), 5),
			ConsecutiveGatewayFailure: u32(od.GetConsecutiveGatewayFailure(), 5),
			Interval:                  10 * time.Second,
			BaseEjectionTime:          30 * time.Second,
			MaxEjectionPercent:        u32(od.GetMaxEjectionPercent(), 10),
		}
		if d := od.GetInterval(); d != nil {
			svc.Outlier.Interval = d.AsDuration()
		}
		if d := od.GetBaseEjectionTime(); d != nil {
			svc.Outlier.BaseEjectionTime = d.AsDuration()
		}
	}
	if p := c.GetCommonLbConfig().GetHealthyPanicThreshold(); p != nil {
		svc.PanicThreshold = p.GetValue()
	}
	if ts := c.GetTransportSocket(); ts != nil {
		var up tlsv3.UpstreamTlsContext
		if err := ts.GetTypedConfig().UnmarshalTo(&up); err != nil {
			return nil, fmt.Errorf("transport socket is not an UpstreamTlsContext: %w", err)
		}
		if sni := up.GetSni(); sni != "" {
			got, err := naming.ParseSNI(sni)
			if err != nil {
				return nil, err
			}
			if got != sp {
				return nil, fmt.Errorf("sni %q names %s, not the cluster's %s", sni, got, sp)
			}
			svc.SNI = strings.ToLower(sni)
		}
		for _, p := range up.GetCommonTlsContext().GetAlpnProtocols() {
			if p == "h2" || p == "http/1.1" {
				svc.Protocol = HTTP
			}
		}
		vc := up.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext()
		for _, m := range vc.GetMatchTypedSubjectAltNames() {
			if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
				continue
			}
			id := m.GetMatcher().GetExact()
			if _, err := spiffeid.FromString(id); err != nil {
				return nil, fmt.Errorf("subject alt name %q is not a SPIFFE ID: %w", id, err)
			}
			svc.Identities = append(svc.Identities, id)
		}
		sort.Strings(svc.Identities)
	}
	return svc, nil
}

func endpoints(cla *endpointv3.ClusterLoadAssignment) ([]Endpoint, error) {
	var out []Endpoint
	for _, le := range cla.GetEndpoints() {
		loc := topology.Locality{Region: le.GetLocality().GetRegion(), Zone: le.GetLocality().GetZone(), Cluster: le.GetLocality().GetSubZone()}
		for _, lb := range le.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, errors.New("endpoint without a socket address")
			}
			ip := net.ParseIP(sa.GetAddress())
			if ip == nil {
				return nil, fmt.Errorf("endpoint address %q is not an IP address", sa.GetAddress())
			}
			if sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
				return nil, fmt.Errorf("endpoint %s: port %d out of range", sa.GetAddress(), sa.GetPortValue())
			}
			ep := Endpoint{
				Address:  net.JoinHostPort(ip.String(), strconv.Itoa(int(sa.GetPortValue()))),
				Priority: le.GetPriority(),
				Weight:   uint32(u32(lb.GetLoadBalancingWeight(), 1)),
				Healthy:  healthy(lb.GetHealthStatus()),
				Locality: loc,
				Cluster:  loc.Cluster,
			}
			if ep.Weight == 0 {
				ep.Weight = 1
			}
			md := lb.GetMetadata().GetFilterMetadata()[naming.MetadataNamespace].GetFields()
			if v := md[naming.EndpointCluster].GetStringValue(); v != "" {
				ep.Cluster = v
			}
			if v := md[naming.EndpointSNI].GetStringValue(); v != "" {
				if _, err := naming.ParseSNI(v); err != nil {
					return nil, fmt.Errorf("endpoint %s: %w", ep.Address, err)
				}
				ep.SNI, ep.Remote = strings.ToLower(v), true
			}
			if v := md[naming.EndpointIdentity].GetStringValue(); v != "" {
				if _, err := spiffeid.FromString(v); err != nil {
					return nil, fmt.Errorf("endpoint %s: identity %q: %w", ep.Address, v, err)
				}
				ep.Identity = v
			}
			if v := lb.GetEndpoint().GetHostname(); v != "" {
				// The name becomes a metric label: only a bounded,
				// well-formed one is taken (catalog workload names are).
				if len(validation.IsDNS1123Subdomain(v)) > 0 {
					return nil, fmt.Errorf("endpoint %s: hostname %.80q is not a workload name: want a DNS-1123 subdomain of at most %d characters",
						ep.Address, v, validation.DNS1123SubdomainMaxLength)
				}
				ep.Workload = v
			}
			out = append(out, ep)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority < out[j].Priority
		}
		return out[i].Address < out[j].Address
	})
	return out, nil
}

func healthy(h corev3.HealthStatus) bool {
	switch h {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY, corev3.HealthStatus_DEGRADED:
		return true
	}
	return false
}

// applyRoutes attaches the virtual hosts of route configuration rc to
// their services. A virtual host belongs to the service its domains name
// (or, failing that, the service its "/" route sends to). The default
// shape (one "/" route to the service's own cluster) sets the service's
// timeout and retry policy, as it always did; any other shape is compiled
// into Service.Routes.
func applyRoutes(snap *Snapshot, rc *routeConfig) error {
	var rcPort int32
	if p, err := strconv.ParseUint(rc.name, 10, 16); err == nil {
		rcPort = int32(p)
	}
	for _, v := range rc.vhosts {
		svc, err := vhostService(snap, v, rcPort)
		if err != nil {
			return fmt.Errorf("virtual host %q: %w", v.name, err)
		}
		if svc == nil {
			continue // the cluster has not arrived yet
		}
		if v.proto == nil && v.cluster == svc.Cluster {
			if v.hasTimeout {
				svc.Timeout = v.timeout
			}
			if v.retryErr != nil {
				return fmt.Errorf("virtual host %q: retry_policy: %w", v.name, v.retryErr)
			}
			if v.retry != nil {
				svc.Retry = *v.retry
				svc.Retry.StatusCodes = slices.Clone(v.retry.StatusCodes)
			}
		} else {
			vh, err := v.virtualHost()
			if err != nil {
				return fmt.Errorf("virtual host %q: %w", v.name, err)
			}
			routes, err := compileVirtualHost(vh, snap.clusters)
			if err != nil {
				return fmt.Errorf("virtual host %q: %w", v.name, err)
			}
			svc.Routes = routes
		}
		svc.Protocol = httpProtocol(svc.Protocol)
		sp := svc.Port
		for _, d := range v.domains {
			host, port, err := SplitHostPort(d, sp.Port)
			if err != nil || port != sp.Port {
				continue
			}
			snap.hosts[hostPort{host, port}] = svc
			if ip, err := netip.ParseAddr(host); err == nil && svc.Subset == "" && svc.ClusterSetIP == "" {
				svc.ClusterSetIP = ip.String()
			}
		}
	}
	return nil
}

// vhostService finds the service a virtual host is for: the first domain
// that names a service (NAME.NS.svc.clusterset.local or NAME.NS, with the
// route configuration's port unless the domain has one), else the
// cluster of its "/" route. nil when the service has not arrived.
func vhostService(snap *Snapshot, v *vhostState, rcPort int32) (*Service, error) {
	for _, d := range v.domains {
		def := rcPort
		if def == 0 {
			def = 80
		}
		host, port, err := SplitHostPort(d, def)
		if err != nil {
			continue
		}
		if sp, ok := servicePortOfHost(host, port); ok {
			if svc := snap.Services[sp]; svc != nil {
				return svc, nil
			}
		}
	}
	if v.fallback == "" {
		return nil, nil
	}
	sp, err := naming.ParseOutboundCluster(v.fallback)
	if err != nil {
		return nil, err
	}
	return snap.Services[sp], nil
}

// servicePortOfHost parses NAME.NS.svc.clusterset.local or NAME.NS.
func servicePortOfHost(host string, port int32) (naming.ServicePort, bool) {
	host = strings.TrimSuffix(host, "."+naming.ClusterSetDomain)
	name, ns, ok := strings.Cut(host, ".")
	if !ok || name == "" || ns == "" || strings.Contains(ns, ".") {
		return naming.ServicePort{}, false
	}
	return naming.ServicePort{Namespace: ns, Name: name, Port: port}, true
}

func httpProtocol(p Protocol) Protocol {
	if p.IsHTTP() {
		return p
	}
	return HTTP
}

func retryPolicy(rp *routev3.RetryPolicy) RetryPolicy {
	out := RetryPolicy{Retries: u32(rp.GetNumRetries(), 1), HostAttempts: int(rp.GetHostSelectionRetryMaxAttempts())}
	if out.HostAttempts <= 0 {
		out.HostAttempts = 1
	}
	for _, on := range strings.Split(rp.GetRetryOn(), ",") {
		switch strings.TrimSpace(on) {
		case "5xx":
			out.On5xx, out.OnConnectFailure = true, true
		case "gateway-error":
			out.OnGatewayError, out.OnConnectFailure = true, true
		case "connect-failure", "reset", "refused-stream":
			out.OnConnectFailure = true
		case "unavailable", "cancelled", "deadline-exceeded", "internal", "resource-exhausted":
			// gRPC status codes: only a compiled route retries them (see
			// compileRetry); the default route never did.
		case "retriable-status-codes":
			for _, c := range rp.GetRetriableStatusCodes() {
				out.StatusCodes = append(out.StatusCodes, int(c))
			}
		}
	}
	return out
}

// lbPolicy reads c's lb_policy and ring_hash_lb_config into svc.
func lbPolicy(svc *Service, c *clusterv3.Cluster) error {
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_LEAST_REQUEST:
		svc.LB = LeastRequest
	case clusterv3.Cluster_ROUND_ROBIN:
		svc.LB = RoundRobin
	case clusterv3.Cluster_RING_HASH:
		svc.LB = RingHash
		svc.MinRingSize, svc.MaxRingSize = DefaultMinRingSize, DefaultMaxRingSize
		if rh := c.GetRingHashLbConfig(); rh != nil {
			if v := rh.GetMinimumRingSize(); v != nil {
				svc.MinRingSize = v.GetValue()
			}
			if v := rh.GetMaximumRingSize(); v != nil {
				svc.MaxRingSize = v.GetValue()
			}
			if rh.GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
				return fmt.Errorf("ring_hash_lb_config: hash_function %v is not supported (want XX_HASH)", rh.GetHashFunction())
			}
		}
		if svc.MinRingSize == 0 || svc.MaxRingSize > DefaultMaxRingSize || svc.MinRingSize > svc.MaxRingSize {
			return fmt.Errorf("ring_hash_lb_config: ring sizes %d..%d are not within 1..%d", svc.MinRingSize, svc.MaxRingSize, DefaultMaxRingSize)
		}
	default:
		return fmt.Errorf("lb_policy %v is not supported (want LEAST_REQUEST, ROUND_ROBIN or RING_HASH)", c.GetLbPolicy())
	}
	return nil
}

// httpProtocolOptionsKey names the upstream HTTP protocol options in a
// cluster's typed_extension_protocol_options.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// upstreamHTTP2 reports whether cluster c speaks HTTP/2 to its endpoints:
// its typed_extension_protocol_options hold HttpProtocolOptions with an
// explicit HTTP/2 configuration.
func upstreamHTTP2(c *clusterv3.Cluster) (bool, error) {
	a := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]
	if a == nil {
		return false, nil
	}
	var o upstreamhttpv3.HttpProtocolOptions
	if err := a.UnmarshalTo(&o); err != nil {
		return false, fmt.Errorf("%s: %w", httpProtocolOptionsKey, err)
	}
	return o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil, nil
}

func dataSource(ds *corev3.DataSource) []byte {
	if b := ds.GetInlineBytes(); len(b) > 0 {
		return b
	}
	return []byte(ds.GetInlineString())
}

func certificate(s *tlsv3.Secret) (*tls.Certificate, error) {
	tc := s.GetTlsCertificate()
	if tc == nil {
		return nil, errors.New("no tls_certificate")
	}
	c, err := tls.X509KeyPair(dataSource(tc.GetCertificateChain()), dataSource(tc.GetPrivateKey()))
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func rootBundle(td spiffeid.TrustDomain, s *tlsv3.Secret) (*x509bundle.Bundle, error) {
	vc := s.GetValidationContext()
	if vc == nil {
		return nil, errors.New("no validation_context")
	}
	rest := dataSource(vc.GetTrustedCa())
	var roots []*x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("trusted_ca: %w", err)
		}
		roots = append(roots, c)
	}
	if len(roots) == 0 {
		return nil, errors.New("trusted_ca holds no certificate")
	}
	return x509bundle.FromX509Authorities(td, roots), nil
}

// serviceVersion hashes what the proxy's upstream of svc depends on: not
// the route table, which is read per request from the snapshot.
func serviceVersion(svc *Service) string {
	h := fnv.New64a()
	c := *svc
	c.Routes = nil
	fmt.Fprintf(h, "%+v", c)
	return strconv.FormatUint(h.Sum64(), 16)
}
