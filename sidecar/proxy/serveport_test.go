package proxy_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
)

// TestServePortTCPStopClosesConnections stops an opaque TCP service-port
// listener while a connection through it is open: ServePort must close
// that connection and return, not wait for the client to hang up.
func TestServePortTCPStopClosesConnections(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	s := sp("echo-tcp", 9000)
	echo := meshtest.StartTCP(t)

	// The server side: inbound mutual TLS in front of the TCP echo app.
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
	serve(t, func(ctx context.Context) error { return srv.ServeInbound(ctx, in) })

	c := startClient(t, ca, service{sp: s, opts: meshtest.ClusterOpts{Identities: []string{srvID}},
		eps: []meshtest.Endpoint{{Addr: in.Addr().String(), Cluster: "east-1", Identity: srvID, Healthy: true}}})
	l := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.p.ServePort(ctx, l, s.Port) }()

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := br.ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("echo %q %v", got, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServePort: %v", err)
		}
	case <-time.After(30 * time.Second):
		conn.Close() // lets ServePort return before the leak check
		<-done
		t.Fatal("ServePort did not return within 30s of its context ending with a connection open")
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Errorf("read after the listener stopped: %v, want EOF", err)
	}
}
