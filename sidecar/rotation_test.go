package sidecar_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// peerRecorder is a real mutual TLS HTTP/2 server standing where a server
// sidecar would: it answers every request and records, per request, the
// connection it came on and the serial number of the certificate the
// client sidecar presented on that connection.
type peerRecorder struct {
	addr string
	srv  *http.Server
	wg   sync.WaitGroup

	mu   sync.Mutex // guards the following
	seen []peerSeen
}

type peerSeen struct {
	Conn   string // the client's address: one per TCP connection
	Serial string
}

func startPeerRecorder(t *testing.T, ca *meshtest.CA, id string) *peerRecorder {
	t.Helper()
	cert, _, _ := ca.Issue(t, meshtest.SVID{URIs: []string{id}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &peerRecorder{addr: l.Addr().String()}
	tcfg := identity.ServerConfig(identity.StaticCert(cert), identity.StaticBundle(ca.Bundle()), identity.AuthorizeWorkloads())
	tcfg.NextProtos = []string{"h2"}
	r.srv = &http.Server{TLSConfig: tcfg, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen = append(r.seen, peerSeen{Conn: req.RemoteAddr, Serial: req.TLS.PeerCertificates[0].SerialNumber.String()})
		r.mu.Unlock()
		_, _ = io.WriteString(w, "recorded\n")
	})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		_ = r.srv.ServeTLS(l, "", "")
	}()
	t.Cleanup(func() {
		_ = r.srv.Close()
		r.wg.Wait()
	})
	return r
}

// since returns what was recorded from index i on.
func (r *peerRecorder) since(i int) []peerSeen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]peerSeen(nil), r.seen[min(i, len(r.seen)):]...)
}

