package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// A mesh is the demo's federation, started by a test so that it can break
// it: three clusters (east-1 and east-2 in us-east, west-1 in us-west), each
// with a control plane, a gateway and an echo service behind sidecars, and a
// client sidecar in east-1. Every process goes through the test's env, so
// its log is kept when the test fails.

const (
	trustDomain = "fedmesh.local"
	echoURL     = "http://echo.demo.svc.clusterset.local:8080/"
)

// Addresses: unlike the demo's (127.0.0.1N, 127.0.N.0/24), so that a test
// never meets a demo someone runs on the same machine. Cluster N's control
// plane and gateway are on 127.B.0.N (B from reserveBlock; or its lab
// address), its workloads on 127.B.N.0/24, or on 127.0.(90+N).0/24, each
// namespace's own loopback, in a lab.
func workloadIP(c demo.Cluster, r int) string {
	if block, ok := loopbackBlock(c.IP); ok {
		return fmt.Sprintf("127.%d.%d.%d", block, c.Index, r)
	}
	return fmt.Sprintf("127.0.%d.%d", 90+c.Index, r)
}

// loopbackBlock is the second octet of a cluster address 127.B.0.N that
// reserveBlock handed out.
func loopbackBlock(ip string) (int, bool) {
	var b, n int
	if _, err := fmt.Sscanf(ip, "127.%d.0.%d", &b, &n); err != nil || b < firstBlock || b > lastBlock {
		return 0, false
	}
	return b, true
}

func clientIP(c demo.Cluster) string { return workloadIP(c, 100) }

// workloadCIDR is the range of cluster c's workload addresses, which its
// control plane declares (--cluster-cidrs).
func workloadCIDR(c demo.Cluster) string {
	if block, ok := loopbackBlock(c.IP); ok {
		return fmt.Sprintf("127.%d.%d.0/24", block, c.Index)
	}
	return fmt.Sprintf("127.0.%d.0/24", 90+c.Index)
}

// writeSource writes cluster c's source directory, as the demo's but on
// the test's addresses, and returns its path.
func (m *mesh) writeSource(c demo.Cluster) string {
	m.t.Helper()
	src := demo.Source{Cluster: c.Name, Index: c.Index, Zone: c.Zone, ClientIP: clientIP(c)}
	for r := 1; r <= m.spec.replicas; r++ {
		src.Replicas = append(src.Replicas, demo.Replica{N: r, IP: workloadIP(c, r)})
	}
	dir := m.path(c.Name, "source")
	if err := demo.WriteSourceDir(dir, src); err != nil {
		m.t.Fatal(err)
	}
	return dir
}

// meshSpec says how to start a mesh. Zero fields take the defaults.
type meshSpec struct {
	// replicas of the echo service per cluster; 2 by default.
	replicas int
	// certTTL is the control planes' --cert-ttl; 0 keeps theirs.
	certTTL time.Duration
	// baseEjection is the sidecars' first outlier ejection time; 2s by
	// default.
	baseEjection time.Duration
	// fencePeriod is the control planes' --fence-period; 5s by default.
	fencePeriod time.Duration
	// lab, when set, runs each cluster in its own network namespace of
	// the lab, on the lab's addresses; otherwise on loopback addresses.
	lab *netLab
	// sidecarArgs, when set, gives extra flags of the sidecar of each
	// workload (client, echo-N).
	sidecarArgs func(workload string) []string
	// controlPlaneArgs, when set, are extra flags of every control plane.
	controlPlaneArgs []string
	// replicated, when set, names the cluster whose control plane runs
	// two replicas, behind an xDS front for its sidecars and gateway
	// (replicas_test.go).
	replicated string
}

type mesh struct {
	t        *testing.T
	e        *env
	spec     meshSpec
	dir      string
	clusters []demo.Cluster
	// clientProxy is the client sidecar's outbound HTTP proxy, and
	// clientAdmin its admin address, as this process reaches them.
	clientProxy, clientAdmin string
	// admin calls the control planes' admin APIs as an operator.
	admin *operator

	procs map[string]*proc // by name; used by the test goroutine only
	// xdsFront is the xDS address of a replicated cluster's sidecars and
	// gateway, by cluster; the control plane's own address otherwise.
	xdsFront map[string]string
}

