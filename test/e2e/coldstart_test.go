package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// coldTTL is the certificate lifetime of TestAllControlPlanesDown: renewed
// at half life, so every 30 s; coldOutage is longer than that.
const (
	coldTTL    = 60 * time.Second
	coldOutage = coldTTL/2 + 3*time.Second
)

// sidecarView is what the test reads of a sidecar's /config_dump.
type sidecarView struct {
	XDS struct {
		Connected bool   `json:"connected"`
		Source    string `json:"source"`
	} `json:"xds"`
	Certificate struct {
		NotAfter string `json:"notAfter"`
	} `json:"certificate"`
}

func sidecarState(admin string) (sidecarView, error) {
	var v sidecarView
	err := getJSON("http://"+admin+"/config_dump", &v)
	return v, err
}

// TestAllControlPlanesDown kills every control plane, and with it its
// embedded etcd, for longer than a certificate renewal interval while the
// client's traffic crosses to east-2: no request fails. During the outage
// west-1's gateway and one of its echo sidecars restart and serve from
// their persisted state (/ready says stale config; the sidecar presents
// the certificate it had; the gateway routes to it). The control planes
// come back and every sidecar reconnects; the time is logged.
func TestAllControlPlanesDown(t *testing.T) {
	m := startMesh(t, meshSpec{certTTL: coldTTL, fencePeriod: 60 * time.Second})
	east1, east2, west1 := m.cluster("east-1"), m.cluster("east-2"), m.cluster("west-1")
	l := m.startLoad(50, 4*time.Minute)
	m.killEcho(east1)
	steady := l.waitServedBy(t, east2.Name, time.Now(), 60*time.Second)
	t.Logf("cross-cluster load served by east-2 from %v", steady.Format("15:04:05.000"))

	type watched struct{ name, admin string }
	sidecars := []watched{{"client", m.clientAdmin}}
	for _, c := range []demo.Cluster{east2, west1} {
		for r := 1; r <= m.spec.replicas; r++ {
			sidecars = append(sidecars, watched{sidecarName(c, fmt.Sprintf("echo-%d", r)), workloadIP(c, r) + ":15000"})
		}
	}
	// Certificates renew at half life, and not while the control planes
	// are down: start the outage when every sidecar's certificate outlives
	// it, i.e. soon after the renewals.
	poll.Until(t, coldTTL+30*time.Second, "every sidecar's certificate outlives the outage", func() error {
		for _, s := range sidecars {
			v, err := sidecarState(s.admin)
			if err != nil {
				return err
			}
			na, err := time.Parse(time.RFC3339, v.Certificate.NotAfter)
			if err != nil {
				return fmt.Errorf("%s: certificate notAfter %q: %w", s.name, v.Certificate.NotAfter, err)
			}
			if left := time.Until(na); left < coldOutage+5*time.Second {
				return fmt.Errorf("%s: certificate valid for %v more", s.name, left.Round(time.Second))
			}
		}
		return nil
	})

	const sni = "8080.echo.demo.svc.clusterset.local"
	restartedSidecar := sidecarName(west1, "echo-1")
	echo1Inbound := workloadIP(west1, 1) + ":15006"
	echo1Admin := workloadIP(west1, 1) + ":15000"
	serialBefore, err := inboundSerial(echo1Inbound, sni)
	if err != nil {
		t.Fatal(err)
	}

	downAt := time.Now()
	for _, c := range m.clusters {
		m.kill(cpName(c))
	}
	t.Logf("every control plane killed at %v", downAt.Format("15:04:05.000"))

	// West-1's gateway and echo-1 sidecar restart with no control plane.
	m.kill(gatewayName(west1))
	m.kill(restartedSidecar)
	m.restart(gatewayName(west1))
	m.restart(restartedSidecar)
	poll.Until(t, 30*time.Second, "restarted gateway ready from its persisted state", func() error {
		code, body, err := httpGet("http://" + west1.IP + ":15021/ready")
		if err != nil {
			return err
		}
		if code != 200 || !strings.Contains(body, "stale config") {
			return fmt.Errorf("/ready: %d %q", code, body)
		}
		return nil
	})
	poll.Until(t, 30*time.Second, "restarted sidecar ready from its persisted state", func() error {
		code, body, err := httpGet("http://" + echo1Admin + "/ready")
		if err != nil {
			return err
		}
		if code != 200 || !strings.Contains(body, "stale config") {
			return fmt.Errorf("/ready: %d %q", code, body)
		}
		return nil
	})
	if n := metric(scrape(t, echo1Admin+"/stats/prometheus"), "fedmesh_xds_config_source", `source="persisted"`); n != 1 {
		t.Errorf("restarted sidecar: fedmesh_xds_config_source{source=\"persisted\"} = %v, want 1", n)
	}
	if n := metric(scrape(t, west1.IP+":15021/stats/prometheus"), "fedmesh_xds_config_source", `source="persisted"`); n != 1 {
		t.Errorf("restarted gateway: fedmesh_xds_config_source{source=\"persisted\"} = %v, want 1", n)
	}
	// The restarted sidecar serves mTLS with the certificate it persisted,
	// directly and through the restarted gateway's persisted routes.
	if s, err := inboundSerial(echo1Inbound, sni); err != nil || s != serialBefore {
		t.Errorf("restarted sidecar presents serial %q (%v), want the persisted %q", s, err, serialBefore)
	}
	poll.Until(t, 30*time.Second, "the restarted gateway routes to the restarted sidecar", func() error {
		s, err := inboundSerial(west1.IP+":15443", sni)
		if err != nil {
			return err
		}
		if s != serialBefore {
			return fmt.Errorf("reached a certificate with serial %s, not echo-1's %s", s, serialBefore)
		}
		return nil
	})

	// Stay down past a renewal interval, then bring the control planes
	// back.
	if d := coldOutage - time.Since(downAt); d > 0 {
		time.Sleep(d) // the outage is a fault of fixed length
	}
	for _, c := range m.clusters {
		m.restart(cpName(c))
	}
	var upAt time.Time
	for _, c := range m.clusters {
		waitReady(t, m.proc(cpName(c)), c.Admin())
	}
	upAt = time.Now()
	t.Logf("control planes down for %v, all ready again at %v", upAt.Sub(downAt).Round(time.Millisecond), upAt.Format("15:04:05.000"))
	reconnected := map[string]time.Duration{}
	poll.Until(t, 60*time.Second, "every sidecar on the control plane's config again", func() error {
		for _, s := range sidecars {
			if _, ok := reconnected[s.name]; ok {
				continue
			}
			v, err := sidecarState(s.admin)
			if err != nil {
				return err
			}
			if !v.XDS.Connected || v.XDS.Source != "control_plane" {
				return fmt.Errorf("%s: connected %v, source %q", s.name, v.XDS.Connected, v.XDS.Source)
			}
			reconnected[s.name] = time.Since(upAt)
		}
		return nil
	})
	poll.Until(t, 30*time.Second, "restarted gateway on the control plane's config", func() error {
		code, body, err := httpGet("http://" + west1.IP + ":15021/ready")
		if err != nil {
			return err
		}
		if code != 200 || body != "ok\n" {
			return fmt.Errorf("/ready: %d %q", code, body)
		}
		return nil
	})
	endAt := time.Now()
	l.stop()

	samples := l.Between(downAt, endAt)
	if f := failures(samples); len(f) > 0 {
		t.Errorf("%d of %d requests failed during the outage and the reconnect: %s", len(f), len(samples), summarize(f))
	}
	if len(samples) == 0 {
		t.Fatal("no requests during the outage")
	}
	var worst time.Duration
	var figures []string
	for _, s := range sidecars {
		d := reconnected[s.name]
		worst = max(worst, d)
		figures = append(figures, fmt.Sprintf("%s %v", s.name, d.Round(time.Millisecond)))
	}
	t.Logf("outage %v: %d requests, %d failed (%s); sidecars back on the control planes' config at most %v after they were ready (%s)",
		upAt.Sub(downAt).Round(time.Millisecond), len(samples), len(failures(samples)), summarize(samples), worst.Round(time.Millisecond), strings.Join(figures, ", "))
}
