package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	localrlhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	localrlnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/sidecar/authz"
	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
)

// ErrAuthz is wrapped by the errors of Apply about an RBAC filter of an
// inbound chain (with authz.ErrUnsupported for a field the sidecar does
// not implement).
var ErrAuthz = errors.New("authorization")

// Authz is the authorization of one inbound port, compiled from the RBAC
// filters of its filter chain (docs/xds.md, "Inbound authorization"). It
// is immutable.
type Authz struct {
	// Connection runs the network RBAC filters (envoy.filters.network.rbac)
	// once per connection, after the TLS handshake; nil allows every
	// connection.
	Connection *authz.Engine `json:"connection,omitempty"`
	// Request runs the HTTP RBAC filters (envoy.filters.http.rbac) of the
	// chain's HTTP connection manager on every request; nil allows every
	// request.
	Request *authz.Engine `json:"request,omitempty"`
}

// errMissingCluster: a chain sends to a cluster CDS has not given.
var errMissingCluster = errors.New("sends to unknown cluster")

// inboundChain is what one filter chain of an inbound listener says.
type inboundChain struct {
	app   string // host:port of the app
	h2    bool   // the inbound cluster speaks h2c to the app
	http  bool   // the chain ends in an HTTP connection manager
	authz *Authz // nil when the chain has no RBAC filter
	// rl are the request limits of an HTTP chain, conns the connection
	// limits of a TCP chain; nil when none.
	rl, conns *ratelimit.Rules
}

func inbound(l *listenerv3.Listener, clusters map[string]*clusterv3.Cluster, snap *Snapshot) (Inbound, error) {
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil || net.ParseIP(sa.GetAddress()) == nil {
		return Inbound{}, errors.New("inbound listener needs an IP socket address")
	}
	in := Inbound{
		Name:    l.GetName(),
		Address: net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))),
		Ports:   map[string]InboundPort{},
	}
	for i, fc := range l.GetFilterChains() {
		names := fc.GetFilterChainMatch().GetServerNames()
		if len(names) == 0 {
			continue
		}
		ch, err := parseInboundChain(fc, clusters)
		if errors.Is(err, errMissingCluster) {
			// The cluster has not arrived yet, or a new CDS has removed
			// it before the new LDS: the port is not served (its
			// handshakes are refused) until both agree. Refusing the
			// update instead could refuse CDS and LDS in turn forever.
			continue
		}
		if err != nil {
			return Inbound{}, fmt.Errorf("filter chain %d (%s): %w", i, strings.Join(names, ","), err)
		}
		for _, sni := range names {
			sp, err := naming.ParseSNI(sni)
			if err != nil {
				return Inbound{}, err
			}
			port := InboundPort{SNI: strings.ToLower(sni), Port: sp, Protocol: TCP, App: ch.app, Authz: ch.authz, RateLimit: ch.rl, ConnectionLimit: ch.conns}
			if svc := snap.Services[sp]; svc != nil {
				port.Protocol = svc.Protocol
			}
			if ts := fc.GetTransportSocket(); ts != nil {
				var down tlsv3.DownstreamTlsContext
				if err := ts.GetTypedConfig().UnmarshalTo(&down); err == nil {
					for _, p := range down.GetCommonTlsContext().GetAlpnProtocols() {
						if p == "h2" || p == "http/1.1" {
							port.Protocol = httpProtocol(port.Protocol)
						}
					}
				}
			}
			if ch.http {
				port.Protocol = httpProtocol(port.Protocol)
			}
			if ch.h2 {
				port.Protocol = GRPC
			}
			in.Ports[port.SNI] = port
		}
	}
	return in, nil
}

// parseInboundChain reads the filters of one inbound filter chain: network
// RBAC filters, then tcp_proxy or an HTTP connection manager with an
// inline route to the inbound cluster (RBAC HTTP filters before the
// router).
func parseInboundChain(fc *listenerv3.FilterChain, clusters map[string]*clusterv3.Cluster) (inboundChain, error) {
	var (
		ch       inboundChain
		cluster  string
		terminal bool
		conn     []*authz.Filter
		req      []*authz.Filter
	)
	for i, f := range fc.GetFilters() {
		where := fmt.Sprintf("filter %d %q", i, f.GetName())
		if terminal {
			return ch, fmt.Errorf("%s: follows the chain's terminal filter", where)
		}
		tc := f.GetTypedConfig()
		if tc == nil {
			return ch, fmt.Errorf("%s: no typed_config", where)
		}
		switch {
		case tc.MessageIs(&netrbacv3.RBAC{}):
			var rc netrbacv3.RBAC
			if err := tc.UnmarshalTo(&rc); err != nil {
				return ch, fmt.Errorf("%s: %w: %w", where, ErrAuthz, err)
			}
			af, err := authz.NewNetworkFilter(&rc)
			if err != nil {
				return ch, fmt.Errorf("%s: %w: %w", where, ErrAuthz, err)
			}
			conn = append(conn, af)
		case tc.MessageIs(&localrlnetv3.LocalRateLimit{}):
			var rc localrlnetv3.LocalRateLimit
			if err := tc.UnmarshalTo(&rc); err != nil {
				return ch, fmt.Errorf("%s: %w: %w", where, ErrRateLimit, err)
			}
			lim, err := connectionLimit(&rc)
			if err != nil {
				return ch, fmt.Errorf("%s: %w: %w", where, ErrRateLimit, err)
			}
			if ch.conns == nil {
				ch.conns = &ratelimit.Rules{}
			}
			ch.conns.Limits = append(ch.conns.Limits, lim)
		case tc.MessageIs(&tcpproxyv3.TcpProxy{}):
			var tp tcpproxyv3.TcpProxy
			if err := tc.UnmarshalTo(&tp); err != nil {
				return ch, fmt.Errorf("%s: %w", where, err)
			}
			if tp.GetCluster() == "" {
				return ch, fmt.Errorf("%s: tcp_proxy needs cluster", where)
			}
			cluster, terminal = tp.GetCluster(), true
		case tc.MessageIs(&hcmv3.HttpConnectionManager{}):
			var hcm hcmv3.HttpConnectionManager
			if err := tc.UnmarshalTo(&hcm); err != nil {
				return ch, fmt.Errorf("%s: %w", where, err)
			}
			c, fs, rl, err := inboundHCM(&hcm)
			if err != nil {
				return ch, fmt.Errorf("%s: %w", where, err)
			}
			cluster, req, terminal, ch.http, ch.rl = c, fs, true, true, rl
		default:
			return ch, fmt.Errorf("%s: filter type %s is not supported on an inbound chain", where, tc.GetTypeUrl())
		}
	}
	if !terminal {
		return ch, errors.New("no tcp_proxy or http_connection_manager filter")
	}
	c := clusters[cluster]
	if c == nil {
		return ch, fmt.Errorf("%w %q", errMissingCluster, cluster)
	}
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			a := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if a != nil && ch.app == "" {
				ch.app = net.JoinHostPort(a.GetAddress(), strconv.Itoa(int(a.GetPortValue())))
			}
		}
	}
	if ch.app == "" {
		return ch, fmt.Errorf("cluster %q has no app address", cluster)
	}
	h2, err := upstreamHTTP2(c)
	if err != nil {
		return ch, fmt.Errorf("cluster %q: %w", cluster, err)
	}
	ch.h2 = h2
	if ce, re := authz.NewEngine(conn...), authz.NewEngine(req...); ce != nil || re != nil {
		ch.authz = &Authz{Connection: ce, Request: re}
	}
	return ch, nil
}

