package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/federation/adminapi"
)

// Config configures a demo run.
type Config struct {
	// Binary is the fedmesh binary the clusters run; sidecars and
	// gateways run fedmesh-proxy from the same directory when it is there.
	Binary string
	// Dir is the working directory (CA, data, logs); created if missing.
	Dir string
	// Clusters is how many local clusters to start (at least 3).
	Clusters int
	// BaseAddress is the first cluster's loopback address (LayoutAt);
	// the zero value means DefaultBaseAddress.
	BaseAddress netip.Addr
	// Replicas of the echo service per cluster. Default 2.
	Replicas int
	// Rate is the client's requests per second. Default 50.
	Rate int
	// Federation are the control planes' gossip and fencing timings;
	// nil means the demo's (LocalFederation).
	Federation *Federation
	// Keep leaves the clusters running after the scenario.
	Keep bool
	// Jaeger is the Jaeger binary (FindJaeger) the demo runs and every
	// sidecar sends its spans to; after each failover phase the demo
	// looks in it for a trace that crossed clusters. Empty: no tracing.
	Jaeger string
	// TracingNote says, when Jaeger is empty, why and how to get it;
	// empty means JaegerMissing.
	TracingNote string
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
	// Canary, Faults, AB and Removed are the lengths of the traffic
	// phases, counted from when every caller follows the phase's route;
	// zero means DefaultTimings'.
	Canary, Faults, AB, Removed time.Duration
	// InForce bounds the wait, in each traffic phase, for every caller
	// to follow the route; zero means DefaultTimings'.
	InForce time.Duration
}

// DefaultTimings keep the whole demo around 70 seconds, the traffic
// phases about 30 of them.
var DefaultTimings = Timings{
	Steady: 6 * time.Second, Failover: 8 * time.Second, Failover2: 8 * time.Second, Recover: 14 * time.Second,
	Settle: 3 * time.Second, RecoverSettle: 10 * time.Second, BaseEjection: 2 * time.Second,
	Canary: 8 * time.Second, Faults: 8 * time.Second, AB: 5 * time.Second, Removed: 5 * time.Second,
	InForce: 15 * time.Second,
}