// startMesh creates the CAs, starts and joins the control planes, starts
// the gateways, the echo replicas and the client's sidecar, and waits until
// the client's requests are served in east-1.
func startMesh(t *testing.T, spec meshSpec) *mesh {
	t.Helper()
	if spec.replicas == 0 {
		spec.replicas = 2
	}
	if spec.baseEjection == 0 {
		spec.baseEjection = 2 * time.Second
	}
	if spec.fencePeriod == 0 {
		spec.fencePeriod = 5 * time.Second
	}
	clusters, err := demo.Layout(3)
	if err != nil {
		t.Fatal(err)
	}
	block := reserveBlock(t)
	for i := range clusters {
		clusters[i].IP = fmt.Sprintf("127.%d.0.%d", block, clusters[i].Index)
		if spec.lab != nil {
			clusters[i].IP = spec.lab.clusterIP(clusters[i].Index)
		}
	}
	// The directory before the environment: cleanups run last-first, so
	// the processes are stopped before their directory is removed (a
	// running sidecar still persists its state there).
	dir := t.TempDir()
	m := &mesh{t: t, e: newEnv(t), spec: spec, dir: dir, clusters: clusters, procs: map[string]*proc{}, xdsFront: map[string]string{}}
	east1 := clusters[0]
	m.clientProxy = net.JoinHostPort(clientIP(east1), "15001")
	m.clientAdmin = net.JoinHostPort(clientIP(east1), "15000")
	if spec.lab != nil {
		// The client's workload address is on east-1's loopback, which
		// only east-1's namespace reaches: its proxy and admin listen on
		// the cluster's lab address instead.
		m.clientProxy = net.JoinHostPort(east1.IP, "15001")
		m.clientAdmin = net.JoinHostPort(east1.IP, "15000")
	}
	start := time.Now()
	m.setUp()
	t.Logf("mesh of %d clusters federated and serving in %v", len(clusters), time.Since(start).Round(time.Millisecond))
	return m
}

func (m *mesh) path(parts ...string) string {
	return filepath.Join(append([]string{m.dir}, parts...)...)
}

