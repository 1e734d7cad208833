package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// inboundChain returns the certificate chain a sidecar's inbound
// listener presents for sni.
func inboundChain(addr, sni string) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	cfg := &tls.Config{
		ServerName:         sni,
		InsecureSkipVerify: true, // only reads the chain
		VerifyConnection: func(cs tls.ConnectionState) error {
			chain = cs.PeerCertificates
			return nil
		},
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, cfg)
	if conn != nil {
		conn.Close()
	}
	if len(chain) < 2 {
		return nil, fmt.Errorf("no chain from %s: %v", addr, err)
	}
	return chain, nil
}

// tlsRefusal dials addr presenting cert and sends one HTTP request. It
// returns the TLS alert with which the server refused the certificate,
// or nil when the server took it (whatever it answered then). With TLS
// 1.3 a refused client certificate shows on the first read.
func tlsRefusal(addr, sni string, cert tls.Certificate) error {
	cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		if strings.Contains(err.Error(), "remote error: tls") {
			return err
		}
		return nil
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: echo\r\n\r\n"); err != nil && strings.Contains(err.Error(), "remote error: tls") {
		return err
	}
	if _, err := conn.Read(make([]byte, 1)); err != nil && strings.Contains(err.Error(), "remote error: tls") {
		return err
	}
	return nil
}

