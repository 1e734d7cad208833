package controlplane

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/fedmesh/fedmesh/controlplane/webview"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// TestWebViewGraph runs a real control plane whose web view reads a
// sidecar admin page (a real registry with the sidecar's request series)
// and checks /debug/graph through `fedmesh dashboard`'s proxy, which
// holds the operator certificate, and what the proxy refuses.
func TestWebViewGraph(t *testing.T) {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fedmesh_sidecar_requests_total"},
		[]string{"direction", "source_cluster", "destination_cluster", "service", "code"})
	reg.MustRegister(requests)
	sidecar := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer sidecar.Close()
	sidecarAddr := strings.TrimPrefix(sidecar.URL, "http://")

	m := startMember(t, memberOptions{
		files: map[string]string{"echo.yaml": echoYAML},
		config: func(c *Config) {
			c.Mesh.WebView = WebViewConfig{Interval: 50 * time.Millisecond, Targets: []string{sidecarAddr}}
		},
	})
	poll.Until(t, 30*time.Second, "admin listening", func() error {
		if m.srv.AdminURL() == "" {
			return errAdminNotListening
		}
		return nil
	})
	admin, err := url.Parse(m.srv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	p, err := webview.NewProxy(webview.ProxyConfig{Admin: admin, TLS: m.operator.TLS, Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	dash := httptest.NewServer(p)
	defer dash.Close()
	base := dash.URL + "/s3cret"

	// Traffic keeps flowing while the test polls, as a client would send
	// it: the collector's rates need counts that change between ticks.
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for range 3000 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			requests.WithLabelValues("outbound", "east-1", "west-1", "demo/echo:8080", "2xx").Inc()
			requests.WithLabelValues("inbound", "west-1", "east-1", "demo/echo:8080", "2xx").Inc()
		}
	}()
	defer func() { close(stop); <-sent }()

	var g webview.Graph
	poll.Until(t, 30*time.Second, "the graph shows east-1 and traffic to west-1", func() error {
		var c http.Client
		resp, err := c.Get(base + webview.GraphPath)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		g = webview.Graph{}
		if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
			return err
		}
		if len(g.Clusters) != 1 || g.Clusters[0].Name != "east-1" || !g.Clusters[0].Local {
			return fmt.Errorf("clusters %+v, want east-1 alone", g.Clusters)
		}
		if len(g.Edges) != 1 || g.Edges[0].From != "east-1" || g.Edges[0].To != "west-1" || g.Edges[0].RequestRate <= 0 {
			return fmt.Errorf("edges %+v, want east-1>west-1 with a rate", g.Edges)
		}
		return nil
	})
	if f := g.Clusters[0].Failover; f == nil || f.State != webview.FailoverActive || f.LocalShare != 0 {
		t.Errorf("east-1 failover = %+v, want failed-over with nothing served locally", f)
	}
	if len(g.Services) != 1 || g.Services[0].Name != "demo/echo" {
		t.Errorf("services = %+v, want demo/echo", g.Services)
	}
	if len(g.Targets) != 1 || !g.Targets[0].Up || g.Targets[0].Address != sidecarAddr {
		t.Errorf("targets = %+v, want the sidecar, up", g.Targets)
	}

	page := webGet(t, "", base+webview.UIPath, nil)
	if page.code != http.StatusOK || !strings.Contains(page.body, "<svg id=\"graph\"") {
		t.Errorf("the page: %d %.80q", page.code, page.body)
	}
	for _, asset := range []string{"app.js", "style.css"} {
		if r := webGet(t, "", base+webview.UIPath+asset, nil); r.code != http.StatusOK {
			t.Errorf("%s: %d", asset, r.code)
		}
	}

	refused := []struct {
		name   string
		method string
		url    string
		header http.Header
		want   int
	}{
		{name: "without the token", url: dash.URL + webview.GraphPath, want: http.StatusNotFound},
		{name: "a wrong token", url: dash.URL + "/guess" + webview.GraphPath, want: http.StatusNotFound},
		{name: "a page the view does not read", url: base + "/federation/v1/status", want: http.StatusNotFound},
		{name: "a state change", method: http.MethodPost, url: base + webview.GraphPath, want: http.StatusMethodNotAllowed},
		{name: "a rebound DNS name", url: base + webview.GraphPath, header: http.Header{"Host": {"evil.example:80"}}, want: http.StatusForbidden},
		{name: "another origin", url: base + webview.GraphPath, header: http.Header{"Origin": {"http://evil.example"}}, want: http.StatusForbidden},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r := webGet(t, tt.method, tt.url, tt.header)
			if r.code != tt.want {
				t.Errorf("%s %s: %d %q, want %d", tt.method, tt.url, r.code, r.body, tt.want)
			}
		})
	}
}

