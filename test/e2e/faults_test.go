package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// retryCounters are the client sidecar's counters that account for a
// failed request: a request fails only when its retries ran out (it used
// every one of the route's retries), the retry budget refused a retry, or
// no healthy endpoint was left to pick.
type retryCounters struct {
	allowed, budgetExhausted, pickFailures float64
}

func (m *mesh) retryCounters(t *testing.T) retryCounters {
	t.Helper()
	page := scrape(t, m.clientAdmin+"/stats/prometheus")
	return retryCounters{
		allowed:         metric(page, "fedmesh_sidecar_lb_retries_total", `result="allowed"`),
		budgetExhausted: metric(page, "fedmesh_sidecar_lb_retries_total", `result="budget_exhausted"`),
		pickFailures:    metric(page, "fedmesh_sidecar_lb_pick_failures_total"),
	}
}

// routeRetries is the demo route's number of retries per request (the
// control plane's default, shown in the client's /config_dump).
func (m *mesh) routeRetries(t *testing.T) int {
	t.Helper()
	var dump struct {
		Services []struct {
			Retry struct {
				Retries int `json:"retries"`
			} `json:"retry"`
		} `json:"services"`
	}
	if err := getJSON("http://"+m.clientAdmin+"/config_dump", &dump); err != nil {
		t.Fatal(err)
	}
	if len(dump.Services) == 0 || dump.Services[0].Retry.Retries < 1 {
		t.Fatalf("client's route has no retries: %+v", dump.Services)
	}
	return dump.Services[0].Retry.Retries
}

// checkErrorsBounded fails the test unless every failed request of
// samples is accounted for by the retry counters' growth from before to
// after: at most one per refused retry or failed pick, and one per
// `retries` retries that were allowed.
func checkErrorsBounded(t *testing.T, what string, samples []demo.Sample, before, after retryCounters, retries int) {
	t.Helper()
	failed := len(failures(samples))
	bound := int(after.budgetExhausted-before.budgetExhausted) + int(after.pickFailures-before.pickFailures) +
		int(after.allowed-before.allowed)/retries
	if failed > bound {
		t.Errorf("%s: %d of %d requests failed, more than the retry budget accounts for (%d: %.0f retries allowed at %d a request, %.0f refused, %.0f failed picks)",
			what, failed, len(samples), bound, after.allowed-before.allowed, retries,
			after.budgetExhausted-before.budgetExhausted, after.pickFailures-before.pickFailures)
	}
}

const probeSNI = "9090.probe.demo.svc.clusterset.local"

