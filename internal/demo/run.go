package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/federation/adminapi"
)

// Config configures a demo run.
type Config struct {
	// Binary is the fedmesh binary the clusters run.
	Binary string
	// Dir is the working directory (CA, data, logs); created if missing.
	Dir string
	// Clusters is how many local clusters to start (at least 3).
	Clusters int
	// Replicas of the echo service per cluster. Default 2.
	Replicas int
	// Rate is the client's requests per second. Default 50.
	Rate int
	// Keep leaves the clusters running after the scenario.
	Keep bool
	// Out receives progress and the live view.
	Out io.Writer
	// Phases overrides the scenario's timings (tests); nil for the
	// defaults.
	Timings *Timings
	// Inspect, when set, is called after a scenario that ran to its end,
	// while every process still runs, so that tests can read the
	// processes' admin endpoints. nil changes nothing.
	Inspect func(clusters []Cluster)
}

// Timings are the lengths of the scenario's phases.
type Timings struct {
	Steady, Failover, Failover2, Recover time.Duration
	// Settle is how long after an action traffic may still move.
	Settle, RecoverSettle time.Duration
	// BaseEjection is the sidecars' first outlier ejection time.
	BaseEjection time.Duration
}

// DefaultTimings keep the whole demo well under 90 seconds.
var DefaultTimings = Timings{
	Steady: 6 * time.Second, Failover: 8 * time.Second, Failover2: 8 * time.Second, Recover: 14 * time.Second,
	Settle: 3 * time.Second, RecoverSettle: 10 * time.Second, BaseEjection: 2 * time.Second,
}

// Summary is the outcome of a demo run.
type Summary struct {
	OK       bool      `json:"ok"`
	Reason   string    `json:"reason,omitempty"`
	Clusters []Cluster `json:"clusters"`
	Phases   []Result  `json:"phases"`
	// StartupSeconds is how long the clusters took to federate and serve.
	StartupSeconds float64 `json:"startupSeconds"`
	TotalSeconds   float64 `json:"totalSeconds"`
	// Dir holds the CA, the data and every process's log.
	Dir string `json:"dir"`
	// OperatorDir holds the operator certificate (from the root, so
	// every cluster accepts it) that the fedmesh CLI's admin commands
	// take with --operator-dir.
	OperatorDir string `json:"operatorDir"`
	// Running lists the processes left running (--keep).
	Running []string `json:"running,omitempty"`
}

