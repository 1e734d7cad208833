package config

import (
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
)

// state is what a Builder keeps of the accepted resources: each one
// translated, when it arrives, into the compact form the Snapshot is
// built from, so that the decoded protos of a thousand services are not
// kept after use (route configurations keep the proto of a virtual host
// only when it is not of the default shape: route_state.go). What is few
// per node (inbound listeners and clusters, the two secrets) is kept as
// received, because it is compiled against the other types at every
// build. A state is never changed once made: Apply makes a new one with
// the update's type copied and changed.
type state struct {
	versions map[string]string

	// clusters are the outbound and subset clusters, by name, as
	// Services without endpoints, routes or listener-given protocol.
	clusters        map[string]*Service
	inboundClusters map[string]*clusterv3.Cluster
	// endpoints are the assignments by cluster name; an endpoint's SNI
	// is empty unless its metadata set one (build fills the cluster's).
	endpoints map[string][]Endpoint
	routes    map[string]*routeConfig
	// outbound are the outbound listeners' filters, by name.
	outbound map[string]*outboundListener
	inbound  map[string]*listenerv3.Listener
	// telemetry are the HCMs' telemetry of outbound and inbound
	// listeners, by listener name.
	telemetry map[string][]hcmTel
	secrets   map[string]*tlsv3.Secret
}

// outboundListener is what an outbound listener says of its service
// port: its filters in order, an HTTP connection manager (http) or a
// tcp_proxy to tcpCluster.
type outboundListener struct {
	sp      naming.ServicePort
	filters []outboundFilter
	// addrs are the service's virtual addresses from the filter chains'
	// prefix_ranges (full-length ranges only), in order.
	addrs []netip.Addr
}

type outboundFilter struct {
	http       bool
	tcpCluster string
}

func newState() *state {
	return &state{
		versions:        map[string]string{},
		clusters:        map[string]*Service{},
		inboundClusters: map[string]*clusterv3.Cluster{},
		endpoints:       map[string][]Endpoint{},
		routes:          map[string]*routeConfig{},
		outbound:        map[string]*outboundListener{},
		inbound:         map[string]*listenerv3.Listener{},
		telemetry:       map[string][]hcmTel{},
		secrets:         map[string]*tlsv3.Secret{},
	}
}

// with returns a copy of s with u applied: u's type replaced whole, or
// changed by an incremental update. Resources are translated here; an
// error names the first that is wrong, and s is unchanged either way.
func (s *state) with(u xdsclient.Update) (*state, error) {
	n := *s
	n.versions = maps.Clone(s.versions)
	n.versions[u.TypeURL] = u.Version
	// cloneOrNew copies a type's map for an incremental update and
	// starts an empty one for a whole set.
	switch u.TypeURL {
	case xdsclient.ClusterType:
		n.clusters, n.inboundClusters = cloneOrNew(u, s.clusters), cloneOrNew(u, s.inboundClusters)
		for _, name := range u.Removed {
			delete(n.clusters, name)
			delete(n.inboundClusters, name)
		}
		for _, name := range sortedKeys(u.Resources) {
			c := u.Resources[name].(*clusterv3.Cluster)
			delete(n.clusters, name)
			delete(n.inboundClusters, name)
			if strings.HasPrefix(name, "inbound|") {
				n.inboundClusters[name] = c
				continue
			}
			sp, subset, err := naming.ParseCluster(name)
			if err != nil {
				return nil, invalid("cluster %q: %v", name, err)
			}
			svc, err := service(sp, c)
			if err != nil {
				return nil, invalid("cluster %q: %v", name, err)
			}
			svc.Subset = subset
			n.clusters[name] = svc
		}
	case xdsclient.EndpointType:
		n.endpoints = cloneOrNew(u, s.endpoints)
		for _, name := range u.Removed {
			delete(n.endpoints, name)
		}
		for _, name := range sortedKeys(u.Resources) {
			eps, err := endpoints(u.Resources[name].(*endpointv3.ClusterLoadAssignment))
			if err != nil {
				return nil, invalid("endpoints %q: %v", name, err)
			}
			n.endpoints[name] = eps
		}
	case xdsclient.RouteType:
		n.routes = cloneOrNew(u, s.routes)
		for _, name := range u.Removed {
			delete(n.routes, name)
		}
		for _, name := range sortedKeys(u.Resources) {
			rc, err := translateRoutes(u.Resources[name].(*routev3.RouteConfiguration))
			if err != nil {
				return nil, invalid("route configuration %q: %v", name, err)
			}
			n.routes[name] = rc
		}
	case xdsclient.ListenerType:
		n.outbound, n.inbound, n.telemetry = cloneOrNew(u, s.outbound), cloneOrNew(u, s.inbound), cloneOrNew(u, s.telemetry)
		for _, name := range u.Removed {
			delete(n.outbound, name)
			delete(n.inbound, name)
			delete(n.telemetry, name)
		}
		for _, name := range sortedKeys(u.Resources) {
			l := u.Resources[name].(*listenerv3.Listener)
			delete(n.outbound, name)
			delete(n.inbound, name)
			delete(n.telemetry, name)
			switch {
			case strings.HasPrefix(name, "outbound|"):
				ol, err := translateOutbound(l)
				if err != nil {
					return nil, invalid("listener %q: %v", name, err)
				}
				n.outbound[name] = ol
			case strings.HasPrefix(name, "inbound|"):
				n.inbound[name] = l
			default:
				continue // not fedmesh's: ignored, as before
			}
			tel, err := listenerTelemetry(name, l)
			if err != nil {
				return nil, err
			}
			if len(tel) > 0 {
				n.telemetry[name] = tel
			}
		}
	case xdsclient.SecretType:
		n.secrets = cloneOrNew(u, s.secrets)
		for _, name := range u.Removed {
			delete(n.secrets, name)
		}
		for name, m := range u.Resources {
			n.secrets[name] = m.(*tlsv3.Secret)
		}
	}
	return &n, nil
}