// TestScrapeTargets reads the admin addresses from node ids and keeps
// only those in the allowed networks (local mode).
func TestScrapeTargets(t *testing.T) {
	cfg := WebViewConfig{Targets: []string{"127.0.0.9:9000"}}
	if err := cfg.withDefaults(); err != nil {
		t.Fatal(err)
	}
	nodes := []xds.Node{
		{ID: "sidecar~127.0.1.100~client.demo", Role: "sidecar"},
		{ID: "gateway~127.0.0.11:15443~east-1", Role: "gateway"},
		{ID: "sidecar~10.0.0.5~pod.demo", Role: "sidecar"},      // not loopback
		{ID: "sidecar~169.254.169.254~x.demo", Role: "sidecar"}, // a metadata service
		{ID: "proxyless~client.demo", Role: "proxyless"},
		{ID: "sidecar-without-address", Role: "sidecar"},
	}
	connected := make([]xds.ConnectedNode, len(nodes))
	for i, n := range nodes {
		connected[i] = xds.ConnectedNode{Node: n}
	}
	// A proven pod changes nothing in local mode: the node id's address
	// is read, on the admin port.
	connected[0].Identity = xds.Identity{Namespace: "demo", ServiceAccount: "default", Workload: "client"}
	var got []string
	targets, unread := scrapeTargets(cfg, connected)
	for _, tg := range targets {
		got = append(got, tg.Kind+" "+tg.Address)
	}
	want := "sidecar 127.0.1.100:15000,gateway 127.0.0.11:15021,sidecar 127.0.0.9:9000"
	if strings.Join(got, ",") != want {
		t.Errorf("targets = %v, want %s", got, want)
	}
	if want := map[string]int{unreadOutsideNetworks: 2, unreadNoAddress: 1}; fmt.Sprint(unread) != fmt.Sprint(want) {
		t.Errorf("unread = %v, want %v", unread, want)
	}
}

// TestScrapeTargetsKube reads, in Kubernetes mode, each node at the IP of
// the pod its credentials proved, on the sidecar's ready port or the
// gateway's admin port, and no node whose pod is not known for sure.
func TestScrapeTargetsKube(t *testing.T) {
	type pod struct {
		ip netip.Addr
		sa string
	}
	pods := map[string]pod{
		"demo/client-1":                 {netip.MustParseAddr("10.1.0.5"), "client"},
		"demo/server-1":                 {netip.MustParseAddr("10.1.0.6"), "server"},
		"demo/other-sa":                 {netip.MustParseAddr("10.1.0.7"), "someone-else"},
		"demo/mapped":                   {netip.MustParseAddr("::ffff:10.1.0.8"), "client"},
		"fedmesh-system/fedmesh-gw-abc": {netip.MustParseAddr("10.1.0.9"), "fedmesh-gateway"},
	}
	lookup := func(ns, name string) (netip.Addr, string, bool) {
		p, ok := pods[ns+"/"+name]
		return p.ip, p.sa, ok
	}
	sidecar := func(id, pod, provenPod, sa string) xds.ConnectedNode {
		return xds.ConnectedNode{
			Node:     xds.Node{ID: id, Role: "sidecar", Namespace: "demo", ServiceAccount: sa, Workload: pod},
			Identity: xds.Identity{Namespace: "demo", ServiceAccount: sa, Workload: provenPod},
		}
	}
	tests := []struct {
		name string
		cfg  WebViewConfig
		node xds.ConnectedNode
		want string // "" for not read
		why  string // the unread reason when not read
	}{
		{name: "known pod", node: sidecar("sidecar~127.0.0.1~client-1.demo", "client-1", "client-1", "client"), want: "sidecar 10.1.0.5:15021"},
		{name: "another ready port", cfg: WebViewConfig{SidecarReadyPort: 16021},
			node: sidecar("sidecar~127.0.0.1~server-1.demo", "server-1", "server-1", "server"), want: "sidecar 10.1.0.6:16021"},
		{name: "a mapped IPv4 pod IP", node: sidecar("x", "mapped", "mapped", "client"), want: "sidecar 10.1.0.8:15021"},
		{name: "node id claiming another address", node: sidecar("sidecar~169.254.169.254~client-1.demo", "client-1", "client-1", "client"),
			want: "sidecar 10.1.0.5:15021"},
		{name: "gateway", node: xds.ConnectedNode{
			Node:     xds.Node{ID: "gateway~0.0.0.0:15443~east-1", Role: "gateway", Namespace: "fedmesh-system", ServiceAccount: "fedmesh-gateway", Workload: "fedmesh-gw-abc"},
			Identity: xds.Identity{Namespace: "fedmesh-system", ServiceAccount: "fedmesh-gateway", Workload: "fedmesh-gw-abc"},
		}, want: "gateway 10.1.0.9:15021"},
		{name: "unknown pod", node: sidecar("sidecar~10.1.0.99~gone.demo", "gone", "gone", "client"), why: unreadPodUnknown},
		{name: "pod without IP", cfg: WebViewConfig{Pods: func(string, string) (netip.Addr, string, bool) { return netip.Addr{}, "client", true }},
			node: sidecar("sidecar~127.0.0.1~client-1.demo", "client-1", "client-1", "client"), why: unreadPodUnknown},
		{name: "token bound to no pod", node: sidecar("sidecar~10.1.0.5~client-1.demo", "client-1", "", "client"), why: unreadNoPod},
		{name: "claim differs from the proven pod", node: sidecar("sidecar~10.1.0.6~server-1.demo", "server-1", "client-1", "client"), why: unreadNoPod},
		{name: "pod of another ServiceAccount", node: sidecar("sidecar~127.0.0.1~other-sa.demo", "other-sa", "other-sa", "client"), why: unreadServiceAccount},
		{name: "outside configured networks", cfg: WebViewConfig{Networks: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}},
			node: sidecar("sidecar~127.0.0.1~client-1.demo", "client-1", "client-1", "client"), why: unreadOutsideNetworks},
		{name: "proxyless", node: xds.ConnectedNode{
			Node:     xds.Node{ID: "proxyless~client-1.demo", Role: "proxyless", Namespace: "demo", ServiceAccount: "client", Workload: "client-1"},
			Identity: xds.Identity{Namespace: "demo", ServiceAccount: "client", Workload: "client-1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.Pods == nil {
				cfg.Pods = lookup
			}
			if err := cfg.withDefaults(); err != nil {
				t.Fatal(err)
			}
			var got []string
			targets, unread := scrapeTargets(cfg, []xds.ConnectedNode{tt.node})
			for _, tg := range targets {
				got = append(got, tg.Kind+" "+tg.Address)
				if tg.Node != tt.node.ID {
					t.Errorf("target %+v names node %q, want %q", tg, tg.Node, tt.node.ID)
				}
			}
			if strings.Join(got, ",") != tt.want {
				t.Errorf("targets = %q, want %q", got, tt.want)
			}
			wantUnread := map[string]int{}
			if tt.why != "" {
				wantUnread[tt.why] = 1
			}
			if fmt.Sprint(unread) != fmt.Sprint(wantUnread) {
				t.Errorf("unread = %v, want %v", unread, wantUnread)
			}
		})
	}
}