// Run runs the scenario: start and federate the clusters, send steady
// traffic from east-1's client through its sidecar, kill east-1's echo,
// then east-2's, then restore both, and judge each phase.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 2
	}
	if cfg.Rate == 0 {
		cfg.Rate = 50
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	tm := DefaultTimings
	if cfg.Timings != nil {
		tm = *cfg.Timings
	}
	clusters, err := Layout(cfg.Clusters)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	logDir := filepath.Join(cfg.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	d := &demo{cfg: cfg, tm: tm, clusters: clusters, procs: &Procs{Binary: cfg.Binary, LogDir: logDir, Detach: cfg.Keep}}
	sum := &Summary{Clusters: clusters, Dir: cfg.Dir, OperatorDir: d.dir("operator")}
	defer func() {
		if cfg.Keep {
			sum.Running = d.procs.Running()
			return
		}
		d.procs.StopAll(10 * time.Second)
	}()

	if err := d.setUp(ctx); err != nil {
		sum.Reason = err.Error()
		return sum, err
	}
	sum.StartupSeconds = time.Since(start).Seconds()
	d.progress("clusters federated and serving in %.1fs", sum.StartupSeconds)

	results, err := d.scenario(ctx)
	if err == nil && cfg.Inspect != nil {
		cfg.Inspect(clusters)
	}
	sum.Phases = results
	sum.TotalSeconds = time.Since(start).Seconds()
	if err != nil {
		sum.Reason = err.Error()
		return sum, err
	}
	sum.OK = true
	var why []string
	for _, r := range results {
		if !r.OK {
			sum.OK = false
			why = append(why, r.Phase.Name+": "+r.Reason)
		}
	}
	sum.Reason = strings.Join(why, "; ")
	return sum, nil
}

type demo struct {
	cfg      Config
	tm       Timings
	clusters []Cluster
	procs    *Procs
	started  time.Time
	// admin calls the control planes' admin endpoints with the demo's
	// operator certificate; set by setUp.
	admin *http.Client
}

func (d *demo) progress(format string, args ...any) {
	fmt.Fprintf(d.cfg.Out, "==> "+format+"\n", args...)
}

// fedmesh runs a short fedmesh command and returns its standard output.
func (d *demo) fedmesh(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cfg.Binary, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("fedmesh %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (d *demo) dir(parts ...string) string {
	return filepath.Join(append([]string{d.cfg.Dir}, parts...)...)
}

// setUp creates the CA, starts and joins the control planes, and starts
// the gateways, the echo replicas and the client's sidecar.
func (d *demo) setUp(ctx context.Context) error {
	d.progress("creating the federation root CA and %d cluster CAs in %s", len(d.clusters), d.cfg.Dir)
	if _, err := d.fedmesh(ctx, "ca", "init", "--trust-domain", TrustDomain, "--dir", d.dir("root")); err != nil {
		return err
	}
	for _, c := range d.clusters {
		if _, err := d.fedmesh(ctx, "ca", "issue-cluster", "--root-dir", d.dir("root"), "--cluster", c.Name, "--dir", d.dir(c.Name, "ca")); err != nil {
			return err
		}
	}
	// One operator certificate from the root: every cluster's admin API
	// accepts it, for the demo's own calls and for whoever runs the CLI
	// against a --keep demo.
	if _, err := d.fedmesh(ctx, "ca", "issue-operator", "--root-dir", d.dir("root"), "--name", "demo", "--out", d.dir("operator")); err != nil {
		return err
	}
	files := adminapi.OperatorFiles{
		CertFile:   d.dir("operator", ca.OperatorCertFile),
		KeyFile:    d.dir("operator", ca.OperatorKeyFile),
		BundleFile: d.dir("operator", ca.OperatorBundleFile),
	}
	tlsCfg, err := files.ClientTLS(time.Time{})
	if err != nil {
		return err
	}
	d.admin = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}}

	d.progress("starting %d control planes (embedded etcd, serf gossip, xDS)", len(d.clusters))
	for _, c := range d.clusters {
		src, err := WriteSource(d.cfg.Dir, c, d.cfg.Replicas)
		if err != nil {
			return err
		}
		if _, err := d.procs.Start("controlplane-"+c.Name, "controlplane",
			"--cluster", c.Name, "--region", c.Region, "--zone", c.Zone,
			"--bind-address", c.IP, "--data-dir", d.dir(c.Name, "data"), "--source", "file:"+src,
			"--cluster-cidrs", c.CIDR(),
			"--ca-dir", d.dir(c.Name, "ca"), "--gossip-profile", "local", "--fence-period", "5s",
			"--base-ejection-time", d.tm.BaseEjection.String()); err != nil {
			return err
		}
	}
	for _, c := range d.clusters {
		if err := d.waitHTTP(ctx, "control plane "+c.Name, c.Admin()+"/readyz", 60*time.Second); err != nil {
			return err
		}
	}

	first := d.clusters[0]
	d.progress("joining every cluster with one token from %s ('fedmesh token create', 'fedmesh join')", first.Name)
	tok, err := d.fedmesh(ctx, "token", "create", "--ttl", "10m", "--admin", first.Admin(), "--operator-dir", d.dir("operator"))
	if err != nil {
		return err
	}
	tokFile := d.dir("join.token")
	if err := os.WriteFile(tokFile, []byte(strings.TrimSpace(tok)), 0o600); err != nil {
		return err
	}
	for _, c := range d.clusters[1:] {
		if _, err := d.fedmesh(ctx, "join", "--token-file", tokFile, "--admin", c.Admin(), "--operator-dir", d.dir("operator")); err != nil {
			return err
		}
	}
	if err := d.waitFederated(ctx, 60*time.Second); err != nil {
		return err
	}

	d.progress("starting gateways, %d echo replicas per cluster with sidecars, and the client's sidecar in %s", d.cfg.Replicas, first.Name)
	for _, c := range d.clusters {
		if err := d.startGateway(ctx, c); err != nil {
			return err
		}
		for r := 1; r <= d.cfg.Replicas; r++ {
			if err := d.startEcho(ctx, c, r); err != nil {
				return err
			}
		}
	}
	if err := d.startSidecar(ctx, first, "client", "client", first.ClientIP()); err != nil {
		return err
	}
	for _, c := range d.clusters {
		if err := d.waitHTTP(ctx, "gateway "+c.Name, "http://"+c.IP+":15021/ready", 60*time.Second); err != nil {
			return err
		}
	}
	return d.waitServed(ctx, first.Name, 60*time.Second)
}

func (d *demo) token(ctx context.Context, c Cluster, ns, sa, workload string) (string, error) {
	dir := d.dir(c.Name, "workloads", workload)
	if _, err := d.fedmesh(ctx, "ca", "bootstrap-token", "--ca-dir", d.dir(c.Name, "ca"), "--namespace", ns,
		"--service-account", sa, "--workload", workload, "--out", dir); err != nil {
		return "", err
	}
	bundle, err := os.ReadFile(d.dir(c.Name, "ca", "bundle.crt"))
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "bundle.crt"), bundle, 0o644)
}