// cloneOrNew is m copied for an incremental update, or a new empty map
// for a whole set.
func cloneOrNew[V any](u xdsclient.Update, m map[string]V) map[string]V {
	if u.Incremental {
		return maps.Clone(m)
	}
	return make(map[string]V, len(u.Resources))
}

// translateOutbound reads an outbound listener's filters.
func translateOutbound(l *listenerv3.Listener) (*outboundListener, error) {
	sp, err := naming.ParseOutboundCluster(l.GetName())
	if err != nil {
		return nil, err
	}
	ol := &outboundListener{sp: sp}
	for _, fc := range l.GetFilterChains() {
		for _, r := range fc.GetFilterChainMatch().GetPrefixRanges() {
			ip, err := netip.ParseAddr(r.GetAddressPrefix())
			if err != nil || ip.Zone() != "" {
				return nil, fmt.Errorf("filter_chain_match.prefix_ranges: %q is not an IP address", r.GetAddressPrefix())
			}
			if r.GetPrefixLen() == nil || int(r.GetPrefixLen().GetValue()) != ip.BitLen() {
				// A range names many destinations, not one service
				// address; the sidecar does not match by it.
				continue
			}
			ol.addrs = append(ol.addrs, ip.Unmap())
		}
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc == nil {
				continue
			}
			switch {
			case tc.MessageIs(&hcmv3.HttpConnectionManager{}):
				ol.filters = append(ol.filters, outboundFilter{http: true})
			case tc.MessageIs(&tcpproxyv3.TcpProxy{}):
				var tp tcpproxyv3.TcpProxy
				if err := tc.UnmarshalTo(&tp); err != nil {
					return nil, err
				}
				ol.filters = append(ol.filters, outboundFilter{tcpCluster: tp.GetCluster()})
			}
		}
	}
	return ol, nil
}

// applyOutbound sets the protocol of the listener's service, when the
// service has arrived, from its filters in order.
func applyOutbound(snap *Snapshot, ol *outboundListener) error {
	svc := snap.Services[ol.sp]
	if svc == nil {
		return nil
	}
	for _, f := range ol.filters {
		if f.http {
			svc.Protocol = httpProtocol(svc.Protocol)
			continue
		}
		if f.tcpCluster != "" && f.tcpCluster != svc.Cluster {
			return fmt.Errorf("tcp_proxy sends to %q, not %q", f.tcpCluster, svc.Cluster)
		}
		svc.Protocol = TCP
	}
	for _, ip := range ol.addrs {
		k := hostPort{ip.String(), svc.Port.Port}
		if _, taken := snap.hosts[k]; !taken {
			snap.hosts[k] = svc
		}
		if svc.ClusterSetIP == "" {
			svc.ClusterSetIP = ip.String()
		}
	}
	return nil
}