// inboundHCM reads an inbound HTTP connection manager: the cluster of its
// inline route, its RBAC filters in order and its local rate limit filter
// (at most one, after the RBAC filters). The router must be the last
// HTTP filter; any other filter is refused unless it is optional.
func inboundHCM(hcm *hcmv3.HttpConnectionManager) (string, []*authz.Filter, *ratelimit.Rules, error) {
	if hcm.GetRds() != nil {
		return "", nil, nil, errors.New("rds: an inbound chain needs an inline route_config")
	}
	rc := hcm.GetRouteConfig()
	if rc == nil {
		return "", nil, nil, errors.New("route_config: missing")
	}
	cluster := ""
	for _, vh := range rc.GetVirtualHosts() {
		if len(vh.GetTypedPerFilterConfig()) > 0 {
			return "", nil, nil, fmt.Errorf("route_config: virtual host %q: typed_per_filter_config is not supported inbound", vh.GetName())
		}
		for _, r := range vh.GetRoutes() {
			if len(r.GetTypedPerFilterConfig()) > 0 {
				return "", nil, nil, fmt.Errorf("route_config: virtual host %q: typed_per_filter_config is not supported inbound", vh.GetName())
			}
			if c := r.GetRoute().GetCluster(); c != "" && cluster == "" && (r.GetMatch().GetPrefix() == "/" || r.GetMatch().GetPrefix() == "") {
				cluster = c
			}
		}
	}
	if cluster == "" {
		return "", nil, nil, errors.New("route_config: no route for prefix / to a cluster")
	}
	var (
		fs     []*authz.Filter
		rl     *ratelimit.Rules
		seenRL bool
	)
	router := false
	for i, hf := range hcm.GetHttpFilters() {
		where := fmt.Sprintf("http filter %d %q", i, hf.GetName())
		if router {
			return "", nil, nil, fmt.Errorf("%s: follows the router", where)
		}
		if hf.GetDisabled() {
			return "", nil, nil, fmt.Errorf("%s: disabled filters are not supported inbound", where)
		}
		tc := hf.GetTypedConfig()
		switch {
		case tc != nil && tc.MessageIs(&httprbacv3.RBAC{}):
			var rc httprbacv3.RBAC
			if err := tc.UnmarshalTo(&rc); err != nil {
				return "", nil, nil, fmt.Errorf("%s: %w: %w", where, ErrAuthz, err)
			}
			af, err := authz.NewHTTPFilter(&rc)
			if err != nil {
				return "", nil, nil, fmt.Errorf("%s: %w: %w", where, ErrAuthz, err)
			}
			if seenRL {
				return "", nil, nil, fmt.Errorf("%s: %w: RBAC filters must come before the local rate limit filter", where, ErrAuthz)
			}
			fs = append(fs, af)
		case tc != nil && tc.MessageIs(&localrlhttpv3.LocalRateLimit{}):
			if seenRL {
				return "", nil, nil, fmt.Errorf("%s: %w: a second local rate limit filter is not supported", where, ErrRateLimit)
			}
			var rc localrlhttpv3.LocalRateLimit
			if err := tc.UnmarshalTo(&rc); err != nil {
				return "", nil, nil, fmt.Errorf("%s: %w: %w", where, ErrRateLimit, err)
			}
			r, err := httpRateLimit(&rc)
			if err != nil {
				return "", nil, nil, fmt.Errorf("%s: %w: %w", where, ErrRateLimit, err)
			}
			rl, seenRL = r, true
		case tc != nil && tc.MessageIs(&routerv3.Router{}):
			router = true
		case hf.GetIsOptional():
			// Envoy skips an optional filter it does not know.
		default:
			return "", nil, nil, fmt.Errorf("%s: filter type %s is not supported inbound", where, tc.GetTypeUrl())
		}
	}
	if !router {
		return "", nil, nil, errors.New("http_filters: no router")
	}
	return cluster, fs, rl, nil
}
