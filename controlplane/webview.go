package controlplane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/controlplane/webview"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// Default ports of the proxies the web view's collector reads.
const (
	DefaultSidecarAdminPort = 15000
	DefaultGatewayAdminPort = 15021
	// DefaultSidecarReadyPort is an injected sidecar's ready listener
	// (inject.DefaultReadyPort), on the pod's address.
	DefaultSidecarReadyPort = 15021
)

// PodAddresses returns the IP and ServiceAccount of the pod
// namespace/name as the cluster's API server knows them (the control
// plane's Pod informer: kube.Source.PodAddress); ok is false for a pod it
// does not know or one without an IP. Called from the collector's
// goroutine.
type PodAddresses func(namespace, name string) (ip netip.Addr, serviceAccount string, ok bool)

// WebViewConfig configures the live picture served on the admin port
// (webview.UIPath, webview.GraphPath): how the control plane reads its
// own cluster's sidecars' and gateway's request counters
// (/stats/prometheus). It finds them among the connected xDS nodes, in
// one of two modes.
//
// Local mode (Pods nil): a sidecar's node id is role~ADDRESS~..., read at
// ADDRESS:SidecarAdminPort (local mode gives each workload its own
// loopback address); a gateway's is gateway~HOST:PORT~CLUSTER, read at
// HOST:GatewayAdminPort. Only addresses inside Networks are read, so a
// node cannot point the control plane anywhere else.
//
// Kubernetes mode (Pods set): a sidecar's admin port is on its pod's
// loopback, out of reach, and its node id names no pod address. The
// collector reads instead the pod the node's projected token is bound
// to, as TokenReview proved it (xds.Identity.Workload, which the node's
// claimed workload must equal), at the IP Pods gives for it: a sidecar
// at POD-IP:SidecarReadyPort (its ready listener, the one Prometheus
// scrapes), a gateway at POD-IP:GatewayAdminPort. The node id's address
// is never used; a node whose token is bound to no pod, whose pod Pods
// does not know, has no IP, or runs as another ServiceAccount than the
// node proved, is not read.
//
// Nodes left out are counted by reason in
// fedmesh_controlplane_webview_nodes_unread.
type WebViewConfig struct {
	// Interval between reads. Default 1s; negative turns the collector
	// off (the page still shows the federation).
	Interval time.Duration
	// Targets are further admin addresses (host:port) to read, of
	// proxies whose node ids do not name their address.
	Targets []string
	// Networks bound the addresses of discovered targets. Default, in
	// local mode: the loopback networks 127.0.0.0/8 and ::1/128; in
	// Kubernetes mode: none (the pod IPs come from the API server).
	Networks []netip.Prefix
	// SidecarAdminPort (local mode) and GatewayAdminPort default to
	// 15000 and 15021.
	SidecarAdminPort, GatewayAdminPort int
	// Pods, when set, selects Kubernetes mode: targets are read at the
	// addresses of their proven pods. Nil: local mode.
	Pods PodAddresses
	// SidecarReadyPort is the port of a sidecar's ready listener on its
	// pod's address, read in Kubernetes mode (the injector's ReadyPort).
	// Default 15021.
	SidecarReadyPort int
}

func (c *WebViewConfig) withDefaults() error {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if len(c.Networks) == 0 && c.Pods == nil {
		c.Networks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if c.SidecarAdminPort == 0 {
		c.SidecarAdminPort = DefaultSidecarAdminPort
	}
	if c.GatewayAdminPort == 0 {
		c.GatewayAdminPort = DefaultGatewayAdminPort
	}
	if c.SidecarReadyPort == 0 {
		c.SidecarReadyPort = DefaultSidecarReadyPort
	}
	for _, p := range []struct {
		name string
		port int
	}{{"sidecar admin", c.SidecarAdminPort}, {"gateway admin", c.GatewayAdminPort}, {"sidecar ready", c.SidecarReadyPort}} {
		if p.port < 1 || p.port > 65535 {
			return fmt.Errorf("web view %s port %d: want 1-65535", p.name, p.port)
		}
	}
	for _, t := range c.Targets {
		if _, _, err := net.SplitHostPort(t); err != nil {
			return fmt.Errorf("web view target %q: want HOST:PORT: %w", t, err)
		}
	}
	return nil
}

// Why a connected sidecar or gateway is not read, the values of the
// reason label of fedmesh_controlplane_webview_nodes_unread.
const (
	// unreadNoAddress: its node id names no IP address (local mode).
	unreadNoAddress = "no_address"
	// unreadOutsideNetworks: the address is outside WebViewConfig.Networks.
	unreadOutsideNetworks = "outside_networks"
	// unreadNoPod: its credentials prove no pod, or another pod than it
	// claims (Kubernetes mode).
	unreadNoPod = "no_pod"
	// unreadPodUnknown: the Pod informer does not hold its pod, or the
	// pod has no IP (Kubernetes mode).
	unreadPodUnknown = "pod_unknown"
	// unreadServiceAccount: its pod runs as another ServiceAccount than
	// its credentials prove (Kubernetes mode).
	unreadServiceAccount = "service_account"
)

var unreadReasons = []string{unreadNoAddress, unreadOutsideNetworks, unreadNoPod, unreadPodUnknown, unreadServiceAccount}

// webViewTargets gives the collector its targets and counts the
// connected nodes it does not read.
type webViewTargets struct {
	cfg    WebViewConfig
	nodes  func() []xds.ConnectedNode
	unread *prometheus.GaugeVec
}

func newWebViewTargets(cfg WebViewConfig, nodes func() []xds.ConnectedNode, reg prometheus.Registerer) (*webViewTargets, error) {
	w := &webViewTargets{cfg: cfg, nodes: nodes, unread: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fedmesh_controlplane_webview_nodes_unread",
		Help: "Connected sidecars and gateways the web view does not read, by reason (no_address, outside_networks, no_pod, pod_unknown, service_account), at the last read.",
	}, []string{"reason"})}
	for _, r := range unreadReasons {
		w.unread.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(w.unread); err != nil {
			return nil, fmt.Errorf("web view: register metrics: %w", err)
		}
	}
	return w, nil
}

