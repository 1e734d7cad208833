package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// The monitoring files the test checks, relative to this package.
const (
	dashboardsDir   = "../../deploy/monitoring/dashboards"
	localScrapeFile = "../../deploy/monitoring/prometheus-local.yml"
)

// prometheusPath finds Debian's prometheus. Without it the test skips,
// unless CI is set: there, `make test` installs it and its absence is a
// failure.
func prometheusPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("prometheus is not installed: `make test` installs it (scripts/test-deps.sh); CI is set, so the dashboard test may not skip")
	}
	t.Skip("prometheus is not installed (apt-get install prometheus, or `make test-deps` as root); skipping the dashboard queries test")
	return ""
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	file       string
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			AllValue string `json:"allValue"`
			Query    any    `json:"query"` // a string, or {"query": "..."}
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	ID      int         `json:"id"`
	Type    string      `json:"type"`
	Title   string      `json:"title"`
	Panels  []dashPanel `json:"panels"` // a collapsed row's
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// query is one panel target's expression.
type query struct {
	dashboard, panel, refID, expr string
}

func (q query) String() string {
	return fmt.Sprintf("%s / %q / %s", q.dashboard, q.panel, q.refID)
}

// queryVars returns the dashboard's query variables by name, with their
// label_values queries.
func (d dashboard) queryVars() map[string]string {
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		switch q := v.Query.(type) {
		case string:
			vars[v.Name] = q
		case map[string]any:
			s, _ := q["query"].(string)
			vars[v.Name] = s
		}
	}
	return vars
}

func (d dashboard) queries() []query {
	var out []query
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, query{dashboard: d.Title, panel: p.Title, refID: tg.RefID, expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// readDashboards reads every dashboard of deploy/monitoring/dashboards
// and checks what Grafana needs to import them: a unique uid and title,
// unique panel ids, and an expression in every target.
func readDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("%s holds %d dashboards, want the clusterset, service and control plane ones", dashboardsDir, len(files))
	}
	var out []dashboard
	uids := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboard{file: filepath.Base(f)}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid %q, title %q: both are required", f, d.UID, d.Title)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %s", other, d.file, d.UID)
		}
		uids[d.UID] = d.file
		ids := map[int]bool{}
		var walk func([]dashPanel)
		walk = func(ps []dashPanel) {
			for _, p := range ps {
				if ids[p.ID] {
					t.Errorf("%s: panel id %d used twice", d.file, p.ID)
				}
				ids[p.ID] = true
				if p.Type != "row" && len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", d.file, p.Title)
				}
				for _, tg := range p.Targets {
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s: panel %q target %s has no expr", d.file, p.Title, tg.RefID)
					}
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		out = append(out, d)
	}
	return out
}

// grafanaVar is a reference to a dashboard variable in an expression:
// $name or ${name} ("$1" in label_replace is not one).
var grafanaVar = regexp.MustCompile(`\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))`)

// rateInterval stands for Grafana's $__rate_interval and friends: long
// enough to reach back to the mesh's start-up.
const rateInterval = "5m"

// expand substitutes Grafana's variables in expr: the built-in intervals,
// and the dashboard's own from values. A variable the dashboard does not
// define is an error.
func expand(expr string, values map[string]string) (string, error) {
	var bad []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVar.FindStringSubmatch(m)
		name := sm[1] + sm[2]
		switch name {
		case "__rate_interval", "__interval", "__range":
			return rateInterval
		}
		v, ok := values[name]
		if !ok {
			bad = append(bad, name)
			return m
		}
		return v
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("undefined variables %v in %s", bad, expr)
	}
	return out, nil
}

