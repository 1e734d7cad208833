package controlplane

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
// only those in the allowed networks.
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
	var got []string
	for _, tg := range scrapeTargets(cfg, nodes) {
		got = append(got, tg.Kind+" "+tg.Address)
	}
	want := "sidecar 127.0.1.100:15000,gateway 127.0.0.11:15021,sidecar 127.0.0.9:9000"
	if strings.Join(got, ",") != want {
		t.Errorf("targets = %v, want %s", got, want)
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
