package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/testpki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testPKI is a CA that issues SPIFFE certificates for the tests.
type testPKI struct {
	ca   *testpki.CA
	pool *x509.CertPool
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	ca := testpki.NewRoot(t, "test")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &testPKI{ca: ca, pool: pool}
}

func (p *testPKI) issue(t testing.TB, spiffeID string) tls.Certificate {
	t.Helper()
	key := testpki.Key(t)
	leaf := p.ca.Leaf(t, key, spiffeID)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

var echoSP = naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}

// tlsBackend is an endpoint behind the gateway: it terminates mTLS and
// answers each line with "BACKEND CLIENT-ID LINE".
func tlsBackend(t *testing.T, pki *testPKI, name string) (addr string, stop func()) {
	t.Helper()
	cert := pki.issue(t, "spiffe://fedmesh.test/ns/demo/sa/echo")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool,
		MinVersion: tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				id := tc.ConnectionState().PeerCertificates[0].URIs[0].String()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s %s %s\n", name, id, sc.Text())
				}
			}()
		}
	}()
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }
}

type testGateway struct {
	gw   *Gateway
	reg  *prometheus.Registry
	addr string
}

func startGateway(t *testing.T, cfg Config) *testGateway {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	gw, err := New(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testGateway{gw: gw, reg: reg, addr: ln.Addr().String()}
}

func (tg *testGateway) refused(reason string) float64 {
	var total float64
	mfs, _ := tg.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "fedmesh_gateway_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

func dialTLS(t *testing.T, pki *testPKI, addr, sni string, alpn ...string) (*tls.Conn, error) {
	t.Helper()
	cert := pki.issue(t, "spiffe://fedmesh.test/ns/demo/sa/client")
	d := &net.Dialer{Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", addr, &tls.Config{
		ServerName: sni, Certificates: []tls.Certificate{cert}, NextProtos: alpn,
		InsecureSkipVerify: true, // the SPIFFE check below stands in for hostname checks
		VerifyConnection: func(cs tls.ConnectionState) error {
			if got := cs.PeerCertificates[0].URIs[0].String(); got != "spiffe://fedmesh.test/ns/demo/sa/echo" {
				return fmt.Errorf("server is %s", got)
			}
			return nil
		},
	})
}

func roundTrip(t *testing.T, c net.Conn, line string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, line)
	r := bufio.NewReader(c)
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return strings.TrimSpace(s)
}

// TestEndToEndMTLSThroughGateway: the backend sees the client's SPIFFE ID,
// so the TLS session is end to end, not terminated by the gateway.
func TestEndToEndMTLSThroughGateway(t *testing.T) {
	pki := newPKI(t)
	addr, stop := tlsBackend(t, pki, "b1")
	defer stop()
	tg := startGateway(t, Config{Cluster: "west-1"})
	if err := tg.gw.SetRoutes([]Route{{Service: echoSP, Endpoints: []Endpoint{{Address: addr, Healthy: true}}}}); err != nil {
		t.Fatal(err)
	}
	c, err := dialTLS(t, pki, tg.addr, echoSP.SNI())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, want := roundTrip(t, c, "hello"), "b1 spiffe://fedmesh.test/ns/demo/sa/client hello"; got != want {
		t.Errorf("reply %q, want %q", got, want)
	}
	// Bytes are counted while the connection is open.
	poll.Until(t, 5*time.Second, "bytes counted before the connection ends", func() error {
		in := counterValue(tg.gw.metrics.bytes.WithLabelValues("in", "echo.demo.svc.clusterset.local", "unknown"))
		out := counterValue(tg.gw.metrics.bytes.WithLabelValues("out", "echo.demo.svc.clusterset.local", "unknown"))
		if in == 0 || out == 0 {
			return fmt.Errorf("in %v, out %v bytes", in, out)
		}
		return nil
	})
	// Half-close: the client closes its write side, the reply still comes.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, "last")
	c.CloseWrite()
	rest, _ := io.ReadAll(c)
	if !strings.Contains(string(rest), "b1 spiffe://fedmesh.test/ns/demo/sa/client last") {
		t.Errorf("after half-close got %q", rest)
	}
	if n := counterValue(tg.gw.metrics.accepted.WithLabelValues("echo.demo.svc.clusterset.local", "unknown")); n != 1 {
		t.Errorf("accepted = %v, want 1", n)
	}
}