// cli runs a short fedmesh command in this namespace and fails the test
// when it fails.
func (m *mesh) cli(args ...string) string {
	m.t.Helper()
	out, stderr, code := m.e.run(args...)
	if code != 0 {
		m.t.Fatalf("fedmesh %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return out
}

func (m *mesh) netnsOf(c demo.Cluster) string {
	if m.spec.lab == nil {
		return ""
	}
	return m.spec.lab.netns(c.Index)
}

func (m *mesh) start(c demo.Cluster, name string, args ...string) *proc {
	m.t.Helper()
	p := m.e.startIn(m.netnsOf(c), name, args...)
	m.procs[name] = p
	return p
}

// proc returns the process started under name.
func (m *mesh) proc(name string) *proc {
	m.t.Helper()
	p := m.procs[name]
	if p == nil {
		m.t.Fatalf("no process %s", name)
	}
	return p
}

// kill ends the named process at once, as a crash would.
func (m *mesh) kill(name string) { m.proc(name).kill() }

// restart starts the named (exited) process again with its arguments.
func (m *mesh) restart(name string) *proc {
	m.t.Helper()
	p := m.e.restart(m.proc(name))
	m.procs[name] = p
	return p
}

func (m *mesh) setUp() {
	t := m.t
	t.Helper()
	m.cli("ca", "init", "--trust-domain", trustDomain, "--dir", m.path("root"))
	for _, c := range m.clusters {
		m.cli("ca", "issue-cluster", "--root-dir", m.path("root"), "--cluster", c.Name, "--dir", m.path(c.Name, "ca"))
	}
	// The tests' operator certificate: from the root, so every cluster's
	// admin API accepts it, as in the demo.
	m.cli("ca", "issue-operator", "--root-dir", m.path("root"), "--name", "e2e", "--out", m.path("operator"))
	m.admin = operatorClient(t, m.path("operator"))
	for _, c := range m.clusters {
		m.writeSource(c)
		args := m.controlPlaneArgs(c, c.IP, m.path(c.Name, "data"))
		if c.Name == m.spec.replicated {
			args = append(args, "--replica", "a")
		}
		m.start(c, cpName(c), args...)
	}
	for _, c := range m.clusters {
		waitReady(t, m.proc(cpName(c)), c.Admin())
	}
	east1 := m.clusters[0]
	tok := strings.TrimSpace(m.cli("token", "create", "--ttl", "10m", "--admin", east1.Admin(), "--operator-dir", m.path("operator")))
	tokFile := m.path("join.token")
	if err := os.WriteFile(tokFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range m.clusters[1:] {
		m.cli("join", "--token-file", tokFile, "--admin", c.Admin(), "--operator-dir", m.path("operator"))
	}
	if m.spec.replicated != "" {
		m.startSecondReplica(m.cluster(m.spec.replicated), tokFile)
	}
	poll.Until(t, 60*time.Second, "every control plane sees every echo endpoint", func() error {
		for _, c := range m.clusters {
			if n, err := m.echoEndpoints(c); err != nil {
				return err
			} else if want := len(m.clusters) * m.spec.replicas; n != want {
				return fmt.Errorf("%s sees %d of %d echo endpoints", c.Name, n, want)
			}
		}
		return nil
	})
	for _, c := range m.clusters {
		m.startGateway(c)
		for r := 1; r <= m.spec.replicas; r++ {
			m.startEcho(c, r)
		}
	}
	var extra []string
	if m.spec.lab != nil {
		extra = []string{"--outbound", m.clientProxy, "--admin", m.clientAdmin}
	}
	m.startSidecar(east1, "client", "client", clientIP(east1), extra...)
	for _, c := range m.clusters {
		poll.Until(t, 60*time.Second, "gateway "+c.Name+" ready", func() error {
			return wantOK(c.IP + ":15021/ready")
		})
	}
	poll.Until(t, 60*time.Second, "client sidecar ready", func() error { return wantOK(m.clientAdmin + "/ready") })
	for name, p := range m.procs {
		if p.exited() {
			t.Fatalf("%s exited: %v", name, p.err)
		}
	}
	poll.Until(t, 60*time.Second, "a request served by east-1", func() error {
		s := m.request()
		if s.Err != nil {
			return s.Err
		}
		if s.Cluster != east1.Name {
			return fmt.Errorf("served by %s", s.Cluster)
		}
		return nil
	})
}

// controlPlaneArgs are the flags of a control plane of c bound to
// bindIP with its store in dataDir.
func (m *mesh) controlPlaneArgs(c demo.Cluster, bindIP, dataDir string) []string {
	args := []string{"controlplane",
		"--cluster", c.Name, "--region", c.Region, "--zone", c.Zone,
		"--bind-address", bindIP, "--data-dir", dataDir, "--source", "file:" + m.path(c.Name, "source"),
		"--gateway-address", net.JoinHostPort(c.IP, "15443"),
		"--cluster-cidrs", workloadCIDR(c),
		"--ca-dir", m.path(c.Name, "ca"), "--gossip-profile", "local",
		"--fence-period", m.spec.fencePeriod.String(), "--base-ejection-time", m.spec.baseEjection.String()}
	if m.spec.certTTL > 0 {
		args = append(args, "--cert-ttl", m.spec.certTTL.String())
	}
	return append(args, m.spec.controlPlaneArgs...)
}

// xdsAddress is the xDS address c's sidecars and gateway are given.
func (m *mesh) xdsAddress(c demo.Cluster) string {
	if a, ok := m.xdsFront[c.Name]; ok {
		return a
	}
	return net.JoinHostPort(c.IP, "15010")
}

func cpName(c demo.Cluster) string      { return "controlplane-" + c.Name }
func gatewayName(c demo.Cluster) string { return "gateway-" + c.Name }
func echoApp(c demo.Cluster, r int) string {
	return fmt.Sprintf("%s-echo-%d-app", c.Name, r)
}
func sidecarName(c demo.Cluster, workload string) string {
	return fmt.Sprintf("%s-%s-sidecar", c.Name, workload)
}

func wantOK(hostPortPath string) error {
	code, body, err := httpGet("http://" + hostPortPath)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%d %s", code, strings.TrimSpace(body))
	}
	return nil
}

// workloadDir writes a bootstrap token and the federation bundle for one
// workload of cluster c and returns the directory.
func (m *mesh) workloadDir(c demo.Cluster, ns, sa, workload string) string {
	m.t.Helper()
	dir := m.path(c.Name, "workloads", workload)
	m.cli("ca", "bootstrap-token", "--ca-dir", m.path(c.Name, "ca"), "--namespace", ns,
		"--service-account", sa, "--workload", workload, "--out", dir)
	bundle, err := os.ReadFile(m.path(c.Name, "ca", "bundle.crt"))
	if err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bundle.crt"), bundle, 0o644); err != nil {
		m.t.Fatal(err)
	}
	return dir
}

func (m *mesh) startGateway(c demo.Cluster) {
	dir := m.workloadDir(c, "fedmesh-system", "gateway", "gateway")
	m.start(c, gatewayName(c), "gateway", "--cluster", c.Name, "--region", c.Region, "--zone", c.Zone,
		"--listen", c.IP+":15443", "--admin", c.IP+":15021", "--xds-address", m.xdsAddress(c),
		"--trust-domain", trustDomain, "--root-bundle", filepath.Join(dir, "bundle.crt"), "--token-file", filepath.Join(dir, "token"),
		"--service-account", "gateway", "--data-dir", m.path(c.Name, "gateway-state"))
}

func (m *mesh) startEcho(c demo.Cluster, r int) {
	w := fmt.Sprintf("echo-%d", r)
	m.start(c, echoApp(c, r), "echo", "--listen", workloadIP(c, r)+":8080", "--cluster", c.Name, "--workload", w)
	// No service listeners: the one for port 8080 would take the app's
	// address and port. The audit trail goes to a file, as in the demo.
	m.startSidecar(c, w, "echo", workloadIP(c, r), "--service-ip", "none", "--audit-log", m.auditLog(c, r))
}

// auditLog is the audit log file of replica r's sidecar in cluster c, in
// the replica's workload directory.
func (m *mesh) auditLog(c demo.Cluster, r int) string {
	return m.path(c.Name, "workloads", fmt.Sprintf("echo-%d", r), "audit.log")
}

func (m *mesh) startSidecar(c demo.Cluster, workload, sa, ip string, extra ...string) {
	dir := m.workloadDir(c, "demo", sa, workload)
	args := append([]string{"sidecar", "--cluster", c.Name,
		"--region", c.Region, "--zone", c.Zone, "--namespace", "demo", "--service-account", sa, "--workload", workload,
		"--address", ip, "--xds-address", m.xdsAddress(c), "--trust-domain", trustDomain, "--workload-dir", dir, "--dns", "none"},
		extra...)
	if m.spec.sidecarArgs != nil {
		args = append(args, m.spec.sidecarArgs(workload)...)
	}
	m.start(c, sidecarName(c, workload), args...)
}

// killEcho kills the echo replicas of c, apps and sidecars.
func (m *mesh) killEcho(c demo.Cluster) {
	for r := 1; r <= m.spec.replicas; r++ {
		m.kill(echoApp(c, r))
		m.kill(sidecarName(c, fmt.Sprintf("echo-%d", r)))
	}
}

func (m *mesh) cluster(name string) demo.Cluster {
	for _, c := range m.clusters {
		if c.Name == name {
			return c
		}
	}
	m.t.Fatalf("no cluster %s", name)
	return demo.Cluster{}
}

// echoEndpoints counts the endpoints of demo/echo in c's merged view.
func (m *mesh) echoEndpoints(c demo.Cluster) (int, error) {
	var v struct {
		Services []struct {
			Name      string            `json:"name"`
			Endpoints []json.RawMessage `json:"endpoints"`
		} `json:"services"`
	}
	if err := m.admin.Get(c.Admin(), "/debug/view", &v); err != nil {
		return 0, err
	}
	for _, s := range v.Services {
		if s.Name == "echo" {
			return len(s.Endpoints), nil
		}
	}
	return 0, nil
}

// fedStatus is the part of /federation/v1/status the tests read.
type fedStatus struct {
	Cluster  string `json:"cluster"`
	ViewHash string `json:"viewHash"`
	Members  []struct {
		Name        string `json:"name"`
		State       string `json:"state"`
		Connected   bool   `json:"connected"`
		Fenced      bool   `json:"fenced"`
		FenceReason string `json:"fenceReason"`
	} `json:"members"`
	Fenced []struct {
		Name   string `json:"name"`
		Reason string `json:"reason"`
	} `json:"fenced"`
}

func (m *mesh) status(c demo.Cluster) (fedStatus, error) {
	var s fedStatus
	err := m.admin.Get(c.Admin(), "/federation/v1/status", &s)
	return s, err
}

// converged returns nil when every control plane sees every cluster alive,
// connected and unfenced, and all publish the same view hash.
func (m *mesh) converged() error {
	hashes := map[string][]string{}
	for _, c := range m.clusters {
		s, err := m.status(c)
		if err != nil {
			return err
		}
		if len(s.Members) != len(m.clusters) {
			return fmt.Errorf("%s knows %d members, want %d", c.Name, len(s.Members), len(m.clusters))
		}
		for _, mem := range s.Members {
			if mem.State != "alive" || !mem.Connected || mem.Fenced {
				return fmt.Errorf("%s sees %s %s (connected %v, fenced %v %s)", c.Name, mem.Name, mem.State, mem.Connected, mem.Fenced, mem.FenceReason)
			}
		}
		if len(s.Fenced) > 0 {
			return fmt.Errorf("%s still fences %v", c.Name, s.Fenced)
		}
		hashes[s.ViewHash] = append(hashes[s.ViewHash], c.Name)
	}
	if len(hashes) != 1 {
		return fmt.Errorf("view hashes differ: %v", hashes)
	}
	return nil
}

// client sends HTTP requests through the client's sidecar, as an app with
// HTTP_PROXY set would.
func (m *mesh) client() *http.Client {
	proxy := &url.URL{Scheme: "http", Host: m.clientProxy}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy:               http.ProxyURL(proxy),
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// request sends one request through the client's sidecar.
func (m *mesh) request() demo.Sample {
	return (&load{url: echoURL, client: m.client()}).one(context.Background())
}

// load is steady traffic from the client: one request every 1/rate, each
// in its own goroutine, bounded by the client's timeout, by a count and by
// a deadline. Every outcome is kept as a demo.Sample, so the demo's phase
// evaluation applies.
type load struct {
	url    string
	client *http.Client

	stopSending context.CancelFunc // stops new requests
	abort       context.CancelFunc // cancels requests in flight
	sender      sync.WaitGroup     // the sending loop
	inflight    sync.WaitGroup     // requests in flight

	mu      sync.Mutex // guards samples
	samples []demo.Sample
}

// startLoad sends rate requests a second through the client's sidecar
// until stop, maxDuration, or rate*maxDuration requests.
func (m *mesh) startLoad(rate int, maxDuration time.Duration) *load {
	l := &load{url: echoURL, client: m.client()}
	sendCtx, stopSending := context.WithTimeout(context.Background(), maxDuration)
	reqCtx, abort := context.WithCancel(context.Background())
	l.stopSending, l.abort = stopSending, abort
	maxRequests := rate * int(maxDuration/time.Second+1)
	l.sender.Add(1)
	go func() {
		defer l.sender.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for sent := 0; sent < maxRequests; sent++ {
			select {
			case <-sendCtx.Done():
				return
			case <-tick.C:
			}
			l.inflight.Add(1)
			go func() {
				defer l.inflight.Done()
				s := l.one(reqCtx)
				l.mu.Lock()
				l.samples = append(l.samples, s)
				l.mu.Unlock()
			}()
		}
	}()
	m.t.Cleanup(func() {
		l.abort()
		l.stop()
	})
	return l
}

// stop stops sending and waits for the requests in flight, each bounded
// by the client's timeout. It may be called more than once.
func (l *load) stop() {
	l.stopSending()
	l.sender.Wait()
	l.inflight.Wait()
}

func (l *load) one(ctx context.Context) demo.Sample {
	start := time.Now()
	s := demo.Sample{At: start}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	if err != nil {
		s.Err = err
		return s
	}
	resp, err := l.client.Do(req)
	if err != nil {
		s.Err, s.Latency = err, time.Since(start)
		return s
	}
	defer resp.Body.Close()
	var rep struct {
		Cluster string `json:"cluster"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rep)
	s.Latency = time.Since(start)
	switch {
	case resp.StatusCode != http.StatusOK:
		s.Err = fmt.Errorf("HTTP %d %s", resp.StatusCode, resp.Header.Get("X-Fedmesh-Error"))
	case err != nil || rep.Cluster == "":
		s.Err = fmt.Errorf("reply is not the echo workload's: %v", err)
	default:
		s.Cluster = rep.Cluster
	}
	return s
}

// Since returns the samples of requests started at or after t that have
// ended.
func (l *load) Since(t time.Time) []demo.Sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []demo.Sample
	for _, s := range l.samples {
		if !s.At.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// Between returns the samples of requests started in [from, to) that
// have ended.
func (l *load) Between(from, to time.Time) []demo.Sample {
	var out []demo.Sample
	for _, s := range l.Since(from) {
		if s.At.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// waitServedBy waits until, after since, a whole second of requests was
// served by cluster without an error, and returns when that second began.
func (l *load) waitServedBy(t *testing.T, cluster string, since time.Time, timeout time.Duration) time.Time {
	t.Helper()
	var at time.Time
	poll.Until(t, timeout, "a second of requests served by "+cluster, func() error {
		samples := l.Since(since)
		r := demo.Evaluate(demo.Phase{Expect: cluster}, since, samples)
		if r.SwitchedAfter < 0 {
			return fmt.Errorf("not yet: %s", summarize(samples))
		}
		at = since.Add(r.SwitchedAfter)
		return nil
	})
	return at
}

// failures returns the failed samples among samples.
func failures(samples []demo.Sample) []demo.Sample {
	var out []demo.Sample
	for _, s := range samples {
		if s.Err != nil {
			out = append(out, s)
		}
	}
	return out
}

// errorWindow is the time from the first to the last failed sample.
func errorWindow(samples []demo.Sample) time.Duration {
	f := failures(samples)
	if len(f) == 0 {
		return 0
	}
	first, last := f[0].At, f[0].At
	for _, s := range f {
		if s.At.Before(first) {
			first = s.At
		}
		if s.At.After(last) {
			last = s.At
		}
	}
	return last.Sub(first)
}

// summarize counts samples by outcome, for messages.
func summarize(samples []demo.Sample) string {
	by := map[string]int{}
	var lastErr string
	for _, s := range samples {
		if s.Err != nil {
			by["error"]++
			lastErr = s.Err.Error()
			if i := strings.LastIndex(lastErr, ": "); i >= 0 && strings.HasPrefix(lastErr, "Get ") {
				lastErr = lastErr[i+2:]
			}
			continue
		}
		by[s.Cluster]++
	}
	parts := []string{}
	for _, k := range []string{"east-1", "east-2", "west-1", "error"} {
		if by[k] > 0 {
			parts = append(parts, k+"="+strconv.Itoa(by[k]))
		}
	}
	if lastErr != "" {
		parts = append(parts, "last error: "+lastErr)
	}
	if len(parts) == 0 {
		return "no requests"
	}
	return strings.Join(parts, " ")
}

// metric returns the sum of the samples of a Prometheus metric whose
// labels include every one of want (name{a="b"} 3 lines of the text
// format) on a /stats/prometheus or /metrics page.
func metric(page, name string, want ...string) float64 {
	var sum float64
	for _, line := range strings.Split(page, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(rest, w) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// scrape returns a metrics page.
func scrape(t *testing.T, hostPortPath string) string {
	t.Helper()
	url := hostPortPath
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	code, body, err := httpGet(url)
	if err != nil || code != http.StatusOK {
		t.Fatalf("scrape %s: %d %v", hostPortPath, code, err)
	}
	return body
}
