package controlplane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/webview"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// Default admin ports of the proxies the web view's collector reads.
const (
	DefaultSidecarAdminPort = 15000
	DefaultGatewayAdminPort = 15021
)

// WebViewConfig configures the live picture served on the admin port
// (webview.UIPath, webview.GraphPath): how the control plane reads its
// own cluster's sidecars' and gateway's request counters.
//
// The collector finds its targets among the connected xDS nodes: a
// sidecar's node id is role~ADDRESS~..., its admin port
// ADDRESS:SidecarAdminPort (local mode gives each workload its own
// loopback address); a gateway's is gateway~HOST:PORT~CLUSTER, its admin
// HOST:GatewayAdminPort. Only addresses inside Networks are read, so a
// node cannot point the control plane anywhere else. In Kubernetes a
// sidecar's admin port is on the pod's loopback, out of reach: the
// web view then shows the federation without edge rates, and Prometheus
// with deploy/'s dashboards is the way to see traffic.
type WebViewConfig struct {
	// Interval between reads. Default 1s; negative turns the collector
	// off (the page still shows the federation).
	Interval time.Duration
	// Targets are further admin addresses (host:port) to read, of
	// proxies whose node ids do not name their address.
	Targets []string
	// Networks bound the addresses of discovered targets. Default: the
	// loopback networks 127.0.0.0/8 and ::1/128.
	Networks []netip.Prefix
	// SidecarAdminPort and GatewayAdminPort default to 15000 and 15021.
	SidecarAdminPort, GatewayAdminPort int
}

func (c *WebViewConfig) withDefaults() error {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if len(c.Networks) == 0 {
		c.Networks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if c.SidecarAdminPort == 0 {
		c.SidecarAdminPort = DefaultSidecarAdminPort
	}
	if c.GatewayAdminPort == 0 {
		c.GatewayAdminPort = DefaultGatewayAdminPort
	}
	for _, t := range c.Targets {
		if _, _, err := net.SplitHostPort(t); err != nil {
			return fmt.Errorf("web view target %q: want HOST:PORT: %w", t, err)
		}
	}
	return nil
}

// scrapeTargets lists the admin endpoints of the connected nodes the
// configuration allows, and the configured ones.
func scrapeTargets(cfg WebViewConfig, nodes []xds.Node) []webview.Target {
	seen := map[string]bool{}
	var out []webview.Target
	add := func(t webview.Target) {
		if !seen[t.Address] {
			seen[t.Address] = true
			out = append(out, t)
		}
	}
	for _, n := range nodes {
		parts := strings.SplitN(n.ID, "~", 3)
		if len(parts) < 2 {
			continue
		}
		var kind string
		var port int
		host := parts[1]
		switch n.Role {
		case naming.RoleSidecar:
			kind, port = webview.KindSidecar, cfg.SidecarAdminPort
		case naming.RoleGateway:
			kind, port = webview.KindGateway, cfg.GatewayAdminPort
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
		default:
			continue
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !inNetworks(ip.Unmap(), cfg.Networks) {
			continue
		}
		add(webview.Target{Kind: kind, Node: n.ID, Address: net.JoinHostPort(ip.String(), strconv.Itoa(port))})
	}
	for _, t := range cfg.Targets {
		add(webview.Target{Kind: webview.KindSidecar, Node: t, Address: t})
	}
	return out
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
		var err error
		coll, err = webview.NewCollector(webview.CollectorConfig{
			Targets:    func() []webview.Target { return scrapeTargets(cfg, m.xdsServer.Nodes()) },
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