// TestWebViewTargetsUnread counts the nodes left out at each read, by
// reason, and forgets those that have gone.
func TestWebViewTargetsUnread(t *testing.T) {
	cfg := WebViewConfig{}
	if err := cfg.withDefaults(); err != nil {
		t.Fatal(err)
	}
	nodes := []xds.ConnectedNode{
		{Node: xds.Node{ID: "sidecar~10.0.0.5~a.demo", Role: "sidecar"}},
		{Node: xds.Node{ID: "sidecar~10.0.0.6~b.demo", Role: "sidecar"}},
		{Node: xds.Node{ID: "sidecar~127.0.1.1~c.demo", Role: "sidecar"}},
	}
	reg := prometheus.NewRegistry()
	w, err := newWebViewTargets(cfg, func() []xds.ConnectedNode { return nodes }, reg)
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(reason string) float64 {
		var m dto.Metric
		if err := w.unread.WithLabelValues(reason).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	if got := w.targets(); len(got) != 1 || gauge(unreadOutsideNetworks) != 2 || gauge(unreadNoPod) != 0 {
		t.Errorf("targets %+v, outside_networks %v, want one target and 2", got, gauge(unreadOutsideNetworks))
	}
	nodes = nodes[2:]
	if w.targets(); gauge(unreadOutsideNetworks) != 0 {
		t.Errorf("outside_networks = %v after the nodes went, want 0", gauge(unreadOutsideNetworks))
	}
	if _, err := newWebViewTargets(cfg, nil, reg); err == nil {
		t.Error("a second registration succeeded")
	}
}

// TestWebViewConfigModes checks the defaults of each mode and that bad
// ports are refused.
func TestWebViewConfigModes(t *testing.T) {
	local := WebViewConfig{}
	if err := local.withDefaults(); err != nil {
		t.Fatal(err)
	}
	if len(local.Networks) != 2 || local.SidecarAdminPort != 15000 || local.GatewayAdminPort != 15021 {
		t.Errorf("local defaults = %+v, want loopback networks and ports 15000, 15021", local)
	}
	kube := WebViewConfig{Pods: func(string, string) (netip.Addr, string, bool) { return netip.Addr{}, "", false }}
	if err := kube.withDefaults(); err != nil {
		t.Fatal(err)
	}
	if len(kube.Networks) != 0 || kube.SidecarReadyPort != 15021 || kube.GatewayAdminPort != 15021 {
		t.Errorf("Kubernetes defaults = %+v, want no networks and ports 15021", kube)
	}
	for _, bad := range []WebViewConfig{{SidecarReadyPort: 70000}, {SidecarAdminPort: -1}, {GatewayAdminPort: 65536}} {
		if err := bad.withDefaults(); err == nil || !strings.Contains(err.Error(), "want 1-65535") {
			t.Errorf("withDefaults(%+v) = %v, want a port error", bad, err)
		}
	}
}

type webAnswer struct {
	code int
	body string
}

// webGet sends method (GET when empty) to url with header; a Host
// header sets the request's Host.
func webGet(t *testing.T, method, url string, header http.Header) webAnswer {
	t.Helper()
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v[0]
			continue
		}
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return webAnswer{resp.StatusCode, string(b)}
}
