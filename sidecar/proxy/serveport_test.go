package proxy_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
)

// tcpPath is an opaque TCP service demo/echo-tcp: a TCP echo app behind a
// server proxy's inbound side, and a client proxy that knows the service.
// Nothing is served yet.
type tcpPath struct {
	s   naming.ServicePort
	srv *proxy.Proxy
	in  net.Listener // the server's inbound listener
	c   *client
}

func newTCPPath(t *testing.T) *tcpPath {
	t.Helper()
	ca := meshtest.NewCA(t, td)
	s := sp("echo-tcp", 9000)
	echo := meshtest.StartTCP(t)
	srv, err := proxy.New(proxy.Config{Cluster: "east-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	in := listen(t)
	srvID := ca.Workload("demo", "echo")
	_, certPEM, keyPEM := ca.Issue(t, meshtest.SVID{URIs: []string{srvID}})
	inRes := meshtest.Inbound(in.Addr().String(), meshtest.InboundPort{SP: s, App: echo.Addr})
	configure(t, ca, srv, map[string][]types.Resource{
		xdsclient.ListenerType: inRes[:1],
		xdsclient.ClusterType:  inRes[1:],
		xdsclient.SecretType:   meshtest.Secrets(certPEM, keyPEM, ca.PEM()),
	})
	c := startClient(t, ca, service{sp: s, opts: meshtest.ClusterOpts{Identities: []string{srvID}},
		eps: []meshtest.Endpoint{{Addr: in.Addr().String(), Cluster: "east-1", Identity: srvID, Healthy: true}}})
	return &tcpPath{s: s, srv: srv, in: in, c: c}
}

// echoOnce dials addr and checks one line comes back; the connection
// stays open.
func echoOnce(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := br.ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("echo %q %v", got, err)
	}
	return conn, br
}

// stops cancels a serve loop and checks that it returns within 30s even
// though conn is open, then that conn is closed by the proxy.
func stops(t *testing.T, what string, cancel context.CancelFunc, done <-chan error, conn net.Conn, br *bufio.Reader) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	case <-time.After(30 * time.Second):
		conn.Close() // lets the loop return before the leak check
		<-done
		t.Fatalf("%s did not return within 30s of its context ending with a connection open", what)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Errorf("read after %s stopped: %v, want EOF", what, err)
	}
}

// TestServePortTCPStopClosesConnections stops an opaque TCP service-port
// listener while a connection through it is open: ServePort must close
// that connection and return, not wait for the client to hang up.
func TestServePortTCPStopClosesConnections(t *testing.T) {
	p := newTCPPath(t)
	serve(t, func(ctx context.Context) error { return p.srv.ServeInbound(ctx, p.in) })
	l := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.c.p.ServePort(ctx, l, p.s.Port) }()
	conn, br := echoOnce(t, l.Addr().String())
	stops(t, "ServePort", cancel, done, conn, br)
}

// TestServeInboundTCPStopClosesConnections stops the inbound listener
// while an opaque TCP connection through it is open: ServeInbound must
// close that connection and return, not wait for either end to hang up.
func TestServeInboundTCPStopClosesConnections(t *testing.T) {
	p := newTCPPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.srv.ServeInbound(ctx, p.in) }()
	conn, br := echoOnce(t, p.c.servePort(t, p.s.Port))
	stops(t, "ServeInbound", cancel, done, conn, br)
}
