package sidecar_test

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/sidecar"
)

func adminGet(t *testing.T, w *workload, path string) (int, []byte) {
	t.Helper()
	return getPage(t, w.sc.AdminAddr(), path)
}

func getPage(t *testing.T, addr, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestAdminPages reads a real sidecar's admin pages: /ready before and
// after its configuration arrives, and what /config_dump and /endpoints
// say about the running pair.
func TestAdminPages(t *testing.T) {
	m := newMesh(t)
	lone := m.start(wopts{node: "lone", ns: "demo", sa: "lone", workload: "lone"})
	code, body := adminGet(t, lone, "/ready")
	if diff := cmp.Diff("503 not ready: no workload certificate from SDS yet\n", strconv.Itoa(code)+" "+string(body)); diff != "" {
		t.Errorf("/ready without configuration (-want +got):\n%s", diff)
	}

	code, body = getPage(t, lone.sc.ReadyAddr(), "/ready")
	if diff := cmp.Diff("503 not ready: no workload certificate from SDS yet\n", strconv.Itoa(code)+" "+string(body)); diff != "" {
		t.Errorf("/ready of the ready listener without configuration (-want +got):\n%s", diff)
	}

	p := newPair(t)
	code, body = adminGet(t, p.client, "/ready")
	if diff := cmp.Diff("200 ready\n", strconv.Itoa(code)+" "+string(body)); diff != "" {
		t.Errorf("/ready (-want +got):\n%s", diff)
	}
	// The ready listener, for probes and Prometheus from outside, answers
	// /ready and the metrics alone.
	code, body = getPage(t, p.client.sc.ReadyAddr(), "/ready")
	if diff := cmp.Diff("200 ready\n", strconv.Itoa(code)+" "+string(body)); diff != "" {
		t.Errorf("/ready of the ready listener (-want +got):\n%s", diff)
	}
	if code, body := getPage(t, p.client.sc.ReadyAddr(), "/stats/prometheus"); code != http.StatusOK || !strings.Contains(string(body), "# TYPE fedmesh_xds_connected gauge") {
		t.Errorf("/stats/prometheus of the ready listener: %d, want 200 with the sidecar's metrics:\n%s", code, body)
	}
	if code, body := getPage(t, p.client.sc.ReadyAddr(), "/config_dump"); code != http.StatusNotFound {
		t.Errorf("/config_dump of the ready listener: %d %s, want 404", code, body)
	}

	code, body = adminGet(t, p.client, "/config_dump")
	var dump sidecar.ConfigDumpView
	if err := json.Unmarshal(body, &dump); code != 200 || err != nil {
		t.Fatalf("/config_dump: %d %v\n%s", code, err, body)
	}
	var services []string
	for _, s := range dump.Services {
		services = append(services, s.Port.String()+" "+string(s.Protocol))
	}
	sort.Strings(services)
	got := map[string]any{
		"cluster":   dump.Node.Cluster,
		"workload":  dump.Node.Workload,
		"outbound":  dump.Node.Outbound,
		"cert":      dump.Cert.ID,
		"connected": dump.XDS.Connected,
		"services":  services,
	}
	want := map[string]any{
		"cluster":   "east-1",
		"workload":  "client",
		"outbound":  p.client.sc.OutboundAddr(),
		"cert":      p.m.ca.Workload("demo", "client"),
		"connected": true,
		"services": sorted(
			svc("echo", p.httpP).String()+" http",
			svc("echo-grpc", p.grpcP).String()+" http",
			svc("echo-tcp", p.tcpP).String()+" tcp",
		),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/config_dump (-want +got):\n%s", diff)
	}

	code, body = adminGet(t, p.client, "/endpoints")
	var eps []sidecar.EndpointsView
	if err := json.Unmarshal(body, &eps); code != 200 || err != nil {
		t.Fatalf("/endpoints: %d %v\n%s", code, err, body)
	}
	gotEps := map[string][]string{}
	for _, e := range eps {
		for _, h := range e.Balancer.Hosts {
			gotEps[e.Service] = append(gotEps[e.Service], h.Endpoint.Address)
		}
	}
	in := p.server.sc.InboundAddr()
	wantEps := map[string][]string{
		svc("echo", p.httpP).String():      {in},
		svc("echo-grpc", p.grpcP).String(): {in},
		svc("echo-tcp", p.tcpP).String():   {in},
	}
	if diff := cmp.Diff(wantEps, gotEps); diff != "" {
		t.Errorf("/endpoints hosts by service (-want +got):\n%s", diff)
	}
}

func sorted(s ...string) []string {
	sort.Strings(s)
	return s
}
