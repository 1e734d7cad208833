package sidecar_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

func readyBody(t testing.TB, w *workload) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + w.sc.AdminAddr() + "/ready")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A sidecar restarted while its control plane is down serves from the
// configuration, certificate, key and bundle it persisted: /ready says
// ready with a stale-config note, the metric says persisted, and requests
// go through with mTLS. Once the control plane is back its config
// replaces the persisted one.
func TestColdStartFromPersistedState(t *testing.T) {
	m := newMesh(t)
	app := meshtest.StartHTTP(t, "echo", "")
	port := meshtest.FreePort(t)
	server := m.start(wopts{node: "server", ns: "demo", sa: "echo", workload: "echo", inbound: "127.0.0.1:0"})
	in := server.sc.InboundAddr()
	hs := svc("echo", port)
	srv := map[string][]types.Resource{}
	inbound := meshtest.Inbound(in, meshtest.InboundPort{SP: hs, App: app.Addr, HTTP: true})
	rt(srv, ldsT, inbound[:1]...)
	rt(srv, cdsT, inbound[1:]...)
	rt(srv, sdsT, server.secrets(m.ca)...)
	m.set("server", srv)

	dir := t.TempDir()
	client := m.start(wopts{node: "client", ns: "demo", sa: "client", workload: "client", dataDir: dir})
	echoID := m.ca.Workload("demo", "echo")
	cl := map[string][]types.Resource{}
	rt(cl, cdsT, meshtest.OutboundCluster(hs, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}}))
	rt(cl, edsT, meshtest.Assignment(hs, meshtest.Endpoint{Addr: in, Cluster: "east-1", Identity: echoID, Healthy: true}))
	rt(cl, ldsT, meshtest.OutboundListener(hs, true))
	rt(cl, rdsT, meshtest.Routes(port, 15*time.Second, 2, hs))
	rt(cl, sdsT, client.secrets(m.ca)...)
	m.set("client", cl)
	server.ready(t)
	client.ready(t)
	url := "http://echo.demo.svc.clusterset.local:" + strconv.Itoa(int(port)) + "/"
	want := "echo " + m.ca.Workload("demo", "client") + "\n"
	if code, body, err := get(proxyClient(client), url); err != nil || code != 200 || body != want {
		t.Fatalf("before the outage: %d %q %v", code, body, err)
	}
	for _, f := range []string{"cluster", "endpoint", "listener", "route", "secret"} {
		path := filepath.Join(dir, "xds", f+".pb")
		poll.True(t, 30*time.Second, path+" written", func() bool { _, err := os.Stat(path); return err == nil })
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", path, fi.Mode().Perm())
		}
	}

	// The control plane goes away and the client restarts.
	client.stop()
	m.xds.Stop()
	restarted := m.start(wopts{node: "client", ns: "demo", sa: "client", workload: "client", dataDir: dir})
	restarted.ready(t)
	if code, body := readyBody(t, restarted); code != 200 || body != "ready ("+sidecar.StaleConfigNote+")\n" {
		t.Errorf("/ready while serving the persisted state: %d %q, want 200 with a stale config note", code, body)
	}
	if got := gaugeValue(t, restarted, "fedmesh_xds_config_source", "persisted"); got != 1 {
		t.Errorf("fedmesh_xds_config_source{source=persisted} = %v, want 1", got)
	}
	if code, body, err := get(proxyClient(restarted), url); err != nil || code != 200 || body != want {
		t.Fatalf("from the persisted state: %d %q %v", code, body, err)
	}

	// The control plane is back: its config replaces the persisted one.
	m.xds.Restart()
	poll.True(t, 30*time.Second, "the control plane's config in use", func() bool {
		return restarted.sc.XDS().Status().Source == "control_plane"
	})
	if code, body := readyBody(t, restarted); code != 200 || body != "ready\n" {
		t.Errorf("/ready after the control plane answered: %d %q, want plain ready", code, body)
	}
	if got := gaugeValue(t, restarted, "fedmesh_xds_config_source", "control_plane"); got != 1 {
		t.Errorf("fedmesh_xds_config_source{source=control_plane} = %v, want 1", got)
	}
}

// A sidecar whose persisted certificate has expired does not serve from
// the persisted state, and /ready says why.
func TestColdStartRefusesExpiredCertificate(t *testing.T) {
	m := newMesh(t)
	dir := t.TempDir()
	client := m.start(wopts{node: "client", ns: "demo", sa: "client", workload: "client", dataDir: dir})
	_, certPEM, keyPEM := m.ca.Issue(t, meshtest.SVID{URIs: []string{client.id}, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	port := meshtest.FreePort(t)
	hs := svc("echo", port)
	cl := map[string][]types.Resource{}
	rt(cl, cdsT, meshtest.OutboundCluster(hs, meshtest.ClusterOpts{HTTP: true}))
	rt(cl, ldsT, meshtest.OutboundListener(hs, true))
	rt(cl, sdsT, meshtest.Secrets(certPEM, keyPEM, m.ca.PEM())...)
	m.set("client", cl)
	poll.True(t, 30*time.Second, "secrets persisted", func() bool {
		_, err := os.Stat(filepath.Join(dir, "xds", "secret.pb"))
		return err == nil
	})
	client.stop()
	m.xds.Stop()
	restarted := m.start(wopts{node: "client", ns: "demo", sa: "client", workload: "client", dataDir: dir})
	var body string
	poll.True(t, 30*time.Second, "/ready says the persisted state was refused", func() bool {
		_, body = readyBody(t, restarted)
		return strings.Contains(body, "refused")
	})
	if !strings.Contains(body, "expired") || !strings.HasPrefix(body, "not ready") {
		t.Errorf("/ready %q, want not ready because the certificate expired", body)
	}
	if got := restarted.counter(t, "fedmesh_xds_persisted_rejected_total", map[string]string{"reason": "check"}); got != 1 {
		t.Errorf("persisted_rejected{reason=check} = %v, want 1", got)
	}
}

func gaugeValue(t testing.TB, w *workload, name, source string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == source {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}