func (r *peerRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// serverSerial dials the inbound listener at addr as a workload of the
// mesh and returns the serial number of the certificate it presents to a
// new connection.
func serverSerial(t *testing.T, ca *meshtest.CA, addr, sni string) string {
	t.Helper()
	cert, _, _ := ca.Issue(t, meshtest.SVID{URIs: []string{ca.Workload("demo", "prober")}})
	cfg := identity.ClientConfig(identity.StaticCert(cert), identity.StaticBundle(ca.Bundle()), identity.AuthorizeWorkloads())
	cfg.ServerName = sni
	cfg.NextProtos = []string{"h2"}
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial inbound: %v", err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func serialOf(c *tls.Certificate) string { return c.Leaf.SerialNumber.String() }

// TestCertificateRotation renews both sidecars' certificates over SDS
// while requests flow through the pair. No request fails; connections
// made before the renewal go on with the certificate they were made with;
// a new connection presents the renewed certificate, as the other side
// sees it.
func TestCertificateRotation(t *testing.T) {
	p := newPair(t)
	clientID := p.m.ca.Workload("demo", "client")
	echoID := p.m.ca.Workload("demo", "echo")

	// A second service whose endpoints record the client certificate
	// they see.
	recPort := meshtest.FreePort(t)
	rec := svc("rec", recPort)
	first := startPeerRecorder(t, p.m.ca, echoID)
	second := startPeerRecorder(t, p.m.ca, echoID)
	recEndpoints := func(r *peerRecorder) types.Resource {
		return meshtest.Assignment(rec, meshtest.Endpoint{Addr: r.addr, Cluster: "east-1", Identity: echoID, Healthy: true})
	}
	res := func(eds types.Resource) map[string][]types.Resource {
		out := map[string][]types.Resource{}
		for typ, rs := range p.res {
			out[typ] = append([]types.Resource(nil), rs...)
		}
		rt(out, cdsT, meshtest.OutboundCluster(rec, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}}))
		rt(out, edsT, eds)
		rt(out, ldsT, meshtest.OutboundListener(rec, true))
		rt(out, rdsT, meshtest.Routes(recPort, 15*time.Second, 2, rec))
		return out
	}
	p.m.set("client", res(recEndpoints(first)))
	poll.True(t, 30*time.Second, "rec service configured", func() bool {
		_, ok := p.client.sc.Proxy().Snapshot().Lookup(rec.Host(), recPort)
		return ok
	})
	oldClientSerial := serialOf(p.client.sc.Proxy().Snapshot().Certificate)
	oldServerSerial := serialOf(p.server.sc.Proxy().Snapshot().Certificate)
	inboundSNI := svc("echo", p.httpP).SNI()
	if got := serverSerial(t, p.m.ca, p.server.sc.InboundAddr(), inboundSNI); got != oldServerSerial {
		t.Fatalf("inbound presents serial %s before the renewal, want %s", got, oldServerSerial)
	}

	// Traffic to both services, one request after another, until told to
	// stop (bounded in count and time).
	echoURL := p.url("echo.demo.svc.clusterset.local")
	recURL := "http://" + rec.Host() + ":" + strconv.Itoa(int(recPort)) + "/"
	c := proxyClient(p.client)
	defer c.CloseIdleConnections()
	stop := make(chan struct{})
	done := make(chan struct{})
	var (
		mu       sync.Mutex // guards failures and sent
		failures []string
		sent     int
	)
	go func() {
		defer close(done)
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, u := range []string{echoURL, recURL} {
				code, body, err := get(c, u)
				mu.Lock()
				sent++
				if err != nil || code != http.StatusOK {
					failures = append(failures, fmt.Sprintf("%s: code %d err %v body %q", u, code, err, body))
				}
				mu.Unlock()
			}
		}
	}()
	waitSent := func(n int) {
		t.Helper()
		mu.Lock()
		target := sent + n
		mu.Unlock()
		poll.True(t, 30*time.Second, "more requests", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return sent >= target
		})
	}
	waitSent(20)

	// Renew both certificates mid-traffic.
	newClientCert, clientPEM, clientKey := p.m.ca.Issue(t, meshtest.SVID{URIs: []string{clientID}})
	newServerCert, serverPEM, serverKey := p.m.ca.Issue(t, meshtest.SVID{URIs: []string{echoID}})
	p.res[sdsT] = meshtest.Secrets(clientPEM, clientKey, p.m.ca.PEM())
	p.srvRes[sdsT] = meshtest.Secrets(serverPEM, serverKey, p.m.ca.PEM())
	p.m.set("server", p.srvRes)
	p.m.set("client", res(recEndpoints(first)))
	poll.True(t, 30*time.Second, "renewed certificates applied", func() bool {
		return serialOf(p.client.sc.Proxy().Snapshot().Certificate) == serialOf(newClientCert) &&
			serialOf(p.server.sc.Proxy().Snapshot().Certificate) == serialOf(newServerCert)
	})
	mark := first.count()
	waitSent(20)

	// The server sidecar presents the renewed certificate to a new
	// connection.
	if got, want := serverSerial(t, p.m.ca, p.server.sc.InboundAddr(), inboundSNI), serialOf(newServerCert); got != want {
		t.Errorf("inbound presents serial %s to a new connection after the renewal, want %s (old %s)", got, want, oldServerSerial)
	}

	// Requests after the renewal still went over the connection made
	// before it, with the old certificate.
	after := first.since(mark)
	if len(after) == 0 {
		t.Fatal("no request reached the first recorder after the renewal")
	}
	before := first.since(0)[0]
	for _, s := range after {
		if diff := cmp.Diff(peerSeen{Conn: before.Conn, Serial: oldClientSerial}, s); diff != "" {
			t.Fatalf("a request after the renewal on the first recorder (-want +got):\n%s", diff)
		}
	}

	// Moving the service to another endpoint makes a new connection: it
	// presents the renewed certificate.
	p.m.set("client", res(recEndpoints(second)))
	poll.True(t, 30*time.Second, "requests on the second recorder", func() bool { return second.count() >= 5 })
	for _, s := range second.since(0) {
		if s.Serial != serialOf(newClientCert) {
			t.Errorf("new connection %s presented serial %s, want the renewed %s (old %s)", s.Conn, s.Serial, serialOf(newClientCert), oldClientSerial)
		}
	}
	waitSent(10)
	close(stop)
	<-done

	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed across the renewal; first: %s", len(failures), sent, failures[0])
	}
}