// TestControlPlaneKilled kills east-1's control plane under steady load:
// the data plane keeps serving on its last configuration, with no failed
// request. Restarted on the same data directory, the control plane is
// ready, agrees with its peers on the view, its sidecars and gateway
// reconnect, and a change of its source reaches the client's sidecar.
func TestControlPlaneKilled(t *testing.T) {
	m := startMesh(t, meshSpec{})
	east1 := m.cluster("east-1")
	l := m.startLoad(50, 90*time.Second)
	l.waitServedBy(t, "east-1", time.Now(), 20*time.Second)

	versions := func() (map[string]string, error) {
		var dump struct {
			Versions map[string]string `json:"versions"`
		}
		err := getJSON("http://"+m.clientAdmin+"/config_dump", &dump)
		return dump.Versions, err
	}
	before, err := versions()
	if err != nil {
		t.Fatal(err)
	}
	reconnects0 := metric(scrape(t, m.clientAdmin+"/stats/prometheus"), "fedmesh_xds_stream_reconnects_total")

	killedAt := time.Now()
	m.kill(cpName(east1))
	poll.Until(t, 30*time.Second, "the client's sidecar notices its control plane is gone", func() error {
		if v := metric(scrape(t, m.clientAdmin+"/stats/prometheus"), "fedmesh_xds_connected"); v != 0 {
			return fmt.Errorf("fedmesh_xds_connected = %v", v)
		}
		return nil
	})
	// Serve at least 150 requests (3 s at 50/s) with the control plane
	// gone.
	poll.Until(t, 30*time.Second, "150 requests with the control plane down", func() error {
		if n := len(l.Since(killedAt)); n < 150 {
			return fmt.Errorf("%d requests so far", n)
		}
		return nil
	})
	after, err := versions()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the client's config changed while its control plane was down: %v, was %v", after, before)
	}

	restartedAt := time.Now()
	cp := m.restart(cpName(east1))
	waitReady(t, cp, east1.Admin())
	readyAt := time.Now()
	poll.Until(t, 60*time.Second, "the federation converges", m.converged)
	convergedAt := time.Now()
	// The sidecars' streams answer at once: the restarted control plane
	// issues them new certificates. (The gateway's is checked below by a
	// config change: its resources did not change, so the control plane
	// has nothing to send until they do, and its xDS client counts a
	// stream as connected only from the first response.)
	for _, addr := range []string{m.clientAdmin, workloadIP(east1, 1) + ":15000", workloadIP(east1, 2) + ":15000"} {
		poll.Until(t, 30*time.Second, addr+" reconnects to its control plane", func() error {
			page := scrape(t, addr+"/stats/prometheus")
			if v := metric(page, "fedmesh_xds_connected"); v != 1 {
				return fmt.Errorf("fedmesh_xds_connected = %v", v)
			}
			return nil
		})
	}
	reconnectedAt := time.Now()
	if r := metric(scrape(t, m.clientAdmin+"/stats/prometheus"), "fedmesh_xds_stream_reconnects_total"); r <= reconnects0 {
		t.Errorf("fedmesh_xds_stream_reconnects_total = %v, want more than %v after the restart", r, reconnects0)
	}

	// A change of east-1's source reaches the client's sidecar and
	// east-1's gateway through the restarted control plane: a new
	// exported service with one (idle) workload.
	src := filepath.Join(m.dir, east1.Name, "source", "probe.yaml")
	probe := "apiVersion: v1\nkind: Service\nmetadata: {name: probe, namespace: demo}\nspec:\n  selector: {app: probe}\n  ports: [{name: http, port: 9090, appProtocol: http}]\n---\n" +
		"apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: probe, namespace: demo}\n---\n" +
		"apiVersion: fedmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: probe-1, namespace: demo, labels: {app: probe}}\n" +
		"spec: {address: " + workloadIP(east1, 50) + ", ports: {http: 15006}, serviceAccount: probe, zone: " + east1.Zone + "}\n"
	if err := os.WriteFile(src, []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the client's sidecar gets the new service", func() error {
		var dump struct {
			Services []struct {
				SNI string `json:"sni"`
			} `json:"services"`
		}
		if err := getJSON("http://"+m.clientAdmin+"/config_dump", &dump); err != nil {
			return err
		}
		for _, s := range dump.Services {
			if s.SNI == probeSNI {
				return nil
			}
		}
		return fmt.Errorf("services: %+v", dump.Services)
	})
	poll.Until(t, 30*time.Second, "east-1's gateway gets the new route", func() error {
		var routes []struct {
			SNI string `json:"sni"`
		}
		if err := getJSON("http://"+east1.IP+":15021/debug/routes", &routes); err != nil {
			return err
		}
		for _, r := range routes {
			if r.SNI == probeSNI {
				return nil
			}
		}
		return fmt.Errorf("routes: %+v", routes)
	})
	propagatedAt := time.Now()

	l.stop()
	samples := l.Since(killedAt)
	if f := failures(samples); len(f) > 0 {
		t.Errorf("%d of %d requests failed while east-1's control plane was killed and restarted: %s", len(f), len(samples), summarize(f))
	}
	if n := len(samples) - len(failures(samples)); n == 0 {
		t.Errorf("no request served after the kill")
	}
	t.Logf("control plane killed: %d requests, %d failed (%s); restarted: ready in %v, federation converged %v after the restart, sidecars reconnected %v after it, a source change reached the client in %v",
		len(samples), len(failures(samples)), summarize(samples), readyAt.Sub(restartedAt).Round(time.Millisecond),
		convergedAt.Sub(restartedAt).Round(time.Millisecond), reconnectedAt.Sub(restartedAt).Round(time.Millisecond),
		propagatedAt.Sub(reconnectedAt).Round(time.Millisecond))
}

// TestGatewayKilled sends the client's traffic to east-2 (east-1's echo is
// down), kills east-2's gateway: traffic fails over to west-1 within the
// retry budget; the gateway restarted, traffic comes back to east-2.
func TestGatewayKilled(t *testing.T) {
	m := startMesh(t, meshSpec{})
	east1, east2 := m.cluster("east-1"), m.cluster("east-2")
	retries := m.routeRetries(t)
	l := m.startLoad(50, 120*time.Second)
	m.killEcho(east1)
	l.waitServedBy(t, "east-2", time.Now(), 30*time.Second)

	ej0 := metric(scrape(t, m.clientAdmin+"/stats/prometheus"), "fedmesh_sidecar_lb_ejections_total")
	rc0 := m.retryCounters(t)
	killedAt := time.Now()
	m.kill(gatewayName(east2))
	switchedAt := l.waitServedBy(t, "west-1", killedAt, 30*time.Second)
	rc1 := m.retryCounters(t)
	checkErrorsBounded(t, "failover from east-2's gateway", l.Since(killedAt), rc0, rc1, retries)
	if ej := metric(scrape(t, m.clientAdmin+"/stats/prometheus"), "fedmesh_sidecar_lb_ejections_total"); ej <= ej0 {
		t.Errorf("fedmesh_sidecar_lb_ejections_total = %v, want more than %v: east-2's gateway was not ejected", ej, ej0)
	}

	restartedAt := time.Now()
	failover := l.Between(killedAt, restartedAt)
	m.restart(gatewayName(east2))
	poll.Until(t, 30*time.Second, "gateway east-2 ready", func() error { return wantOK(east2.IP + ":15021/ready") })
	backAt := l.waitServedBy(t, "east-2", restartedAt, 90*time.Second)
	l.stop()
	recovery := l.Between(restartedAt, backAt)
	if f := failures(recovery); len(f) > 0 {
		t.Errorf("%d requests failed while traffic returned to the restarted gateway: %s", len(f), summarize(f))
	}
	t.Logf("gateway killed: traffic on west-1 %v after the kill, %d of %d requests failed, error window %v; restarted: back on east-2 %v after the restart",
		switchedAt.Sub(killedAt).Round(time.Millisecond), len(failures(failover)), len(failover), errorWindow(failover),
		backAt.Sub(restartedAt).Round(time.Millisecond))
}