// build makes the Snapshot of s.
func (s *state) build(td spiffeid.TrustDomain) (*Snapshot, error) {
	snap := &Snapshot{
		Services: map[naming.ServicePort]*Service{},
		Versions: s.versions,
		hosts:    map[hostPort]*Service{},
		ports:    map[int32][]*Service{},
		clusters: map[string]*Service{},
	}
	for _, name := range sortedKeys(s.clusters) {
		svc := *s.clusters[name]
		snap.clusters[name] = &svc
		if svc.Subset == "" {
			snap.Services[svc.Port] = &svc
		}
	}
	for name, eps := range s.endpoints {
		svc := snap.clusters[name]
		if svc == nil {
			continue
		}
		svc.Endpoints = withSNI(eps, svc.SNI)
		// Keep the filled copy, so that the Builder and the snapshot
		// share one copy of the endpoints and the next builds need
		// none. It is only a cache (s.endpoints may be the current
		// state's map too, and this build may yet fail): withSNI fills
		// every endpoint but a gateway entry with the cluster's SNI of
		// the build at hand.
		s.endpoints[name] = svc.Endpoints
	}
	for _, name := range sortedKeys(s.routes) {
		if err := applyRoutes(snap, s.routes[name]); err != nil {
			return nil, invalid("route configuration %q: %v", name, err)
		}
	}
	names := make([]string, 0, len(s.outbound)+len(s.inbound))
	for name := range s.outbound {
		names = append(names, name)
	}
	for name := range s.inbound {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if ol := s.outbound[name]; ol != nil {
			if err := applyOutbound(snap, ol); err != nil {
				return nil, invalid("listener %q: %v", name, err)
			}
			continue
		}
		in, err := inbound(s.inbound[name], s.inboundClusters, snap)
		if err != nil {
			return nil, invalid("listener %q: %w", name, err)
		}
		snap.Inbound = append(snap.Inbound, in)
	}
	tel, err := nodeTelemetry(s.telemetry)
	if err != nil {
		return nil, err
	}
	snap.Telemetry = tel
	for _, name := range sortedKeys(s.secrets) {
		sec := s.secrets[name]
		switch name {
		case naming.SecretWorkload:
			c, err := certificate(sec)
			if err != nil {
				return nil, invalid("secret %q: %v", name, err)
			}
			snap.Certificate = c
		case naming.SecretRootCA:
			bundle, err := rootBundle(td, sec)
			if err != nil {
				return nil, invalid("secret %q: %v", name, err)
			}
			snap.Bundle = bundle
		default:
			return nil, invalid("secret %q: unknown secret name (want %q or %q)", name, naming.SecretWorkload, naming.SecretRootCA)
		}
	}
	for _, svc := range snap.clusters {
		svc.Version = serviceVersion(svc)
	}
	for sp, svc := range snap.Services {
		for _, h := range []string{sp.Host(), sp.Name + "." + sp.Namespace} {
			k := hostPort{h, sp.Port}
			if _, taken := snap.hosts[k]; !taken {
				snap.hosts[k] = svc
			}
		}
		snap.ports[sp.Port] = append(snap.ports[sp.Port], svc)
	}
	for _, list := range snap.ports {
		sort.Slice(list, func(i, j int) bool { return list[i].Cluster < list[j].Cluster })
	}
	return snap, nil
}

// withSNI returns eps with sni for every endpoint whose metadata named
// none (every one but a gateway entry, Remote): eps itself when they all
// have it already, else a copy (eps is shared and never changed).
func withSNI(eps []Endpoint, sni string) []Endpoint {
	for i := range eps {
		if !eps[i].Remote && eps[i].SNI != sni {
			out := make([]Endpoint, len(eps))
			copy(out, eps)
			for j := range out {
				if !out[j].Remote {
					out[j].SNI = sni
				}
			}
			return out
		}
	}
	return eps
}