func (d *demo) startGateway(ctx context.Context, c Cluster) error {
	dir, err := d.token(ctx, c, "fedmesh-system", "gateway", "gateway")
	if err != nil {
		return err
	}
	_, err = d.procs.Start("gateway-"+c.Name, "gateway", "--cluster", c.Name, "--region", c.Region, "--zone", c.Zone,
		"--listen", c.IP+":15443", "--admin", c.IP+":15021", "--xds-address", c.IP+":15010",
		"--trust-domain", TrustDomain, "--root-bundle", filepath.Join(dir, "bundle.crt"), "--token-file", filepath.Join(dir, "token"),
		"--service-account", "gateway")
	return err
}

func echoName(c Cluster, r int) string { return fmt.Sprintf("%s-echo-%d", c.Name, r) }

func (d *demo) startEcho(ctx context.Context, c Cluster, r int) error {
	w := fmt.Sprintf("echo-%d", r)
	if _, err := d.procs.Start(echoName(c, r)+"-app", "echo", "--listen", c.WorkloadIP(r)+":8080", "--cluster", c.Name, "--workload", w); err != nil {
		return err
	}
	// The echo app listens on WORKLOAD_IP:8080, where the sidecar would
	// also open its listener for the echo service's port 8080: whichever
	// started first would win, and a sidecar that won would send its own
	// inbound traffic out again. The echo's sidecar needs no service
	// listeners.
	return d.startSidecar(ctx, c, w, "echo", c.WorkloadIP(r), "--service-ip", "none", "--audit-log", d.auditLog(c, r))
}

func (d *demo) startSidecar(ctx context.Context, c Cluster, workload, sa, ip string, extra ...string) error {
	dir, err := d.token(ctx, c, "demo", sa, workload)
	if err != nil {
		return err
	}
	args := append([]string{"sidecar", "--cluster", c.Name,
		"--region", c.Region, "--zone", c.Zone, "--namespace", "demo", "--service-account", sa, "--workload", workload,
		"--address", ip, "--xds-address", c.IP + ":15010", "--trust-domain", TrustDomain, "--workload-dir", dir, "--dns", "none"}, extra...)
	_, err = d.procs.Start(fmt.Sprintf("%s-%s-sidecar", c.Name, workload), args...)
	return err
}

// waitHTTP polls url until it answers 200.
func (d *demo) waitHTTP(ctx context.Context, what, url string, timeout time.Duration) error {
	return poll(ctx, timeout, what, func() error {
		code, body, err := d.httpGet(url)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, strings.TrimSpace(body))
		}
		return nil
	})
}

// waitFederated waits until every control plane sees every cluster alive
// and every cluster's echo endpoints in its merged view.
func (d *demo) waitFederated(ctx context.Context, timeout time.Duration) error {
	want := len(d.clusters) * d.cfg.Replicas
	return poll(ctx, timeout, "federation", func() error {
		for _, c := range d.clusters {
			var v struct {
				Services []struct {
					Name      string            `json:"name"`
					Endpoints []json.RawMessage `json:"endpoints"`
				} `json:"services"`
			}
			if err := d.getJSON(c.Admin()+"/debug/view", &v); err != nil {
				return err
			}
			n := 0
			for _, s := range v.Services {
				if s.Name == "echo" {
					n = len(s.Endpoints)
				}
			}
			if n != want {
				return fmt.Errorf("%s sees %d of %d echo endpoints", c.Name, n, want)
			}
		}
		return nil
	})
}

