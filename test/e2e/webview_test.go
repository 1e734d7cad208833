package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// chromiumPath finds Debian's chromium. Without it the test skips,
// unless CI is set: there, `make test` installs it and its absence is a
// failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: `make test` installs it (scripts/test-deps.sh); CI is set, so the browser test may not skip")
	}
	t.Skip("chromium is not installed (apt-get install chromium, or `make test-deps` as root); skipping the browser test of the web view")
	return ""
}

// browser is a headless chromium driven over the DevTools protocol that
// records every console error, uncaught exception and error entry of the
// browser log (a failed load) of the page.
type browser struct {
	ctx context.Context

	mu     sync.Mutex // guards errors
	errors []string
}

func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1400, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{ctx: ctx}
	// The first Run starts the browser, on a context without a timeout.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for msg, err := range messages {
			if err != nil {
				return
			}
			if msg.Type == chromedp.ConsoleError || msg.IsException() {
				b.record(fmt.Sprintf("%s (%s %s:%d)", msg, msg.Source, msg.URL, msg.Line))
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		wg.Wait()
	})
	return b
}

func (b *browser) record(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, s)
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errors)
}

// pictureState is what the page draws, read from its SVG.
type pictureState struct {
	Ready    bool `json:"ready"`
	Clusters []struct {
		Name   string `json:"name"`
		State  string `json:"state"`
		Fenced string `json:"fenced"`
	} `json:"clusters"`
	Gateways []string `json:"gateways"`
	Edges    []string `json:"edges"`
	Failover string   `json:"failover"`
	Problem  string   `json:"problem"`
	Explain  int      `json:"explain"`
}

const readPicture = `JSON.stringify({
  ready: document.body.dataset.ready === "true",
  clusters: Array.from(document.querySelectorAll("g[data-cluster]")).map(e => ({name: e.dataset.cluster, state: e.dataset.state, fenced: e.dataset.fenced})),
  gateways: Array.from(document.querySelectorAll("g[data-gateway]")).map(e => e.dataset.gateway),
  edges: Array.from(document.querySelectorAll("g[data-edge]")).map(e => e.dataset.edge),
  failover: document.getElementById("failover").dataset.state || "",
  problem: document.getElementById("problem").hidden ? "" : document.getElementById("problem").textContent,
  explain: document.querySelectorAll("#endpoints tbody tr").length,
})`

func (b *browser) picture() (pictureState, error) {
	var p pictureState
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](readPicture))
	if err != nil {
		return p, err
	}
	err = json.Unmarshal([]byte(raw), &p)
	return p, err
}

// waitPicture polls the page until check accepts what it draws.
func (b *browser) waitPicture(t *testing.T, what string, timeout time.Duration, check func(pictureState) error) pictureState {
	t.Helper()
	var last pictureState
	poll.Until(t, timeout, what, func() error {
		p, err := b.picture()
		if err != nil {
			return err
		}
		last = p
		if p.Problem != "" {
			return fmt.Errorf("the page reports: %s", p.Problem)
		}
		return check(p)
	})
	return last
}

func hasEdge(want string) func(pictureState) error {
	return func(p pictureState) error {
		if !slices.Contains(p.Edges, want) {
			return fmt.Errorf("edges %v, want %s among them", p.Edges, want)
		}
		return nil
	}
}

var dashboardURL = regexp.MustCompile(`dashboard of \S+: (http://127\.0\.0\.1:\d+/\S+)`)

// startDashboard runs `fedmesh dashboard` against east-1's control plane
// and returns the URL it prints.
func (m *mesh) startDashboard() string {
	m.t.Helper()
	east1 := m.clusters[0]
	m.start(east1, "dashboard", "dashboard", "--admin", east1.Admin(), "--operator-dir", m.path("operator"), "--listen", "127.0.0.1:0")
	var url string
	poll.Until(m.t, 30*time.Second, "fedmesh dashboard prints its URL", func() error {
		if p := m.proc("dashboard"); p.exited() {
			m.t.Fatalf("fedmesh dashboard exited: %v", p.err)
		}
		b, err := os.ReadFile(filepath.Join(m.e.logDir, "dashboard.log"))
		if err != nil {
			return err
		}
		mm := dashboardURL.FindSubmatch(b)
		if mm == nil {
			return errors.New("no URL printed yet")
		}
		url = string(mm[1])
		return nil
	})
	return url
}