// TestProbeNotCountedAsTraffic: a connection offering the control planes'
// probe protocol is routed like any other but counted as a probe, so a
// peer's gateway probes do not show up as calls between clusters.
func TestProbeNotCountedAsTraffic(t *testing.T) {
	pki := newPKI(t)
	addr, stop := tlsBackend(t, pki, "b1")
	defer stop()
	tg := startGateway(t, Config{Cluster: "west-1"})
	if err := tg.gw.SetRoutes([]Route{{Service: echoSP, Endpoints: []Endpoint{{Address: addr, Healthy: true}}}}); err != nil {
		t.Fatal(err)
	}
	c, err := dialTLS(t, pki, tg.addr, echoSP.SNI(), naming.ProbeALPN, "h2")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := roundTrip(t, c, "probe"), "b1 spiffe://fedmesh.test/ns/demo/sa/client probe"; got != want {
		t.Errorf("reply %q, want %q", got, want)
	}
	c.Close()
	poll.Until(t, 5*time.Second, "the probe counted", func() error {
		if n := counterValue(tg.gw.metrics.probes.WithLabelValues("unknown")); n != 1 {
			return fmt.Errorf("probes = %v, want 1", n)
		}
		return nil
	})
	if n := counterValue(tg.gw.metrics.accepted.WithLabelValues("echo.demo.svc.clusterset.local", "unknown")); n != 0 {
		t.Errorf("accepted = %v, want 0: a probe is not traffic", n)
	}
	if n := counterValue(tg.gw.metrics.bytes.WithLabelValues("in", "echo.demo.svc.clusterset.local", "unknown")); n != 0 {
		t.Errorf("bytes in = %v, want 0: a probe is not traffic", n)
	}
}