// withDefaults fills the zero traffic timings from DefaultTimings.
func (t Timings) withDefaults() Timings {
	for _, f := range []struct{ v, d *time.Duration }{
		{&t.Canary, &DefaultTimings.Canary}, {&t.Faults, &DefaultTimings.Faults}, {&t.AB, &DefaultTimings.AB},
		{&t.Removed, &DefaultTimings.Removed}, {&t.InForce, &DefaultTimings.InForce},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return t
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
	// Tracing says whether the sidecars sent spans to Jaeger, and where
	// to look.
	Tracing Tracing `json:"tracing"`
	// Quota is the clusterset quota phase (quota.go), after the others;
	// nil when the run did not get that far.
	Quota *QuotaResult `json:"quota,omitempty"`
}

// Tracing is how the demo traced.
type Tracing struct {
	// On: every sidecar exported its spans to the demo's Jaeger.
	On bool `json:"on"`
	// UI is the Jaeger UI's URL, and OTLP where the sidecars sent spans
	// (OTLP over gRPC); empty when off.
	UI   string `json:"ui,omitempty"`
	OTLP string `json:"otlp,omitempty"`
	// SamplingPercent is the share of new traces the sidecars sampled.
	SamplingPercent float64 `json:"samplingPercent,omitempty"`
	// Note says why tracing was off and how to turn it on.
	Note string `json:"note,omitempty"`
}

// Run runs the scenario: start and federate the clusters, send steady
// traffic from east-1's client through its sidecar, kill east-1's echo,
// then east-2's, then restore both; then write a canary route, a fault
// injection and an A/B route in turn into east-1's source, with a second
// client in west-1 calling too, and remove them; and judge each phase.
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
		tm = cfg.Timings.withDefaults()
	}
	if !cfg.BaseAddress.IsValid() {
		cfg.BaseAddress = DefaultBaseAddress
	}
	clusters, err := LayoutAt(cfg.Clusters, cfg.BaseAddress)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	logDir := filepath.Join(cfg.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	d := &demo{cfg: cfg, tm: tm, clusters: clusters, procs: &Procs{Binary: cfg.Binary, LogDir: logDir, Detach: cfg.Keep}, jaegerIP: jaegerAddr(cfg.BaseAddress)}
	sum := &Summary{Clusters: clusters, Dir: cfg.Dir, OperatorDir: d.dir("operator")}
	if cfg.Jaeger == "" {
		sum.Tracing.Note = d.tracingNote()
	}
	ctx, stopSupervising := d.supervise(ctx)
	defer stopSupervising()
	defer func() {
		if cfg.Keep && d.childExit(ctx) == nil {
			sum.Running = d.procs.Running()
			return
		}
		d.procs.StopAll(10 * time.Second)
	}()
	if err := d.checkAddresses(); err != nil {
		sum.Reason = err.Error()
		return sum, err
	}

	err = d.setUp(ctx)
	switch {
	case d.jaegerUp:
		sum.Tracing = Tracing{On: true, UI: jaegerUI(d.jaegerIP), OTLP: otlpEndpoint(d.jaegerIP), SamplingPercent: TraceSampling}
	case cfg.Jaeger != "":
		sum.Tracing.Note = "jaeger did not start"
	}
	if err != nil {
		err = d.failure(ctx, err)
		sum.Reason = err.Error()
		return sum, err
	}
	sum.StartupSeconds = time.Since(start).Seconds()
	d.progress("clusters federated and serving in %.1fs", sum.StartupSeconds)

	results, err := d.scenario(ctx)
	if err == nil {
		sum.Quota, err = d.quotaScenario(ctx)
	}
	if err == nil && d.childExit(ctx) != nil {
		err = ctx.Err()
	}
	if err == nil && cfg.Inspect != nil {
		cfg.Inspect(clusters)
	}
	sum.Phases = results
	sum.TotalSeconds = time.Since(start).Seconds()
	if err != nil {
		err = d.failure(ctx, err)
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
	if q := sum.Quota; q != nil && !q.OK {
		sum.OK = false
		why = append(why, "clusterset quota: "+q.Reason)
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
	// jaegerIP is where Jaeger listens: JaegerIP (tests: another).
	jaegerIP string
	// jaegerUp: Jaeger started and serves (set by setUp).
	jaegerUp bool
	// admin calls the control planes' admin endpoints with the demo's
	// operator certificate; set by setUp.
	admin *http.Client
}

// tracingNote is why tracing is off.
func (d *demo) tracingNote() string {
	if d.cfg.TracingNote != "" {
		return d.cfg.TracingNote
	}
	return JaegerMissing
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
	if d.cfg.Jaeger != "" {
		d.progress("starting Jaeger %s on %s: every sidecar sends %d%% of its traces there (OTLP %s)", JaegerVersion, jaegerUI(d.jaegerIP), TraceSampling, otlpEndpoint(d.jaegerIP))
		if err := d.startJaeger(ctx); err != nil {
			return err
		}
		d.jaegerUp = true
	} else {
		d.progress("tracing off: %s", d.tracingNote())
	}
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

	if err := WriteTrafficFiles(d.dir(TrafficDir)); err != nil {
		return err
	}
	d.progress("starting %d control planes (embedded etcd, serf gossip, xDS)", len(d.clusters))
	for _, c := range d.clusters {
		canary := 0
		if c.Name == d.canaryCluster().Name {
			canary = canaryReplicas
		}
		src, err := WriteSource(d.cfg.Dir, c, d.cfg.Replicas, canary)
		if err != nil {
			return err
		}
		args := append([]string{"controlplane",
			"--cluster", c.Name, "--region", c.Region, "--zone", c.Zone,
			"--bind-address", c.IP, "--data-dir", d.dir(c.Name, "data"), "--source", "file:" + src,
			"--cluster-cidrs", c.CIDR(),
			"--ca-dir", d.dir(c.Name, "ca"),
			"--base-ejection-time", d.tm.BaseEjection.String()}, d.cfg.Federation.args()...)
		if _, err := d.procs.Start("controlplane-"+c.Name, args...); err != nil {
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

	canary := d.canaryCluster()
	d.progress("starting gateways, %d echo replicas per cluster with sidecars, %s in %s, and the clients' sidecars in %s and %s",
		d.cfg.Replicas, CanaryService, canary.Name, first.Name, canary.Name)
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
	for r := 1; r <= canaryReplicas; r++ {
		if err := d.startCanary(ctx, canary, r); err != nil {
			return err
		}
	}
	for _, c := range d.callers() {
		if err := d.startSidecar(ctx, c, "client", "client", c.ClientIP()); err != nil {
			return err
		}
	}
	for _, c := range d.clusters {
		if err := d.waitHTTP(ctx, "gateway "+c.Name, "http://"+c.IP+":15021/ready", 60*time.Second); err != nil {
			return err
		}
	}
	for _, c := range d.callers() {
		if err := d.waitServed(ctx, c, 60*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// canaryReplicas is how many echo-v2 replicas the canary cluster runs.
const canaryReplicas = 1

// routeCluster is the cluster whose source holds the traffic phases'
// routes (one producer route, obeyed in every cluster); canaryCluster
// runs echo-v2, the canary, alone.
func (d *demo) routeCluster() Cluster  { return d.clusters[0] }
func (d *demo) canaryCluster() Cluster { return d.clusters[2] }

// callers are the clusters with a demo client: the first sends the
// traffic of every phase, the others that of the traffic phases.
func (d *demo) callers() []Cluster { return []Cluster{d.clusters[0], d.canaryCluster()} }

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
	_, err = d.procs.StartProgram("gateway-"+c.Name, d.proxyBinary(), "gateway", "--cluster", c.Name, "--region", c.Region, "--zone", c.Zone,
		"--listen", c.IP+":15443", "--admin", c.IP+":15021", "--xds-address", c.IP+":15010",
		"--trust-domain", TrustDomain, "--root-bundle", filepath.Join(dir, "bundle.crt"), "--token-file", filepath.Join(dir, "token"),
		"--service-account", "gateway")
	return err
}

func echoName(c Cluster, r int) string { return fmt.Sprintf("%s-echo-%d", c.Name, r) }

func (d *demo) startEcho(ctx context.Context, c Cluster, r int) error {
	w := fmt.Sprintf("echo-%d", r)
	if _, err := d.procs.Start(echoName(c, r)+"-app", "echo", "--listen", c.WorkloadIP(r)+":8080", "--cluster", c.Name, "--workload", w,
		"--service", "echo", "--version", "v1"); err != nil {
		return err
	}
	// The echo app listens on WORKLOAD_IP:8080, where the sidecar would
	// also open its listener for the echo service's port 8080: whichever
	// started first would win, and a sidecar that won would send its own
	// inbound traffic out again. The echo's sidecar needs no service
	// listeners.
	return d.startSidecar(ctx, c, w, "echo", c.WorkloadIP(r), "--service-ip", "none", "--audit-log", d.auditLog(c, r))
}

// startCanary starts replica r of echo-v2 in c, with its sidecar.
func (d *demo) startCanary(ctx context.Context, c Cluster, r int) error {
	w := fmt.Sprintf("%s-%d", CanaryService, r)
	if _, err := d.procs.Start(c.Name+"-"+w+"-app", "echo", "--listen", c.CanaryIP(r)+":8080", "--cluster", c.Name, "--workload", w,
		"--service", CanaryService, "--version", "v2"); err != nil {
		return err
	}
	return d.startSidecar(ctx, c, w, CanaryService, c.CanaryIP(r), "--service-ip", "none",
		"--audit-log", d.dir(c.Name, "workloads", w, "audit.log"))
}

func (d *demo) startSidecar(ctx context.Context, c Cluster, workload, sa, ip string, extra ...string) error {
	dir, err := d.token(ctx, c, "demo", sa, workload)
	if err != nil {
		return err
	}
	args := append([]string{"sidecar", "--cluster", c.Name,
		"--region", c.Region, "--zone", c.Zone, "--namespace", "demo", "--service-account", sa, "--workload", workload,
		"--address", ip, "--xds-address", c.IP + ":15010", "--trust-domain", TrustDomain, "--workload-dir", dir, "--dns", "none"}, extra...)
	if d.cfg.Jaeger != "" {
		args = append(args, "--otlp-endpoint", otlpEndpoint(d.jaegerIP), "--otlp-protocol", "grpc", "--trace-sampling", strconv.Itoa(TraceSampling))
	}
	_, err = d.procs.StartProgram(fmt.Sprintf("%s-%s-sidecar", c.Name, workload), d.proxyBinary(), args...)
	return err
}

// proxyBinary is what sidecars and gateways run: fedmesh-proxy, the lean
// data-plane binary, from beside Config.Binary (make build puts both in
// bin/), else Config.Binary itself, where they are the same commands.
func (d *demo) proxyBinary() string {
	p := filepath.Join(filepath.Dir(d.cfg.Binary), "fedmesh-proxy")
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return p
	}
	return d.cfg.Binary
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
// and every cluster's echo endpoints, and the canary's, in its merged
// view.
func (d *demo) waitFederated(ctx context.Context, timeout time.Duration) error {
	want := map[string]int{"echo": len(d.clusters) * d.cfg.Replicas, CanaryService: canaryReplicas}
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
			got := map[string]int{}
			for _, s := range v.Services {
				got[s.Name] = len(s.Endpoints)
			}
			for _, name := range []string{"echo", CanaryService} {
				if got[name] != want[name] {
					return fmt.Errorf("%s sees %d of %d %s endpoints", c.Name, got[name], want[name], name)
				}
			}
		}
		return nil
	})
}

// client returns an HTTP client that sends through the sidecar of c's
// demo client, as an app with HTTP_PROXY set would.
func (d *demo) client(c Cluster) *http.Client {
	proxy, _ := url.Parse("http://" + net.JoinHostPort(c.ClientIP(), "15001"))
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

// waitServed waits until a request through the sidecar of c's client is
// served by c.
func (d *demo) waitServed(ctx context.Context, c Cluster, timeout time.Duration) error {
	l := &Load{URL: echoURL, Client: d.client(c)}
	return poll(ctx, timeout, "first request of "+c.Name+"'s client served by "+c.Name, func() error {
		s := l.one(ctx, "")
		if s.Err != nil {
			return s.Err
		}
		if s.Cluster != c.Name {
			return fmt.Errorf("served by %s", s.Cluster)
		}
		return nil
	})
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

// poll calls cond until it returns nil, ctx ends or timeout passes; an
// exitedError from cond ends it at once.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if ex := (*exitedError)(nil); errors.As(err, &ex) {
			return ex.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: %w after %v: %v", what, errTimeout, timeout, err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
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

// jaegerAddr is where the demo's Jaeger listens: the address just below
// the first cluster's (JaegerIP for the default base), so that a demo
// moved by BaseAddress moves its Jaeger too.
func jaegerAddr(base netip.Addr) string {
	if base == DefaultBaseAddress || !base.Is4() {
		return JaegerIP
	}
	return base.Prev().String()
}
