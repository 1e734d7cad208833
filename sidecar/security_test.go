package sidecar_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// TestInboundRefuses dials the server sidecar's inbound listener directly
// with bad client credentials; each must be refused with its reason.
func TestInboundRefuses(t *testing.T) {
	p := newPair(t)
	ca := p.m.ca
	foreign := meshtest.NewCA(t, "evil.test")
	good := ca.Workload("demo", "client")
	now := time.Now()
	tests := []struct {
		name   string
		cert   func() *tls.Certificate
		reason string
	}{
		{name: "no certificate", cert: func() *tls.Certificate { return nil }, reason: identity.ReasonNoCertificate},
		{name: "foreign trust domain", cert: func() *tls.Certificate {
			c, _, _ := foreign.Issue(t, meshtest.SVID{URIs: []string{foreign.Workload("demo", "client")}})
			return c
		}, reason: identity.ReasonForeignTrustDomain},
		{name: "two URI SANs", cert: func() *tls.Certificate {
			c, _, _ := ca.Issue(t, meshtest.SVID{URIs: []string{good, ca.Workload("demo", "other")}})
			return c
		}, reason: identity.ReasonSANCount},
		{name: "expired", cert: func() *tls.Certificate {
			c, _, _ := ca.Issue(t, meshtest.SVID{URIs: []string{good}, NotBefore: now.Add(-3 * time.Hour), NotAfter: now.Add(-time.Hour)})
			return c
		}, reason: identity.ReasonExpired},
	}
	sni := svc("echo", p.httpP).SNI()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := p.server.counter(t, "fedmesh_sidecar_inbound_refused_total", map[string]string{"reason": tt.reason})
			cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS13}
			if c := tt.cert(); c != nil {
				cfg.Certificates = []tls.Certificate{*c}
			}
			status, err := rawGET(p.server.sc.InboundAddr(), cfg)
			if err == nil {
				t.Fatalf("request with %s succeeded with status %d", tt.name, status)
			}
			after := p.server.counter(t, "fedmesh_sidecar_inbound_refused_total", map[string]string{"reason": tt.reason})
			if after != before+1 {
				t.Errorf("refusals for %s went from %v to %v, want +1", tt.reason, before, after)
			}
		})
	}

	t.Run("unknown server name", func(t *testing.T) {
		c, _, _ := ca.Issue(t, meshtest.SVID{URIs: []string{good}})
		cfg := &tls.Config{ServerName: "1.nope.demo.svc.clusterset.local", InsecureSkipVerify: true, Certificates: []tls.Certificate{*c}, MinVersion: tls.VersionTLS13}
		if _, err := rawGET(p.server.sc.InboundAddr(), cfg); err == nil {
			t.Fatal("unknown SNI was served")
		}
		if n := p.server.counter(t, "fedmesh_sidecar_inbound_refused_total", map[string]string{"reason": "unknown_sni"}); n < 1 {
			t.Errorf("unknown_sni refusals = %v, want >= 1", n)
		}
	})

	t.Run("a good certificate is served", func(t *testing.T) {
		c, _, _ := ca.Issue(t, meshtest.SVID{URIs: []string{good}})
		cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: true, Certificates: []tls.Certificate{*c}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS13}
		status, err := rawGET(p.server.sc.InboundAddr(), cfg)
		if err != nil || status != 200 {
			t.Fatalf("status %d, err %v", status, err)
		}
	})

	t.Run("spoofed identity header", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, p.url("echo.demo.svc.clusterset.local"), nil)
		req.Header.Set("X-Fedmesh-Client-Id", ca.Workload("kube-system", "admin"))
		resp, err := proxyClient(p.client).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if diff := cmp.Diff("echo "+good+"\n", string(b)); diff != "" {
			t.Errorf("app saw (-want +got):\n%s", diff)
		}
		if n := p.server.counter(t, "fedmesh_sidecar_spoofed_identity_headers_total", nil); n != 1 {
			t.Errorf("spoofed header count = %v, want 1", n)
		}
	})
}

// rawGET sends one HTTP/1.1 GET over a TLS connection made with cfg.
func rawGET(addr string, cfg *tls.Config) (int, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\r\n")
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, io.ErrUnexpectedEOF
	}
	return strconv.Atoi(f[1])
}

// TestControlPlaneStopped: with the control plane gone, traffic keeps
// flowing on the last configuration, over new connections too.
func TestControlPlaneStopped(t *testing.T) {
	p := newPair(t)
	p.m.xds.Stop()
	poll.True(t, 30*time.Second, "client notices the control plane is gone", func() bool { return !p.client.sc.XDS().Status().Connected })
	for i := 0; i < 20; i++ {
		c := proxyClient(p.client) // a new client: new connections each round
		code, body, err := get(c, p.url("echo.demo.svc.clusterset.local"))
		c.CloseIdleConnections()
		if err != nil || code != 200 || !strings.HasPrefix(body, "echo ") {
			t.Fatalf("request %d: code %d body %q err %v", i, code, body, err)
		}
	}
}

// TestNACKKeepsLastGood: an invalid update is NACKed with a reason and the
// sidecar keeps serving with the previous configuration.
func TestNACKKeepsLastGood(t *testing.T) {
	p := newPair(t)
	bad := map[string][]types.Resource{}
	for k, v := range p.res {
		bad[k] = v
	}
	// An endpoint whose identity is not a SPIFFE ID.
	bad[edsT] = []types.Resource{meshtest.Assignment(svc("echo", p.httpP), meshtest.Endpoint{Addr: "127.0.0.1:1", Cluster: "east-1", Identity: "not-an-id", Healthy: true})}
	p.m.set("client", bad)
	badVersion := "v" + strconv.Itoa(p.m.ver)
	poll.True(t, 30*time.Second, "NACK", func() bool {
		for _, r := range p.m.xds.DeltaRequests() {
			if r.GetTypeUrl() == edsT && r.GetErrorDetail() != nil && strings.Contains(r.GetErrorDetail().GetMessage(), "not-an-id") {
				return true
			}
		}
		return false
	})
	st := p.client.sc.XDS().Status().Types[xdsclient.EndpointType]
	if st.Version == badVersion || st.LastError == "" {
		t.Errorf("endpoint status %+v: want the old version and a last error", st)
	}
	code, body, err := get(proxyClient(p.client), p.url("echo.demo.svc.clusterset.local"))
	if err != nil || code != 200 || !strings.HasPrefix(body, "echo ") {
		t.Fatalf("after NACK: code %d body %q err %v", code, body, err)
	}
	if n := p.client.counter(t, "fedmesh_xds_responses_total", map[string]string{"result": "nack", "reason": "rejected"}); n < 1 {
		t.Errorf("nack counter = %v, want >= 1", n)
	}
}