// labelValuesQuery reads a label_values(SELECTOR, LABEL) variable query.
var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_]\w*)\)$`)

// prom is a running Prometheus.
type prom struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// freePort returns a loopback port nobody listens on now. Another process
// may take it before Prometheus binds: Prometheus then exits, and the test
// fails at once saying so.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPrometheus runs prometheus with config, its TSDB in a temporary
// directory, on a free loopback port, and waits until it is ready.
func (m *mesh) startPrometheus(exe, config string) *prom {
	t := m.t
	t.Helper()
	port := freePort(t)
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(m.e.logDir, "prometheus.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "--config.file="+config, "--storage.tsdb.path="+t.TempDir(),
		"--web.listen-address="+listen, "--log.level=info")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start prometheus: %v", err)
	}
	p := &prom{url: "http://" + listen, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
	})
	poll.Until(t, 30*time.Second, "prometheus ready on "+listen, func() error {
		if p.exited() {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("prometheus exited (could it not bind %s?):\n%s", listen, tail(string(b), 20))
		}
		return wantOK(listen + "/-/ready")
	})
	return p
}

func (p *prom) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// api calls Prometheus' HTTP API and decodes its data.
func (p *prom) api(path string, params url.Values, data any) error {
	var resp struct {
		Status    string          `json:"status"`
		Error     string          `json:"error"`
		ErrorType string          `json:"errorType"`
		Data      json.RawMessage `json:"data"`
	}
	code, body, err := httpGet(p.url + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return fmt.Errorf("%s: %d %s", path, code, body)
	}
	if resp.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, resp.ErrorType, resp.Error)
	}
	return json.Unmarshal(resp.Data, data)
}

// sample is one element of an instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) value() float64 {
	str, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// instant runs an instant query and returns its vector.
func (p *prom) instant(expr string) ([]sample, error) {
	var data struct {
		ResultType string   `json:"resultType"`
		Result     []sample `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", data.ResultType)
	}
	return data.Result, nil
}

// labelValues answers a label_values(SELECTOR, LABEL) variable query as
// Grafana does, from the series API.
func (p *prom) labelValues(selector, label string) ([]string, error) {
	var series []map[string]string
	start := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	if err := p.api("/api/v1/series", url.Values{"match[]": {selector}, "start": {start}}, &series); err != nil {
		return nil, err
	}
	var out []string
	for _, s := range series {
		if v, ok := s[label]; ok && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out, nil
}

// target is one scrape target of the local configuration.
type target struct{ job, addr string }

// localScrapeConfig reads deploy/monitoring/prometheus-local.yml, which
// scrapes the demo's processes on the demo's addresses, and returns it
// rewritten to this mesh's addresses and a 1 s scrape interval, and what
// it scrapes. Every process of the demo must be scraped, and nothing else.
func (m *mesh) localScrapeConfig() ([]byte, []target) {
	t := m.t
	t.Helper()
	raw, err := os.ReadFile(localScrapeFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", localScrapeFile, err)
	}
	// The demo's address of every process, and this mesh's.
	demoClusters, err := demo.Layout(len(m.clusters))
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}  // demo host:port -> mesh host:port
	wanted := map[string]string{} // demo host:port -> job
	want := func(job, demoHost, meshHost, port string) {
		addrs[net.JoinHostPort(demoHost, port)] = net.JoinHostPort(meshHost, port)
		wanted[net.JoinHostPort(demoHost, port)] = job
	}
	for i, dc := range demoClusters {
		c := m.clusters[i]
		want("fedmesh-controlplane", dc.IP, c.IP, "15014")
		want("fedmesh-gateway", dc.IP, c.IP, "15021")
		for r := 1; r <= m.spec.replicas; r++ {
			want("fedmesh-sidecar", dc.WorkloadIP(r), workloadIP(c, r), "15000")
		}
		if i == 0 {
			want("fedmesh-sidecar", dc.ClientIP(), clientIP(c), "15000")
		}
	}
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
		cfg["global"] = global
	}
	global["scrape_interval"], global["evaluation_interval"] = "1s", "1s"
	var targets []target
	scrapes, _ := cfg["scrape_configs"].([]any)
	for _, sc := range scrapes {
		sc := sc.(map[string]any)
		job, _ := sc["job_name"].(string)
		statics, _ := sc["static_configs"].([]any)
		for _, st := range statics {
			st := st.(map[string]any)
			list, _ := st["targets"].([]any)
			for i, a := range list {
				a, _ := a.(string)
				if wanted[a] != job {
					t.Errorf("%s: job %s scrapes %s, which is not a %s of the demo", localScrapeFile, job, a, job)
					continue
				}
				delete(wanted, a)
				list[i] = addrs[a]
				targets = append(targets, target{job: job, addr: addrs[a]})
			}
		}
	}
	for a, job := range wanted {
		t.Errorf("%s does not scrape %s (job %s)", localScrapeFile, a, job)
	}
	if t.Failed() {
		t.FailNow()
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out, targets
}

// TestDashboardFiles checks the dashboards without Prometheus: each is
// JSON Grafana can import, and its queries and variable queries use only
// the variables it defines.
func TestDashboardFiles(t *testing.T) {
	for _, d := range readDashboards(t) {
		all := map[string]string{}
		for name := range d.queryVars() {
			all[name] = ".*"
		}
		for _, q := range d.queries() {
			if _, err := expand(q.expr, all); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
		for name, vq := range d.queryVars() {
			mm := labelValuesQuery.FindStringSubmatch(strings.TrimSpace(vq))
			if mm == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(SELECTOR, LABEL)", d.file, name, vq)
				continue
			}
			if _, err := expand(mm[1], all); err != nil {
				t.Errorf("%s: variable %s: %v", d.file, name, err)
			}
		}
	}
}