// TestWebViewShowsClustersTrafficAndFencing opens the web view of the
// demo's federation through `fedmesh dashboard` in headless chromium,
// and follows it while traffic fails over from east-1 to east-2 and
// then to west-1, and while west-1's control plane is killed.
func TestWebViewShowsClustersTrafficAndFencing(t *testing.T) {
	exe := chromiumPath(t)
	m := startMesh(t, meshSpec{})
	east1, east2, west1 := m.cluster("east-1"), m.cluster("east-2"), m.cluster("west-1")
	url := m.startDashboard()
	t.Logf("web view at %s", url)
	load := m.startLoad(20, 4*time.Minute)

	b := newBrowser(t, exe)
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`)))
	cancel()
	if err != nil {
		t.Fatalf("open %s: %v (console: %v)", url, err, b.consoleErrors())
	}
	artifacts := os.Getenv("FEDMESH_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.ArtifactDir()
	}
	screenshot := func(name string) {
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot: %v", err)
			return
		}
		path := filepath.Join(artifacts, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Errorf("screenshot: %v", err)
			return
		}
		t.Logf("screenshot: %s", path)
	}

	p := b.waitPicture(t, "the three clusters, their gateways and east-1's local traffic", 60*time.Second, func(p pictureState) error {
		var names []string
		for _, c := range p.Clusters {
			if c.State != "alive" {
				return fmt.Errorf("cluster %s drawn %s, want alive", c.Name, c.State)
			}
			names = append(names, c.Name)
		}
		slices.Sort(names)
		if want := []string{"east-1", "east-2", "west-1"}; !slices.Equal(names, want) {
			return fmt.Errorf("clusters %v, want %v", names, want)
		}
		if len(p.Gateways) != 3 {
			return fmt.Errorf("gateways %v, want one per cluster", p.Gateways)
		}
		if p.Failover != "local" {
			return fmt.Errorf("failover state %q, want local", p.Failover)
		}
		if p.Explain == 0 {
			return errors.New("no endpoint explained yet")
		}
		return hasEdge("east-1>east-1")(p)
	})
	t.Logf("picture: %+v", p)

	since := time.Now()
	m.killEcho(east1)
	load.waitServedBy(t, east2.Name, since, 60*time.Second)
	b.waitPicture(t, "an edge east-1 -> east-2 and east-1 failed over", 60*time.Second, func(p pictureState) error {
		if p.Failover != "failed-over" {
			return fmt.Errorf("failover state %q, want failed-over", p.Failover)
		}
		return hasEdge("east-1>east-2")(p)
	})

	since = time.Now()
	m.killEcho(east2)
	load.waitServedBy(t, west1.Name, since, 60*time.Second)
	b.waitPicture(t, "an edge east-1 -> west-1", 60*time.Second, hasEdge("east-1>west-1"))
	screenshot("webview-failover.png")

	// Control plane and gateway: a control plane alone is not fenced
	// while its gateway serves.
	m.kill(cpName(west1))
	m.kill(gatewayName(west1))
	b.waitPicture(t, "west-1 drawn fenced", 60*time.Second, func(p pictureState) error {
		for _, c := range p.Clusters {
			if c.Name == west1.Name {
				if c.Fenced != "true" || c.State != "fenced" {
					return fmt.Errorf("west-1 drawn %s (fenced=%s)", c.State, c.Fenced)
				}
				return nil
			}
		}
		return errors.New("west-1 not drawn")
	})
	screenshot("webview-fenced.png")
	load.stop()

	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the page logged %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}
