package gateway

import (
	"fmt"
	"net"
	"strconv"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
)

// GatewayListener is the name of the one listener a gateway node receives
// (docs/xds.md section 6).
const GatewayListener = naming.GatewayListener

// XDSTypes are the resource types a gateway subscribes to.
var XDSTypes = []string{xdsclient.ListenerType, xdsclient.EndpointType, xdsclient.SecretType}

// XDSHandler turns what the control plane sends a gateway node (the
// "gateway" listener's filter chains, SNI -> cluster, and the clusters'
// endpoints) into routes. It implements xdsclient.Handler: OnUpdate is
// called from the client's goroutine, one call at a time. SDS secrets
// ("default" and "ROOTCA") become the gateway's identity (SetIdentity).
// An update that
// would give a bad route table is rejected (NACKed) and the gateway keeps
// its routes.
type XDSHandler struct {
	gw *Gateway

	mu        sync.Mutex // guards the following
	listeners map[string]*listenerv3.Listener
	endpoints map[string]*endpointv3.ClusterLoadAssignment
}

var _ xdsclient.Handler = (*XDSHandler)(nil)

// NewXDSHandler returns a handler that feeds gw.
func NewXDSHandler(gw *Gateway) *XDSHandler {
	return &XDSHandler{gw: gw}
}

// OnUpdate implements xdsclient.Handler.
func (h *XDSHandler) OnUpdate(u xdsclient.Update) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	listeners, endpoints := h.listeners, h.endpoints
	switch u.TypeURL {
	case xdsclient.ListenerType:
		listeners = map[string]*listenerv3.Listener{}
		for name, m := range u.Resources {
			l, ok := m.(*listenerv3.Listener)
			if !ok {
				return fmt.Errorf("listener %s: unexpected type %T", name, m)
			}
			listeners[name] = l
		}
	case xdsclient.SecretType:
		if err := h.gw.setSecrets(u.Resources); err != nil {
			h.gw.metrics.configRejected.Inc()
			return err
		}
		return nil
	case xdsclient.EndpointType:
		endpoints = map[string]*endpointv3.ClusterLoadAssignment{}
		for name, m := range u.Resources {
			cla, ok := m.(*endpointv3.ClusterLoadAssignment)
			if !ok {
				return fmt.Errorf("endpoints %s: unexpected type %T", name, m)
			}
			endpoints[name] = cla
		}
	default:
		return nil // not used by a gateway
	}
	routes, err := buildRoutes(listeners[GatewayListener], endpoints)
	if err != nil {
		return err
	}
	var sources sourceTable
	if l := listeners[GatewayListener]; l != nil {
		if sources, err = parseSourceClusters(l); err != nil {
			h.gw.metrics.configRejected.Inc()
			return fmt.Errorf("listener %s: %w", GatewayListener, err)
		}
	}
	if err := h.gw.SetRoutes(routes); err != nil {
		return err
	}
	h.gw.setSources(sources)
	h.listeners, h.endpoints = listeners, endpoints
	return nil
}

// buildRoutes reads the gateway listener's filter chains (server_names ->
// tcp_proxy cluster) and the clusters' endpoints.
func buildRoutes(l *listenerv3.Listener, endpoints map[string]*endpointv3.ClusterLoadAssignment) ([]Route, error) {
	if l == nil {
		return nil, nil
	}
	var routes []Route
	for i, fc := range l.GetFilterChains() {
		names := fc.GetFilterChainMatch().GetServerNames()
		if len(names) == 0 {
			return nil, fmt.Errorf("listener %s: filter chain %d has no server_names", l.GetName(), i)
		}
		cluster, err := tcpProxyCluster(fc)
		if err != nil {
			return nil, fmt.Errorf("listener %s: filter chain %d: %w", l.GetName(), i, err)
		}
		eps, err := lbEndpoints(endpoints[cluster])
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", cluster, err)
		}
		for _, sni := range names {
			sp, err := naming.ParseSNI(sni)
			if err != nil {
				return nil, fmt.Errorf("listener %s: filter chain %d: %w", l.GetName(), i, err)
			}
			routes = append(routes, Route{Service: sp, Endpoints: eps})
		}
	}
	return routes, nil
}

func tcpProxyCluster(fc *listenerv3.FilterChain) (string, error) {
	for _, f := range fc.GetFilters() {
		tc := f.GetTypedConfig()
		if tc == nil {
			continue
		}
		var tp tcpproxyv3.TcpProxy
		if tc.MessageIs(&tp) {
			if err := tc.UnmarshalTo(&tp); err != nil {
				return "", fmt.Errorf("tcp_proxy: %w", err)
			}
			if tp.GetCluster() == "" {
				return "", fmt.Errorf("tcp_proxy names no cluster")
			}
			return tp.GetCluster(), nil
		}
	}
	return "", fmt.Errorf("no tcp_proxy filter")
}

func lbEndpoints(cla *endpointv3.ClusterLoadAssignment) ([]Endpoint, error) {
	var eps []Endpoint
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, fmt.Errorf("endpoint without a socket address")
			}
			h := lb.GetHealthStatus()
			eps = append(eps, Endpoint{
				Address:  net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))),
				Healthy:  h == corev3.HealthStatus_HEALTHY || h == corev3.HealthStatus_UNKNOWN,
				Priority: int(loc.GetPriority()),
			})
		}
	}
	return eps, nil
}
