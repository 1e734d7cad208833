package proxy_test

import (
	"crypto/tls"
	"net/http"
	"sync"
	"testing"

	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
)

// protoServer stands in for a server sidecar with the certificate of id:
// it offers h2 and http/1.1 and answers every request with the protocol
// it came over in X-Proto and the negotiated ALPN in X-ALPN.
func protoServer(t *testing.T, ca *meshtest.CA, id string) string {
	t.Helper()
	cert, _, _ := ca.Issue(t, meshtest.SVID{URIs: []string{id}})
	l := tls.NewListener(listen(t), &tls.Config{Certificates: []tls.Certificate{*cert},
		NextProtos: []string{proxy.ALPNH2, proxy.ALPNHTTP1}, ClientAuth: tls.RequireAnyClientCert})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-ALPN", r.TLS.NegotiatedProtocol)
	})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestTransportBetweenSidecars: HTTP/1.x requests that are not gRPC go to
// a sidecar of the same cluster as HTTP/1.1 (ALPN http/1.1); gRPC,
// whatever came in over HTTP/2, and every request to another cluster's
// gateway go as HTTP/2 (ALPN h2).
func TestTransportBetweenSidecars(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	s, remote := sp("echo", 8080), sp("remote", 8080)
	id := ca.Workload("demo", "echo")
	addr := protoServer(t, ca, id)
	c := startClient(t, ca,
		service{sp: s, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{id}},
			eps: []meshtest.Endpoint{{Addr: addr, Cluster: "east-1", Identity: id, Healthy: true}}},
		// The stand-in answers for the gateway of west-1 too; a
		// gateway passes the server name and ALPN through.
		service{sp: remote, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{id}},
			eps: []meshtest.Endpoint{{Addr: addr, Cluster: "west-1", Identity: id, SNI: "8080.remote.demo.svc.clusterset.local", Healthy: true}}})
	h1 := c.http(t)
	h2cProtos := new(http.Protocols)
	h2cProtos.SetUnencryptedHTTP2(true)
	h2cTr := &http.Transport{Protocols: h2cProtos}
	t.Cleanup(h2cTr.CloseIdleConnections)
	h2c := &http.Client{Transport: h2cTr}

	tests := []struct {
		name        string
		client      *http.Client
		url         string
		host        string
		contentType string
		wantProto   string
		wantALPN    string
	}{
		{"http/1.1 GET", h1, svcURL(s), "echo.demo:8080", "", "HTTP/1.1", proxy.ALPNHTTP1},
		{"gRPC-Web over http/1.1", h1, svcURL(s), "echo.demo:8080", "application/grpc-web", "HTTP/1.1", proxy.ALPNHTTP1},
		{"h2c", h2c, "http://" + c.addr + "/", "echo.demo:8080", "", "HTTP/2.0", proxy.ALPNH2},
		{"gRPC over h2c", h2c, "http://" + c.addr + "/", "echo.demo:8080", "application/grpc", "HTTP/2.0", proxy.ALPNH2},
		{"http/1.1 GET to another cluster", h1, svcURL(remote), "remote.demo:8080", "", "HTTP/2.0", proxy.ALPNH2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, tc.url, stringsReader("hello"))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tc.host
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got, gotALPN := resp.Header.Get("X-Proto"), resp.Header.Get("X-ALPN"); got != tc.wantProto || gotALPN != tc.wantALPN {
				t.Errorf("between sidecars: %s over ALPN %q, want %s over %q", got, gotALPN, tc.wantProto, tc.wantALPN)
			}
		})
	}
}
