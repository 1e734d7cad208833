package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// Tracing end to end: the sidecars export to a real Jaeger (v1.75.0,
// built by scripts/telemetry-tools.sh), which the test queries through
// its HTTP API.

// telemetryTools returns the directory holding the jaeger binary, from
// FEDMESH_TELEMETRY_TOOLS or scripts/telemetry-tools.sh --check. Without
// it the test skips, except in CI (CI=true), where `make test` builds it
// and its absence is a failure.
func telemetryTools(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FEDMESH_TELEMETRY_TOOLS")
	if dir == "" {
		if out, err := exec.Command("bash", filepath.Join("..", "..", "scripts", "telemetry-tools.sh"), "--check").Output(); err == nil {
			dir = strings.TrimSpace(string(out))
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "jaeger")); dir == "" || err != nil || st.Mode()&0o111 == 0 {
		why := "jaeger is not built: run `bash scripts/telemetry-tools.sh` (3-4 minutes the first time) or set FEDMESH_TELEMETRY_TOOLS to the directory that holds it"
		if os.Getenv("CI") == "true" {
			t.Fatal(why + " (CI runs `make test`, which builds it)")
		}
		t.Skip(why)
	}
	return dir
}

// startCmd runs the program bin (not fedmesh) with args, as start does:
// its output goes to LOGDIR/NAME.log and it is stopped at cleanup.
func (e *env) startCmd(name, bin string, args ...string) *proc {
	e.t.Helper()
	f, err := os.OpenFile(filepath.Join(e.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	fmt.Fprintf(f, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		e.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, args: args, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

// jaeger is a running Jaeger all-in-one with in-memory storage.
type jaeger struct {
	otlpGRPC, otlpHTTP, query string
}

// freePorts returns n loopback addresses whose ports were free a moment
// ago (Jaeger takes its ports from its configuration, not from port 0;
// startJaeger fails fast and tries again if one was taken since).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// startJaeger runs Jaeger on free loopback ports until the test ends.
func startJaeger(t *testing.T, e *env) *jaeger {
	t.Helper()
	bin := filepath.Join(telemetryTools(t), "jaeger")
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 4)
		j := &jaeger{query: ports[0], otlpGRPC: ports[2], otlpHTTP: ports[3]}
		cfg := filepath.Join(t.TempDir(), "jaeger.yaml")
		if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, ports[0], ports[1], ports[2], ports[3]), 0o644); err != nil {
			t.Fatal(err)
		}
		p := e.startCmd(fmt.Sprintf("jaeger-%d", attempt), bin, "--config", cfg)
		var err error
		poll.Until(t, 60*time.Second, "jaeger serving its query API and OTLP receivers", func() error {
			if p.exited() {
				err = fmt.Errorf("jaeger exited: %v (log in %s)", p.err, e.logDir)
				return nil
			}
			if _, _, qerr := httpGet("http://" + j.query + "/api/services"); qerr != nil {
				return qerr
			}
			for _, a := range []string{j.otlpGRPC, j.otlpHTTP} {
				c, derr := net.DialTimeout("tcp", a, time.Second)
				if derr != nil {
					return derr
				}
				c.Close()
			}
			return nil
		})
		if err == nil {
			return j
		}
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v; trying other ports", attempt, err)
	}
}

