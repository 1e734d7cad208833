package webview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Target is one admin endpoint the collector reads: a sidecar's
// (/stats/prometheus on its admin port) or the gateway's.
type Target struct {
	// Kind is KindSidecar or KindGateway.
	Kind string `json:"kind"`
	// Node is the xDS node id, or the address for a configured target.
	Node string `json:"node"`
	// Address is host:port of the admin endpoint.
	Address string `json:"address"`
}

// Target kinds.
const (
	KindSidecar = "sidecar"
	KindGateway = "gateway"
)

// CollectorConfig configures a Collector.
type CollectorConfig struct {
	// Targets lists the endpoints to read; called once per tick from the
	// collector's goroutine. Required.
	Targets func() []Target
	// Client reads the pages. Default: a client with a 1s timeout that
	// uses no proxy.
	Client *http.Client
	// Interval is the time between ticks. Default 1s.
	Interval time.Duration
	// Window is the span rates are computed over. Default 10s; at least
	// two intervals.
	Window time.Duration
	// MaxTargets bounds the targets read per tick; more are dropped and
	// counted. Default 256.
	MaxTargets int
	// Parallel bounds the reads in flight. Default 8.
	Parallel int
	// MaxPageBytes bounds one page. Default 4 MiB.
	MaxPageBytes int64
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives the collector's logs. Default: discard.
	Logger *slog.Logger
	// Registerer registers the collector's metrics. Default: none.
	Registerer prometheus.Registerer
}

func (c CollectorConfig) withDefaults() (CollectorConfig, error) {
	if c.Targets == nil {
		return c, errors.New("collector: Targets is required")
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Interval < 0 {
		return c, fmt.Errorf("collector: interval %v is negative", c.Interval)
	}
	if c.Window == 0 {
		c.Window = 10 * time.Second
	}
	if c.Window < 2*c.Interval {
		return c, fmt.Errorf("collector: window %v is shorter than two intervals (%v)", c.Window, c.Interval)
	}
	if c.MaxTargets == 0 {
		c.MaxTargets = 256
	}
	if c.Parallel == 0 {
		c.Parallel = 8
	}
	if c.MaxTargets < 0 || c.Parallel < 0 {
		return c, errors.New("collector: MaxTargets and Parallel must not be negative")
	}
	if c.MaxPageBytes == 0 {
		c.MaxPageBytes = 4 << 20
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second}}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Collector reads the request counters of the cluster's sidecars and the
// gateway once per interval and keeps their rates over a window: the
// live edges of the web view. Run owns the reads; Snapshot may be called
// from any goroutine.
type Collector struct {
	cfg     CollectorConfig
	scrapes *prometheus.CounterVec
	dropped prometheus.Counter

	win *window // used by Tick's caller only

	mu   sync.Mutex // guards the following
	snap Traffic
}

// Scrape results, the values of the result label.
const (
	resultOK       = "ok"
	resultError    = "error"
	resultTooLarge = "too_large"
	resultBadPage  = "bad_page"
)

// NewCollector validates cfg and returns a Collector that is not yet
// running.
func NewCollector(cfg CollectorConfig) (*Collector, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Collector{
		cfg: cfg,
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_controlplane_webview_scrapes_total",
			Help: "Reads of sidecar and gateway metrics for the web view, by result (ok, error, too_large, bad_page).",
		}, []string{"result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_controlplane_webview_targets_dropped_total",
			Help: "Targets not read in a tick because the tick had read its maximum.",
		}),
		win: newWindow(cfg.Window),
	}
	if cfg.Registerer != nil {
		for _, m := range []prometheus.Collector{c.scrapes, c.dropped} {
			if err := cfg.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("collector: register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Run ticks every interval until ctx is done.
func (c *Collector) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		c.Tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick reads every target once (at most MaxTargets, Parallel at a time,
// each bounded by the client's timeout) and updates the snapshot. Run
// calls it; tests call it directly. Not safe for concurrent use.
func (c *Collector) Tick(ctx context.Context) {
	targets := c.cfg.Targets()
	sort.Slice(targets, func(i, j int) bool { return targets[i].Address < targets[j].Address })
	if len(targets) > c.cfg.MaxTargets {
		c.dropped.Add(float64(len(targets) - c.cfg.MaxTargets))
		targets = targets[:c.cfg.MaxTargets]
	}
	states := make([]TargetState, len(targets))
	pages := make([]*page, len(targets))
	sem := make(chan struct{}, c.cfg.Parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p, result, err := c.read(ctx, t.Address)
			c.scrapes.WithLabelValues(result).Inc()
			states[i] = TargetState{Target: t, Up: err == nil}
			if err != nil {
				states[i].Error = err.Error()
				c.cfg.Logger.Debug("web view scrape failed", "target", t.Address, "node", t.Node, "err", err)
				return
			}
			pages[i] = p
		}()
	}
	wg.Wait()
	now := c.cfg.Now()
	byAddr := map[string]*page{}
	gw := GatewayTraffic{}
	for i, p := range pages {
		if p == nil {
			continue
		}
		byAddr[targets[i].Address] = p
		if targets[i].Kind == KindGateway {
			gw.Scraped = true
			gw.Active += p.gatewayOpen
		}
	}
	c.win.add(now, byAddr)
	edges, connRate, secs := c.win.rates()
	gw.ConnectionRate = connRate
	for _, s := range states {
		if s.Kind == KindGateway {
			gw.Targets++
			if s.Up {
				gw.Up++
			}
		}
	}
	snap := Traffic{At: now, WindowSeconds: secs, Edges: edges, Targets: states, Gateway: gw}
	c.mu.Lock()
	c.snap = snap
	c.mu.Unlock()
}

// read gets and parses one page.
func (c *Collector) read(ctx context.Context, addr string) (*page, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/stats/prometheus", nil)
	if err != nil {
		return nil, resultError, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return nil, resultError, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resultError, fmt.Errorf("%s answered %s", addr, resp.Status)
	}
	body := io.LimitReader(resp.Body, c.cfg.MaxPageBytes+1)
	lr := &countingReader{r: body}
	p, err := parsePage(lr)
	if lr.n > c.cfg.MaxPageBytes {
		return nil, resultTooLarge, fmt.Errorf("%s: page larger than %d bytes", addr, c.cfg.MaxPageBytes)
	}
	if err != nil {
		return nil, resultBadPage, fmt.Errorf("%s: %w", addr, err)
	}
	return p, resultOK, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Traffic is the collector's last tick: the rates of every edge its
// targets reported, and the state of each target.
type Traffic struct {
	At            time.Time
	WindowSeconds float64
	Edges         map[EdgeKey]EdgeRate
	Targets       []TargetState
	Gateway       GatewayTraffic
}

// TargetState is one target as the last tick found it.
type TargetState struct {
	Target
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"`
}

// GatewayTraffic sums the local gateway targets.
type GatewayTraffic struct {
	// Targets and Up count the gateway targets and those that answered.
	Targets, Up int
	// Scraped is true when a gateway page was read this tick.
	Scraped bool
	// Active is the connections open now; ConnectionRate those routed
	// per second over the window.
	Active, ConnectionRate float64
}

// Snapshot returns the last tick's traffic.
func (c *Collector) Snapshot() Traffic {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}