// targets is the collector's CollectorConfig.Targets.
func (w *webViewTargets) targets() []webview.Target {
	out, unread := scrapeTargets(w.cfg, w.nodes())
	for _, r := range unreadReasons {
		w.unread.WithLabelValues(r).Set(float64(unread[r]))
	}
	return out
}

// scrapeTargets lists the admin endpoints of the connected nodes the
// configuration allows, and the configured ones, and counts the
// sidecars and gateways it leaves out by reason.
func scrapeTargets(cfg WebViewConfig, nodes []xds.ConnectedNode) ([]webview.Target, map[string]int) {
	seen := map[string]bool{}
	var out []webview.Target
	unread := map[string]int{}
	add := func(t webview.Target) {
		if !seen[t.Address] {
			seen[t.Address] = true
			out = append(out, t)
		}
	}
	for _, n := range nodes {
		var kind string
		switch n.Role {
		case naming.RoleSidecar:
			kind = webview.KindSidecar
		case naming.RoleGateway:
			kind = webview.KindGateway
		default:
			continue
		}
		var addr, why string
		if cfg.Pods != nil {
			addr, why = podTarget(cfg, n)
		} else {
			addr, why = nodeIDTarget(cfg, n.Node)
		}
		if why != "" {
			unread[why]++
			continue
		}
		add(webview.Target{Kind: kind, Node: n.ID, Address: addr})
	}
	for _, t := range cfg.Targets {
		add(webview.Target{Kind: webview.KindSidecar, Node: t, Address: t})
	}
	return out, unread
}

// nodeIDTarget is local mode's admin address of n: the address its node
// id names, inside cfg.Networks; else why not.
func nodeIDTarget(cfg WebViewConfig, n xds.Node) (addr, why string) {
	parts := strings.SplitN(n.ID, "~", 3)
	if len(parts) < 2 {
		return "", unreadNoAddress
	}
	host, port := parts[1], cfg.SidecarAdminPort
	if n.Role == naming.RoleGateway {
		port = cfg.GatewayAdminPort
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", unreadNoAddress
	}
	if !inNetworks(ip.Unmap(), cfg.Networks) {
		return "", unreadOutsideNetworks
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(port)), ""
}

// podTarget is Kubernetes mode's address of n: its proven pod's IP with
// the sidecar's ready port or the gateway's admin port; else why not.
func podTarget(cfg WebViewConfig, n xds.ConnectedNode) (addr, why string) {
	id := n.Identity
	// The pod TokenReview bound the token to; the claim must agree (it
	// does unless a newer stream of the same node id claims another).
	if id.Workload == "" || id.Workload != n.Workload || id.Namespace != n.Namespace {
		return "", unreadNoPod
	}
	ip, sa, ok := cfg.Pods(id.Namespace, id.Workload)
	if !ok || !ip.IsValid() {
		return "", unreadPodUnknown
	}
	if sa != id.ServiceAccount {
		return "", unreadServiceAccount
	}
	ip = ip.Unmap()
	if len(cfg.Networks) > 0 && !inNetworks(ip, cfg.Networks) {
		return "", unreadOutsideNetworks
	}
	port := cfg.SidecarReadyPort
	if n.Role == naming.RoleGateway {
		port = cfg.GatewayAdminPort
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(port)), ""
}

func inNetworks(ip netip.Addr, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// startWebView creates the collector (nil when turned off) and mounts
// the page and the graph on the admin port. Run the collector on the
// mesh's group.
func (s *Server) startWebView(m *mesh) (*webview.Collector, error) {
	cfg := s.cfg.Mesh.WebView
	var coll *webview.Collector
	if cfg.Interval > 0 {
		targets, err := newWebViewTargets(cfg, m.xdsServer.Connected, s.cfg.Registry)
		if err != nil {
			return nil, err
		}
		coll, err = webview.NewCollector(webview.CollectorConfig{
			Targets:    targets.targets,
			Interval:   cfg.Interval,
			Logger:     s.log,
			Registerer: s.cfg.Registry,
		})
		if err != nil {
			return nil, err
		}
	}
	graph := func(ctx context.Context) (webview.Graph, error) {
		st, err := m.fed.Status(ctx)
		if err != nil {
			return webview.Graph{}, err
		}
		in := webview.Input{Now: time.Now(), Status: st, View: m.fed.View()}
		if coll != nil {
			in.Traffic = coll.Snapshot()
		}
		for _, n := range m.xdsServer.Nodes() {
			in.Proxies = append(in.Proxies, webview.ProxyNode{ID: n.ID, Role: n.Role, Workload: n.Workload, Namespace: n.Namespace})
		}
		return webview.Build(in), nil
	}
	s.admin.Handle("GET "+webview.GraphPath, webview.GraphHandler(graph))
	s.admin.Handle("GET "+webview.UIPath, webview.UIHandler())
	return coll, nil
}