// jaegerTrace is the part of a trace of Jaeger's HTTP API the test reads.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags      []jaegerKV                    `json:"tags"`
		Logs      []struct{ Fields []jaegerKV } `json:"logs"`
		ProcessID string                        `json:"processID"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

type jaegerKV struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

func tagMap(kvs []jaegerKV) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = fmt.Sprint(kv.Value)
	}
	return m
}

// traces asks Jaeger for the traces of service.
func (j *jaeger) traces(service string) ([]jaegerTrace, error) {
	var v struct {
		Data []jaegerTrace `json:"data"`
	}
	err := getJSON("http://"+j.query+"/api/traces?"+url.Values{"service": {service}, "limit": {"100"}, "lookback": {"1h"}}.Encode(), &v)
	return v.Data, err
}

// TestTracingFailover: the client in east-1 calls echo while east-1's
// echo app is down; its sidecar answers 502, the client sidecar retries
// in east-2. Jaeger receives one trace (under the caller's trace id)
// with the client sidecar's CLIENT span, a child of the caller's span,
// carrying the retry and failover events and the cluster attributes, and
// a SERVER span from each echo sidecar tried, both children of the client
// span. The client's sidecar exports over OTLP gRPC, the echo sidecars
// over OTLP HTTP.
func TestTracingFailover(t *testing.T) {
	e := newEnv(t)
	j := startJaeger(t, e)
	m := startMesh(t, meshSpec{replicas: 1, sidecarArgs: func(workload string) []string {
		if workload == "client" {
			return []string{"--otlp-endpoint", j.otlpGRPC, "--otlp-protocol", "grpc", "--trace-sampling", "0"}
		}
		return []string{"--otlp-endpoint", "http://" + j.otlpHTTP, "--otlp-protocol", "http", "--trace-sampling", "0"}
	}})
	east1 := m.cluster("east-1")
	m.kill(echoApp(east1, 1))

	// The caller's sampled span: at --trace-sampling 0 only a trace the
	// caller samples is recorded, so no other request pollutes the
	// result.
	tid, sid := randomHex(t, 16), randomHex(t, 8)
	req, err := http.NewRequest(http.MethodGet, echoURL+"traced", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Traceparent", "00-"+tid+"-"+sid+"-01")
	resp, err := m.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Cluster string `json:"cluster"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rep)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || rep.Cluster == "" || rep.Cluster == east1.Name {
		t.Fatalf("got %d %s from %q (%v), want 200 from another cluster than east-1", resp.StatusCode, resp.Header.Get("X-Fedmesh-Error"), rep.Cluster, err)
	}
	served := rep.Cluster

	var tr jaegerTrace
	poll.Until(t, 60*time.Second, "jaeger has the trace with three spans", func() error {
		ts, err := j.traces("client.demo")
		if err != nil {
			return err
		}
		for _, x := range ts {
			if x.TraceID == tid {
				if len(x.Spans) < 3 {
					return fmt.Errorf("the trace has %d spans so far", len(x.Spans))
				}
				tr = x
				return nil
			}
		}
		return fmt.Errorf("%d traces of client.demo, none is %s", len(ts), tid)
	})
	if len(tr.Spans) != 3 {
		t.Fatalf("trace has %d spans, want the client span and two server spans", len(tr.Spans))
	}
	type span struct {
		id, parent, service string
		tags                map[string]string
		events              []map[string]string
	}
	var client span
	servers := map[string]span{} // by fedmesh.cluster
	for _, s := range tr.Spans {
		x := span{id: s.SpanID, service: tr.Processes[s.ProcessID].ServiceName, tags: tagMap(s.Tags)}
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" {
				x.parent = r.SpanID
			}
		}
		for _, l := range s.Logs {
			x.events = append(x.events, tagMap(l.Fields))
		}
		switch x.tags["span.kind"] {
		case "client":
			client = x
		case "server":
			servers[x.tags["fedmesh.cluster"]] = x
		}
	}
	if client.id == "" || len(servers) != 2 {
		t.Fatalf("want one client span and server spans in two clusters, got client %q and servers in %v", client.id, keys(servers))
	}
	if client.service != "client.demo" || client.parent != sid {
		t.Errorf("client span of %q, parent %q: want client.demo, a child of the caller's span %s", client.service, client.parent, sid)
	}
	for k, v := range map[string]string{
		"fedmesh.cluster": "east-1", "fedmesh.source_cluster": "east-1", "fedmesh.destination_cluster": served,
		"fedmesh.locality": east1.Region + "/" + east1.Zone, "fedmesh.service": "demo/echo:8080",
		"fedmesh.attempts": "2", "http.response.status_code": "200",
	} {
		if client.tags[k] != v {
			t.Errorf("client span %s = %q, want %q", k, client.tags[k], v)
		}
	}
	if p := client.tags["fedmesh.priority"]; p == "" || p == "0" {
		t.Errorf("client span fedmesh.priority = %q, want the failover priority (> 0)", p)
	}
	sc := m.cluster(served)
	if client.tags["server.address"] != sc.IP || client.tags["fedmesh.destination_locality"] != sc.Region+"/"+sc.Zone {
		t.Errorf("client span endpoint %s in %s, want %s's gateway %s in %s/%s", client.tags["server.address"], client.tags["fedmesh.destination_locality"], served, sc.IP, sc.Region, sc.Zone)
	}
	var names []string
	for _, ev := range client.events {
		names = append(names, ev["event"])
	}
	if strings.Join(names, ",") != "retry,failover" {
		t.Errorf("client span events %v, want [retry failover]", names)
	} else if f := client.events[1]; f["fedmesh.from_cluster"] != "east-1" || f["fedmesh.to_cluster"] != served {
		t.Errorf("failover event %v, want from east-1 to %s", f, served)
	}
	for cluster, want := range map[string]map[string]string{
		"east-1": {"http.response.status_code": "502", "fedmesh.source_cluster": "east-1", "fedmesh.destination_cluster": "east-1"},
		served:   {"http.response.status_code": "200", "fedmesh.source_cluster": "east-1", "fedmesh.destination_cluster": served},
	} {
		s := servers[cluster]
		if s.parent != client.id || s.service != "echo-1.demo" {
			t.Errorf("%s server span of %q with parent %q, want echo-1.demo, a child of the client span %s", cluster, s.service, s.parent, client.id)
		}
		for k, v := range want {
			if s.tags[k] != v {
				t.Errorf("%s server span %s = %q, want %q", cluster, k, s.tags[k], v)
			}
		}
		if s.tags["fedmesh.source_principal"] != "spiffe://"+trustDomain+"/ns/demo/sa/client" {
			t.Errorf("%s server span source principal %q", cluster, s.tags["fedmesh.source_principal"])
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