// leafUnder signs a workload SVID demo/client of cluster under the root
// in rootDir, through a fresh intermediate: a certificate exactly like a
// real one of that root.
func leafUnder(t *testing.T, rootDir, cluster string) tls.Certificate {
	t.Helper()
	root, err := ca.LoadRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := root.IssueCluster(cluster, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.NewAuthority(files)
	if err != nil {
		t.Fatal(err)
	}
	is, err := auth.IssueWorkload("demo", "client", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return *is.TLS
}

// TestCARotation rotates east-2's intermediate and then the federation
// root, phase by phase in every cluster, while the client in east-1 sends
// steady traffic to east-2 (east-1's echo replicas are gone): no request
// fails, every leaf moves to the new CA, and once the old root is removed
// a certificate of the old root is refused by a sidecar, by a control
// plane's admin port and by a gateway (which follows the bundle over SDS
// and reconnects to its control plane on the new root).
func TestCARotation(t *testing.T) {
	const (
		certTTL = 20 * time.Second
		window  = 25 * time.Second // longer than certTTL
	)
	m := startMesh(t, meshSpec{certTTL: certTTL, controlPlaneArgs: []string{"--ca-reload-interval", "1s"}})
	east1, east2 := m.cluster("east-1"), m.cluster("east-2")
	echoInbound := workloadIP(east2, 1) + ":15006"
	const sni = "8080.echo.demo.svc.clusterset.local"

	m.killEcho(east1)
	l := m.startLoad(20, 170*time.Second)
	start := time.Now()
	l.waitServedBy(t, east2.Name, start, 30*time.Second)

	reloads := func(c demo.Cluster) float64 {
		return metric(scrape(t, c.Admin()+"/metrics"), "fedmesh_ca_reloads_total", `result="ok"`)
	}
	// waitTaken waits until every control plane in cs has taken one more
	// CA change than before and east-2's echo presents a certificate
	// issued after that.
	waitTaken := func(what string, before map[string]float64, cs ...demo.Cluster) {
		t.Helper()
		var taken time.Time
		poll.Until(t, 30*time.Second, what+": control planes took the CA change", func() error {
			for _, c := range cs {
				if n := reloads(c); n <= before[c.Name] {
					return fmt.Errorf("%s has taken %.0f changes", c.Name, n)
				}
			}
			taken = time.Now()
			return nil
		})
		poll.Until(t, 30*time.Second, what+": east-2's echo serves a certificate issued since", func() error {
			chain, err := inboundChain(echoInbound, sni)
			if err != nil {
				return err
			}
			if issued := chain[0].NotAfter.Add(-certTTL); issued.Before(taken.Add(-2 * time.Second)) {
				return fmt.Errorf("echo's certificate issued at %s", issued.Format(time.RFC3339))
			}
			return nil
		})
	}
	counts := func() map[string]float64 {
		out := map[string]float64{}
		for _, c := range m.clusters {
			out[c.Name] = reloads(c)
		}
		return out
	}

	// 1. east-2's intermediate.
	oldInter, err := inboundChain(echoInbound, sni)
	if err != nil {
		t.Fatal(err)
	}
	before := counts()
	m.cli("ca", "rotate", "intermediate", "--root-dir", m.path("root"), "--ca-dir", m.path(east2.Name, "ca"), "--window", window.String())
	waitTaken("intermediate", before, east2)
	chain, err := inboundChain(echoInbound, sni)
	if err != nil {
		t.Fatal(err)
	}
	if chain[1].Equal(oldInter[1]) {
		t.Fatal("east-2's echo still presents a leaf of the old intermediate")
	}
	t.Logf("intermediate rotated in %v of traffic", time.Since(start).Round(time.Millisecond))

	// 2. The root: add everywhere, switch everywhere, wait for the
	// window, remove everywhere.
	m.cli("ca", "init", "--trust-domain", trustDomain, "--dir", m.path("root2"))
	root2, err := ca.LoadRoot(m.path("root2"))
	if err != nil {
		t.Fatal(err)
	}
	before = counts()
	for _, c := range m.clusters {
		m.cli("ca", "rotate", "root", "--phase", "add", "--new-root-dir", m.path("root2"), "--ca-dir", m.path(c.Name, "ca"))
	}
	waitTaken("root add", before, m.clusters...)
	// The sidecars hold both roots once they have a certificate issued
	// after the add; the client's too (its notAfter).
	before = counts()
	for _, c := range m.clusters {
		m.cli("ca", "rotate", "root", "--phase", "switch", "--new-root-dir", m.path("root2"), "--ca-dir", m.path(c.Name, "ca"), "--window", window.String())
	}
	switched := time.Now()
	waitTaken("root switch", before, m.clusters...)
	chain, err = inboundChain(echoInbound, sni)
	if err != nil {
		t.Fatal(err)
	}
	if err := chain[1].CheckSignatureFrom(root2.Certificate()); err != nil {
		t.Fatalf("east-2's echo presents an intermediate not of the new root: %v", err)
	}
	// Operators move to the new root too; keep the old certificate to
	// try it after the removal.
	if err := os.Rename(m.path("operator"), m.path("operator-old")); err != nil {
		t.Fatal(err)
	}
	m.cli("ca", "issue-operator", "--root-dir", m.path("root2"), "--name", "e2e", "--out", m.path("operator"))
	oldOperator, err := tls.LoadX509KeyPair(filepath.Join(m.path("operator-old"), ca.OperatorCertFile), filepath.Join(m.path("operator-old"), ca.OperatorKeyFile))
	if err != nil {
		t.Fatal(err)
	}

	// Remove is refused inside the window (exit 3, nothing changed) and
	// taken after it.
	if _, stderr, code := m.e.run("ca", "rotate", "root", "--phase", "remove", "--ca-dir", m.path(east1.Name, "ca")); code != 3 {
		t.Fatalf("remove inside the window: exit %d (%s), want 3", code, stderr)
	}
	poll.Until(t, window+10*time.Second, "the window is over", func() error {
		if d := time.Since(switched); d < window+time.Second {
			return fmt.Errorf("%v of %v", d.Round(time.Second), window)
		}
		return nil
	})
	before = counts()
	for _, c := range m.clusters {
		m.cli("ca", "rotate", "root", "--phase", "remove", "--ca-dir", m.path(c.Name, "ca"))
	}
	waitTaken("root remove", before, m.clusters...)
	// A few more seconds of traffic on the new root alone.
	afterRemove := time.Now()
	poll.Until(t, 30*time.Second, "5 s of traffic after the removal", func() error {
		if n := len(l.Since(afterRemove)); n < 100 {
			return fmt.Errorf("%d requests since the removal", n)
		}
		return nil
	})
	l.stop()
	samples := l.Since(start)
	if f := failures(samples); len(f) > 0 {
		t.Errorf("%d of %d requests failed during the CA rotations: %s", len(f), len(samples), summarize(f))
	}
	if r := demo.Evaluate(demo.Phase{Expect: east2.Name, MinShare: 100}, start, samples); !r.OK {
		t.Errorf("traffic left east-2 during the rotations: %s", r.Reason)
	}

	// The old root is refused, the new one taken, by east-2's echo
	// sidecar; the old root's operator by east-2's admin port.
	if err := tlsRefusal(echoInbound, sni, leafUnder(t, m.path("root"), east1.Name)); err == nil {
		t.Error("east-2's echo sidecar took a certificate of the removed root")
	} else {
		t.Logf("old root refused by the sidecar: %v", err)
	}
	if err := tlsRefusal(echoInbound, sni, leafUnder(t, m.path("root2"), east1.Name)); err != nil {
		t.Errorf("east-2's echo sidecar refused a certificate of the new root: %v", err)
	}
	adminAddr := strings.TrimPrefix(east2.Admin(), "https://")
	if err := tlsRefusal(adminAddr, "", oldOperator); err == nil {
		t.Error("east-2's admin port took an operator certificate of the removed root")
	}
	checkGatewayFollowsRoot(t, m, east2)
	poll.Until(t, 30*time.Second, "the federation stays converged on the new root", m.converged)
	t.Logf("CA rotations: %d requests over %v, %d failed", len(samples), time.Since(start).Round(time.Millisecond), len(failures(samples)))
}

// checkGatewayFollowsRoot: after the old root's removal, c's gateway,
// which started with a bundle of the old root alone (--root-bundle),
// trusts what SDS sent it: it answers a probe of itself for a control
// plane certificate of the new root and refuses one of the old root, and
// it reconnects to its control plane restarted on the new root.
func checkGatewayFollowsRoot(t *testing.T, m *mesh, c demo.Cluster) {
	t.Helper()
	gw := net.JoinHostPort(c.IP, "15443")
	if err := gatewaySelfProbe(gw, controlPlaneUnder(t, m.path("root2"), "west-1")); err != nil {
		t.Errorf("%s's gateway refused a control plane certificate of the new root: %v", c.Name, err)
	}
	if err := gatewaySelfProbe(gw, controlPlaneUnder(t, m.path("root"), "west-1")); err == nil {
		t.Errorf("%s's gateway took a control plane certificate of the removed root", c.Name)
	} else {
		t.Logf("old root refused by the gateway: %v", err)
	}

	gwAdmin := net.JoinHostPort(c.IP, "15021")
	connected := func() (bool, error) {
		var st struct {
			Connected bool `json:"connected"`
		}
		err := getJSON("http://"+gwAdmin+"/debug/xds", &st)
		return st.Connected, err
	}
	m.kill(cpName(c))
	poll.Until(t, 30*time.Second, c.Name+"'s gateway sees its control plane gone", func() error {
		if ok, err := connected(); err != nil || ok {
			return fmt.Errorf("connected %v, %v", ok, err)
		}
		return nil
	})
	waitReady(t, m.restart(cpName(c)), c.Admin())
	poll.Until(t, 60*time.Second, c.Name+"'s gateway reconnects to its control plane on the new root", func() error {
		if ok, err := connected(); err != nil || !ok {
			return fmt.Errorf("connected %v, %v", ok, err)
		}
		return nil
	})
}

// controlPlaneUnder signs cluster's control plane SVID under the root in
// rootDir, through a fresh intermediate of that cluster.
func controlPlaneUnder(t *testing.T, rootDir, cluster string) tls.Certificate {
	t.Helper()
	root, err := ca.LoadRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := root.IssueCluster(cluster, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.NewAuthority(files)
	if err != nil {
		t.Fatal(err)
	}
	is, err := auth.IssueControlPlane(10 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return *is.TLS
}

// gatewaySelfProbe probes the gateway at addr itself, as a peer control
// plane does, presenting cert: nil when the gateway accepted it (it ends
// the connection with close_notify), else the refusal.
func gatewaySelfProbe(addr string, cert tls.Certificate) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{
		ServerName: naming.GatewayProbeSNI, NextProtos: []string{naming.ProbeALPN}, MinVersion: tls.VersionTLS13,
		InsecureSkipVerify: true, // the gateway's identity is the prober's concern, not this check's
		Certificates:       []tls.Certificate{cert},
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		return fmt.Errorf("no close_notify: %w", err)
	}
	return nil
}