func TestRefusals(t *testing.T) {
	pki := newPKI(t)
	addr, stop := tlsBackend(t, pki, "b1")
	defer stop()
	deadLn, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := deadLn.Addr().String()
	deadLn.Close()

	other := naming.ServicePort{Namespace: "demo", Name: "down", Port: 8080}
	deadSvc := naming.ServicePort{Namespace: "demo", Name: "dead", Port: 8080}
	tg := startGateway(t, Config{Cluster: "west-1", HandshakeTimeout: 300 * time.Millisecond, MaxHelloBytes: 4096})
	err := tg.gw.SetRoutes([]Route{
		{Service: echoSP, Endpoints: []Endpoint{{Address: addr, Healthy: true}}},
		{Service: other, Endpoints: []Endpoint{{Address: addr, Healthy: false}}},
		{Service: deadSvc, Endpoints: []Endpoint{{Address: dead, Healthy: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}

	rawSend := func(b []byte) error {
		c, err := net.Dial("tcp", tg.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(b)
		_, err = c.Read(make([]byte, 1))
		return err
	}
	hugeHello := append([]byte{22, 3, 1, 0x3f, 0xff, 1, 0, 0x3f, 0xfb}, make([]byte, 0x3ffb-4)...)

	tests := []struct {
		name   string
		reason string
		do     func() error
	}{
		{name: "unexported service", reason: ReasonNotExported, do: func() error {
			_, err := dialTLS(t, pki, tg.addr, "8080.secret.kube-system.svc.clusterset.local")
			return err
		}},
		{name: "not a fedmesh server name", reason: ReasonBadSNI, do: func() error {
			_, err := dialTLS(t, pki, tg.addr, "kubernetes.default.svc.cluster.local")
			return err
		}},
		{name: "no healthy endpoint", reason: ReasonNoHealthy, do: func() error {
			_, err := dialTLS(t, pki, tg.addr, other.SNI())
			return err
		}},
		{name: "endpoint does not answer", reason: ReasonDialFailed, do: func() error {
			_, err := dialTLS(t, pki, tg.addr, deadSvc.SNI())
			return err
		}},
		{name: "plaintext", reason: ReasonNotTLS, do: func() error { return rawSend([]byte("GET / HTTP/1.1\r\n\r\n")) }},
		{name: "missing sni", reason: ReasonNoSNI, do: func() error {
			_, err := dialTLS(t, pki, tg.addr, "")
			return err
		}},
		{name: "malformed hello", reason: ReasonMalformed, do: func() error {
			return rawSend([]byte{22, 3, 1, 0, 8, 1, 0, 0, 4, 3, 3, 0, 0})
		}},
		{name: "oversized hello", reason: ReasonTooLarge, do: func() error { return rawSend(hugeHello) }},
		{name: "hello never sent", reason: ReasonHandshakeTimout, do: func() error { return rawSend(nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tg.refused(tt.reason)
			if err := tt.do(); err == nil {
				t.Fatal("connection was not refused")
			}
			poll.True(t, 30*time.Second, "refusal counted as "+string(tt.reason), func() bool { return tg.refused(tt.reason) == before+1 })
		})
	}
	// Nothing reached the backend but through the exported route.
	c, err := dialTLS(t, pki, tg.addr, echoSP.SNI())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := roundTrip(t, c, "ok"); !strings.HasPrefix(got, "b1 ") {
		t.Errorf("good route after refusals: %q", got)
	}
}

func TestConnectionLimits(t *testing.T) {
	pki := newPKI(t)
	addr, stop := tlsBackend(t, pki, "b1")
	defer stop()
	tg := startGateway(t, Config{MaxConnsPerSource: 1})
	tg.gw.SetRoutes([]Route{{Service: echoSP, Endpoints: []Endpoint{{Address: addr, Healthy: true}}}})
	c1, err := dialTLS(t, pki, tg.addr, echoSP.SNI())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	roundTrip(t, c1, "one")
	if _, err := dialTLS(t, pki, tg.addr, echoSP.SNI()); err == nil {
		t.Fatal("second connection from the same source was not refused")
	}
	poll.True(t, 30*time.Second, "per-source refusal counted", func() bool { return tg.refused(ReasonMaxPerSource) == 1 })
}

func TestDrain(t *testing.T) {
	pki := newPKI(t)
	addr, stop := tlsBackend(t, pki, "b1")
	defer stop()
	tg := startGateway(t, Config{})
	tg.gw.SetRoutes([]Route{{Service: echoSP, Endpoints: []Endpoint{{Address: addr, Healthy: true}}}})
	c, err := dialTLS(t, pki, tg.addr, echoSP.SNI())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "before")

	drained := make(chan error, 1)
	go func() {
		// Long enough for the steps below on a busy machine: closing c
		// ends the drain, the deadline only bounds a drain that hangs.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drained <- tg.gw.Shutdown(ctx)
	}()
	poll.True(t, 30*time.Second, "gateway draining", tg.gw.Draining)
	// New connections are refused...
	poll.True(t, 30*time.Second, "new connections refused while draining", func() bool {
		_, err := dialTLS(t, pki, tg.addr, echoSP.SNI())
		return err != nil
	})
	// ...while the in-flight one keeps working until it closes.
	if got := roundTrip(t, c, "during drain"); !strings.HasSuffix(got, "during drain") {
		t.Errorf("in-flight connection during drain: %q", got)
	}
	select {
	case err := <-drained:
		t.Fatalf("drain finished with a connection still open: %v", err)
	default:
	}
	c.Close()
	if err := <-drained; err != nil {
		t.Errorf("Shutdown = %v, want nil (every connection finished)", err)
	}
}

func TestSetRoutesRejectsBadInputKeepsOld(t *testing.T) {
	tg := startGateway(t, Config{})
	good := []Route{{Service: echoSP, Endpoints: []Endpoint{{Address: "127.0.0.1:1", Healthy: true}}}}
	if err := tg.gw.SetRoutes(good); err != nil {
		t.Fatal(err)
	}
	bad := []Route{{Service: naming.ServicePort{Namespace: "Bad_NS", Name: "x", Port: 1}}}
	if err := tg.gw.SetRoutes(bad); err == nil {
		t.Fatal("bad route accepted")
	}
	badAddr := []Route{{Service: echoSP, Endpoints: []Endpoint{{Address: "not-an-address", Healthy: true}}}}
	if err := tg.gw.SetRoutes(badAddr); err == nil {
		t.Fatal("bad endpoint accepted")
	}
	if got := tg.gw.Routes(); len(got) != 1 || got[0].Service != echoSP {
		t.Errorf("routes after rejected updates = %+v, want the good one", got)
	}
	if n := counterValue(tg.gw.metrics.configRejected); n != 2 {
		t.Errorf("config rejected = %v, want 2", n)
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestIdleTimeout: a spliced connection quiet in both directions for the
// idle timeout is closed and counted; one that keeps talking is not.
func TestIdleTimeout(t *testing.T) {
	pki := newPKI(t)
	addr, stop := tlsBackend(t, pki, "b1")
	defer stop()
	tg := startGateway(t, Config{IdleTimeout: 300 * time.Millisecond})
	tg.gw.SetRoutes([]Route{{Service: echoSP, Endpoints: []Endpoint{{Address: addr, Healthy: true}}}})
	c, err := dialTLS(t, pki, tg.addr, echoSP.SNI())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Talking every 100ms keeps it open past several idle timeouts.
	for i := 0; i < 8; i++ {
		if got := roundTrip(t, c, fmt.Sprint(i)); !strings.HasSuffix(got, fmt.Sprint(i)) {
			t.Fatalf("reply %q", got)
		}
		time.Sleep(100 * time.Millisecond) // pacing the talk, not waiting for state
	}
	// Silence: the gateway closes it.
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on an idle connection returned data, want the gateway to close it")
	}
	poll.True(t, 30*time.Second, "idle connection closed", func() bool { return counterValue(tg.gw.metrics.idleClosed) >= 1 })
}