// inboundSerial returns the serial of the certificate a sidecar presents
// on its inbound mTLS listener for the server name sni. The handshake may
// then fail (this client has no certificate): only the server's
// certificate is wanted.
func inboundSerial(addr, sni string) (string, error) {
	var serial string
	cfg := &tls.Config{
		ServerName:         sni,
		InsecureSkipVerify: true, // only reads the certificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no certificate")
			}
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			serial = c.SerialNumber.Text(16)
			return nil
		},
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, cfg)
	if conn != nil {
		conn.Close()
	}
	if serial != "" {
		return serial, nil
	}
	return "", fmt.Errorf("no certificate from %s: %v", addr, err)
}

// TestCertificateRotation runs the clusters with 20 s certificates, which
// renew at half life, under steady traffic: the sidecars' certificates
// change twice and no request fails; the federation stays converged on
// its renewed control-plane certificates.
func TestCertificateRotation(t *testing.T) {
	m := startMesh(t, meshSpec{certTTL: 20 * time.Second})
	east1 := m.cluster("east-1")
	clientNotAfter := func() (string, error) {
		var dump struct {
			Certificate struct {
				NotAfter string `json:"notAfter"`
			} `json:"certificate"`
		}
		err := getJSON("http://"+m.clientAdmin+"/config_dump", &dump)
		return dump.Certificate.NotAfter, err
	}
	echoAddr := workloadIP(east1, 1) + ":15006"
	serials := []string{}
	notAfters := []string{}
	record := func() error {
		s, err := inboundSerial(echoAddr, "8080.echo.demo.svc.clusterset.local")
		if err != nil {
			return err
		}
		n, err := clientNotAfter()
		if err != nil {
			return err
		}
		if len(serials) == 0 || serials[len(serials)-1] != s {
			serials = append(serials, s)
		}
		if len(notAfters) == 0 || notAfters[len(notAfters)-1] != n {
			notAfters = append(notAfters, n)
		}
		return nil
	}
	if err := record(); err != nil {
		t.Fatal(err)
	}
	issued := func() float64 {
		return metric(scrape(t, east1.Admin()+"/metrics"), "fedmesh_xds_certificates_issued_total", `result="ok"`)
	}
	issued0 := issued()
	start := time.Now()
	l := m.startLoad(50, 60*time.Second)
	poll.Until(t, 50*time.Second, "25 s of traffic and two renewals of the echo's and the client's certificates", func() error {
		if err := record(); err != nil {
			return err
		}
		if len(serials) < 3 || len(notAfters) < 3 {
			return fmt.Errorf("echo serials %v, client notAfter %v", serials, notAfters)
		}
		if d := time.Since(start); d < 25*time.Second {
			return fmt.Errorf("%v of traffic so far", d.Round(time.Second))
		}
		return nil
	})
	elapsed := time.Since(start)
	// Renewal at half life: each identity (echo, client, the gateway's)
	// renews about every ttl/2; a renewal storm issues far more.
	if n, bound := issued()-issued0, 3*(elapsed.Seconds()/8+1); n > bound {
		t.Errorf("east-1's control plane issued %.0f certificates in %v, want at most %.0f (renewal at half life of 20 s)", n, elapsed.Round(time.Second), bound)
	}
	if bound := int(elapsed.Seconds()/8) + 2; len(serials) > bound {
		t.Errorf("echo-1 presented %d certificates in %v, want at most %d", len(serials), elapsed.Round(time.Second), bound)
	}
	l.stop()
	samples := l.Since(start)
	if f := failures(samples); len(f) > 0 {
		t.Errorf("%d of %d requests failed during certificate rotation: %s", len(f), len(samples), summarize(f))
	}
	if r := demo.Evaluate(demo.Phase{Expect: "east-1", MinShare: 100}, start, samples); !r.OK {
		t.Errorf("traffic left east-1 during rotation: %s", r.Reason)
	}
	poll.Until(t, 30*time.Second, "the federation stays converged on renewed certificates", m.converged)
	t.Logf("certificate rotation: %d requests over %v, %d failed; echo serials %v; client notAfter %v",
		len(samples), time.Since(start).Round(time.Millisecond), len(failures(samples)), serials, notAfters)
}