// TestDashboardsQueriesReturnData runs a real Prometheus with the local
// scrape configuration (deploy/monitoring/prometheus-local.yml, moved to
// the test's addresses) against a running mesh with steady traffic that
// fails over from east-1 to east-2 and then to west-1, a service newly
// exported by west-1, and a control plane killed so that its cluster is
// fenced; then every query of every
// dashboard in deploy/monitoring/dashboards must return data, with its
// variables set to All and to real values, and every variable's own
// query must offer values.
func TestDashboardsQueriesReturnData(t *testing.T) {
	exe := prometheusPath(t)
	dashboards := readDashboards(t)
	m := startMesh(t, meshSpec{})
	east1, east2, west1 := m.cluster("east-1"), m.cluster("east-2"), m.cluster("west-1")

	// The configuration's relative certificate path is read from its
	// directory: the mesh's, laid out as the demo's.
	cfg, targets := m.localScrapeConfig()
	cfgPath := m.path("prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	p := m.startPrometheus(exe, cfgPath)
	t.Logf("prometheus at %s scraping %d targets", p.url, len(targets))
	poll.Until(t, 60*time.Second, "prometheus scrapes every target", func() error {
		var down []string
		for _, tg := range targets {
			r, err := p.instant(fmt.Sprintf(`up{job=%q, instance=%q}`, tg.job, tg.addr))
			if err != nil {
				return err
			}
			if len(r) != 1 || r[0].value() != 1 {
				down = append(down, tg.job+"/"+tg.addr)
			}
		}
		if len(down) > 0 {
			return fmt.Errorf("not up: %v", down)
		}
		return nil
	})

	load := m.startLoad(20, 4*time.Minute)
	since := time.Now()
	load.waitServedBy(t, east1.Name, since, 60*time.Second)
	// Failover within the region, then across: east-2's gateway
	// connections end with east-2's echo, so its bytes are counted.
	since = time.Now()
	m.killEcho(east1)
	load.waitServedBy(t, east2.Name, since, 60*time.Second)
	since = time.Now()
	m.killEcho(east2)
	load.waitServedBy(t, west1.Name, since, 60*time.Second)
	// west-1 exports a new service; east-1 learns it through replication,
	// which the propagation panels measure.
	probe := "kind: Service\napiVersion: v1\nmetadata: {name: dashboards-probe, namespace: demo}\n" +
		"spec: {selector: {app: dashboards-probe}, ports: [{name: http, port: 8080, appProtocol: http}]}\n---\n" +
		"apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: dashboards-probe, namespace: demo}\n"
	if err := os.WriteFile(filepath.Join(m.path(west1.Name, "source"), "dashboards-probe.yaml"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 60*time.Second, "east-1 imports dashboards-probe from west-1", func() error {
		var v struct {
			Services []struct {
				Name string `json:"name"`
			} `json:"services"`
		}
		if err := m.admin.Get(east1.Admin(), "/debug/view", &v); err != nil {
			return err
		}
		for _, s := range v.Services {
			if s.Name == "dashboards-probe" {
				return nil
			}
		}
		return errors.New("not in east-1's view yet")
	})
	// east-2's control plane and gateway die: the others fence it (a
	// control plane alone would not be fenced while its gateway serves).
	m.kill(cpName(east2))
	m.kill(gatewayName(east2))
	poll.Until(t, 60*time.Second, "east-1 and west-1 fence east-2", func() error {
		for _, c := range []demo.Cluster{east1, west1} {
			s, err := m.status(c)
			if err != nil {
				return err
			}
			fenced := false
			for _, f := range s.Fenced {
				fenced = fenced || f.Name == east2.Name
			}
			if !fenced {
				return fmt.Errorf("%s fences %v", c.Name, s.Fenced)
			}
		}
		return nil
	})

	// Variables: All (the allValue, .*) and real values of the mesh.
	real := map[string]string{
		"namespace":      "demo",
		"service":        "echo.demo.svc.clusterset.local",
		"source_cluster": east1.Name,
		"cluster":        east1.Name,
	}
	type check struct {
		q      query
		expr   string
		values string
	}
	var checks []check
	for _, d := range dashboards {
		all, some := map[string]string{}, map[string]string{}
		for name := range d.queryVars() {
			all[name] = ".*"
			v, ok := real[name]
			if !ok {
				t.Fatalf("%s: variable %s: the test has no real value for it", d.file, name)
			}
			some[name] = v
		}
		for _, q := range d.queries() {
			for _, vs := range []struct {
				name   string
				values map[string]string
			}{{"All", all}, {"real values", some}} {
				expr, err := expand(q.expr, vs.values)
				if err != nil {
					t.Errorf("%s: %v", q, err)
					continue
				}
				checks = append(checks, check{q: q, expr: expr, values: vs.name})
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every query must return data, with a value that is a number: the
	// rates and quantiles over the scenario are. Series that only the
	// scenario's last events create (fence changes) may take a scrape or
	// two to appear.
	pending := checks
	poll.Until(t, 90*time.Second, "every dashboard query returns data", func() error {
		var next []check
		var msgs []string
		for _, c := range pending {
			r, err := p.instant(c.expr)
			if err == nil {
				err = hasNumber(r)
			}
			if err != nil {
				next = append(next, c)
				msgs = append(msgs, fmt.Sprintf("%s (%s): %v\n\t%s", c.q, c.values, err, c.expr))
			}
		}
		pending = next
		if len(msgs) > 0 {
			return fmt.Errorf("%d of %d queries:\n%s", len(msgs), len(checks), strings.Join(msgs, "\n"))
		}
		return nil
	})
	t.Logf("%d queries of %d dashboards, each with variables All and real values, returned data", len(checks)/2, len(dashboards))

	// Every variable offers values, the real one among them.
	for _, d := range dashboards {
		all := map[string]string{}
		for name := range d.queryVars() {
			all[name] = ".*"
		}
		for name, vq := range d.queryVars() {
			mm := labelValuesQuery.FindStringSubmatch(strings.TrimSpace(vq))
			if mm == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(SELECTOR, LABEL)", d.file, name, vq)
				continue
			}
			sel, err := expand(mm[1], all)
			if err != nil {
				t.Errorf("%s: variable %s: %v", d.file, name, err)
				continue
			}
			vals, err := p.labelValues(sel, mm[2])
			if err != nil {
				t.Errorf("%s: variable %s: %v", d.file, name, err)
				continue
			}
			if !slices.Contains(vals, real[name]) {
				t.Errorf("%s: variable %s offers %v, want %s among them", d.file, name, vals, real[name])
			}
		}
	}

	// The panels tell the scenario's story: east-1's traffic is served
	// by other clusters, never counted as a failover to itself, and a
	// cluster is fenced.
	panelValues := func(uid, title string) []sample {
		t.Helper()
		for _, c := range checks {
			if c.q.dashboard == dashboardTitle(dashboards, uid) && c.q.panel == title && c.values == "All" {
				r, err := p.instant(c.expr)
				if err != nil {
					t.Fatalf("%s: %v", c.q, err)
				}
				return r
			}
		}
		t.Fatalf("no panel %q in dashboard %s", title, uid)
		return nil
	}
	failovers := map[string]bool{}
	for _, s := range panelValues("fedmesh-clusterset", "Failovers: requests served by another cluster than the caller's") {
		from, to := s.Metric["source_cluster"], s.Metric["destination_cluster"]
		if from == to {
			t.Errorf("failover panel counts %s -> %s, a cluster serving itself", from, to)
		}
		failovers[from+">"+to] = true
	}
	if !failovers["east-1>east-2"] && !failovers["east-1>west-1"] {
		t.Errorf("failover panel shows %v, want east-1's requests served by east-2 or west-1", failovers)
	}
	if r := panelValues("fedmesh-clusterset", "Clusters fenced now"); len(r) != 1 || r[0].value() < 1 {
		t.Errorf("clusters fenced now: %v, want at least 1 (east-2)", r)
	}
	load.stop()
}

// dashboardTitle returns the title of the dashboard with uid.
func dashboardTitle(ds []dashboard, uid string) string {
	for _, d := range ds {
		if d.UID == uid {
			return d.Title
		}
	}
	return ""
}

// hasNumber accepts a vector with at least one sample whose value is a
// number (not NaN).
func hasNumber(r []sample) error {
	if len(r) == 0 {
		return errors.New("no data")
	}
	for _, s := range r {
		if !math.IsNaN(s.value()) {
			return nil
		}
	}
	return fmt.Errorf("%d series, every value NaN", len(r))
}