// client returns an HTTP client that sends through the demo client's
// sidecar, as an app with HTTP_PROXY set would.
func (d *demo) client() *http.Client {
	proxy, _ := url.Parse("http://" + net.JoinHostPort(d.clusters[0].ClientIP(), "15001"))
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy:               http.ProxyURL(proxy),
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

const echoURL = "http://echo.demo.svc.clusterset.local:8080/"

// waitServed waits until a request through the client's sidecar is served
// by cluster.
func (d *demo) waitServed(ctx context.Context, cluster string, timeout time.Duration) error {
	l := &Load{URL: echoURL, Client: d.client()}
	return poll(ctx, timeout, "first request served by "+cluster, func() error {
		s := l.one(ctx)
		if s.Err != nil {
			return s.Err
		}
		if s.Cluster != cluster {
			return fmt.Errorf("served by %s", s.Cluster)
		}
		return nil
	})
}

// scenario runs the phases under steady load with a live view.
func (d *demo) scenario(ctx context.Context) ([]Result, error) {
	east1, east2, west1 := d.clusters[0], d.clusters[1], d.clusters[2]
	phases := []struct {
		Phase
		action func() error
	}{
		{Phase{Name: "steady", Expect: east1.Name, Forbid: []string{west1.Name}, Duration: d.tm.Steady, MinShare: 95}, nil},
		{Phase{Name: east1.Name + " echo killed", Expect: east2.Name, Forbid: []string{west1.Name}, Settle: d.tm.Settle, Duration: d.tm.Failover, MinShare: 95},
			func() error { return d.killEcho(east1) }},
		{Phase{Name: east2.Name + " echo killed too", Expect: west1.Name, Settle: d.tm.Settle, Duration: d.tm.Failover2, MinShare: 95},
			func() error { return d.killEcho(east2) }},
		{Phase{Name: "both restored", Expect: east1.Name, Settle: d.tm.RecoverSettle, Duration: d.tm.Recover, MinShare: 95},
			func() error {
				if err := d.restoreEcho(east1); err != nil {
					return err
				}
				return d.restoreEcho(east2)
			}},
	}
	var total time.Duration
	for _, p := range phases {
		total += p.Duration
	}
	// Each phase ends with a policy probe, which takes a moment.
	total += time.Duration(len(phases)) * 2 * time.Second
	load := &Load{URL: echoURL, Rate: d.cfg.Rate, MaxRequests: d.cfg.Rate * int(total/time.Second+5), Client: d.client()}
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		load.Run(lctx)
	}()
	defer wg.Wait()

	d.started = time.Now()
	fmt.Fprintf(d.cfg.Out, "\n%6s  %-24s %5s %5s  %-36s %8s\n", "TIME", "PHASE", "REQ", "ERR", "SERVED BY", "P99")
	var results []Result
	for _, p := range phases {
		if p.action != nil {
			if err := p.action(); err != nil {
				return results, err
			}
		}
		pstart := time.Now()
		end := pstart.Add(p.Duration)
		for next := pstart.Add(time.Second); ; next = next.Add(time.Second) {
			wait := time.Until(next)
			if next.After(end) {
				wait = time.Until(end)
			}
			select {
			case <-ctx.Done():
				return results, ctx.Err()
			case <-time.After(wait):
			}
			if !next.After(end) {
				w := aggregate(next.Add(-time.Second), load.Between(next.Add(-time.Second), next))
				d.liveLine(p.Name, w)
			}
			if !time.Now().Before(end) {
				break
			}
		}
		r := Evaluate(p.Phase, pstart, load.Between(pstart, end))
		// The policy holds wherever the traffic goes: the cluster that
		// serves this phase refuses what the policy denies.
		dn := d.probeDenied(ctx)
		d.showDenial(dn)
		r.judgeDenial(dn)
		results = append(results, r)
	}
	stopLoad()
	return results, nil
}

func (d *demo) liveLine(phase string, w Window) {
	var served []string
	for _, c := range d.clusters {
		if n := w.Served[c.Name]; n > 0 {
			served = append(served, fmt.Sprintf("%s=%d", c.Name, n))
		}
	}
	s := strings.Join(served, " ")
	if s == "" {
		s = "-"
	}
	fmt.Fprintf(d.cfg.Out, "%5.0fs  %-24s %5d %5d  %-36s %8s\n", time.Since(d.started).Seconds(), phase, w.Requests, w.Errors, s, w.P99.Round(10*time.Microsecond))
}

func (d *demo) killEcho(c Cluster) error {
	fmt.Fprintf(d.cfg.Out, "  -- killing the echo replicas of %s (app and sidecar)\n", c.Name)
	for r := 1; r <= d.cfg.Replicas; r++ {
		for _, name := range []string{echoName(c, r) + "-app", fmt.Sprintf("%s-echo-%d-sidecar", c.Name, r)} {
			if p := d.procs.Get(name); p != nil {
				p.Kill()
			}
		}
	}
	return nil
}

func (d *demo) restoreEcho(c Cluster) error {
	fmt.Fprintf(d.cfg.Out, "  -- restarting the echo replicas of %s\n", c.Name)
	for r := 1; r <= d.cfg.Replicas; r++ {
		for _, name := range []string{echoName(c, r) + "-app", fmt.Sprintf("%s-echo-%d-sidecar", c.Name, r)} {
			if _, err := d.procs.Restart(name); err != nil {
				return err
			}
		}
	}
	return nil
}

var errTimeout = errors.New("timed out")

// poll calls cond until it returns nil, ctx ends or timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: %w after %v: %v", what, errTimeout, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var pollClient = &http.Client{Timeout: 3 * time.Second}

// httpGet gets url: https (the control planes' admin endpoints) with the
// demo's operator certificate, plain http (gateways) without.
func (d *demo) httpGet(url string) (int, string, error) {
	c := pollClient
	if strings.HasPrefix(url, "https://") && d.admin != nil {
		c = d.admin
	}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, string(b), err
}

func (d *demo) getJSON(url string, v any) error {
	code, body, err := d.httpGet(url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: %d %s", url, code, strings.TrimSpace(body))
	}
	return json.Unmarshal([]byte(body), v)
}
