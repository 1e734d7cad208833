package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// meshPKI is a federation root with the CAs of east-1 (the control plane
// under test) and east-2 (a peer), on disk as the CLI writes them.
type meshPKI struct {
	dir, rootDir string
	east1, east2 *ca.Authority
	root         *ca.Root
}

func newMeshPKI(t *testing.T) *meshPKI {
	t.Helper()
	dir := t.TempDir()
	p := &meshPKI{dir: dir, rootDir: filepath.Join(dir, "root")}
	if err := ca.InitRoot("fedmesh.test", p.rootDir); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"east-1", "east-2"} {
		if err := ca.IssueClusterCA(p.rootDir, c, filepath.Join(dir, c), 0); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if p.east1, err = ca.LoadAuthority(filepath.Join(dir, "east-1")); err != nil {
		t.Fatal(err)
	}
	if p.east2, err = ca.LoadAuthority(filepath.Join(dir, "east-2")); err != nil {
		t.Fatal(err)
	}
	if p.root, err = ca.LoadRoot(p.rootDir); err != nil {
		t.Fatal(err)
	}
	return p
}

// operatorDir writes is into a fresh operator directory and returns its
// files.
func (p *meshPKI) operatorFiles(t *testing.T, is *ca.Issued) adminapi.OperatorFiles {
	t.Helper()
	dir := t.TempDir()
	if err := ca.WriteOperator(dir, is, p.east1.BundlePEM()); err != nil {
		t.Fatal(err)
	}
	return adminapi.OperatorFiles{
		CertFile:   filepath.Join(dir, ca.OperatorCertFile),
		KeyFile:    filepath.Join(dir, ca.OperatorKeyFile),
		BundleFile: filepath.Join(dir, ca.OperatorBundleFile),
	}
}

// httpsClient returns a client that verifies the control plane with the
// federation bundle and presents cert (nil: none).
func (p *meshPKI) httpsClient(t *testing.T, cert *ca.Issued) *http.Client {
	t.Helper()
	var certs identity.CertSource
	if cert != nil {
		certs = identity.StaticCert(cert.TLS)
	}
	cfg := identity.ClientConfig(certs, identity.StaticBundle(p.east1.Bundle()), identity.AuthorizeControlPlanes())
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func mustIssue(t *testing.T) func(*ca.Issued, error) *ca.Issued {
	return func(is *ca.Issued, err error) *ca.Issued {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
}

// startMeshServer runs east-1's control plane with identity on loopback
// and returns it once /readyz answers.
func startMeshServer(t *testing.T, p *meshPKI) *Server {
	t.Helper()
	srv := startMember(t, memberOptions{
		caDir:  filepath.Join(p.dir, "east-1"),
		files:  map[string]string{"echo.yaml": echoYAML},
		config: func(c *Config) { c.AdminHosts = []string{"fedmesh-controlplane.fedmesh-system.svc"} },
	}).srv
	anon := p.httpsClient(t, nil)
	poll.Until(t, 60*time.Second, "control plane ready", func() error {
		if srv.AdminURL() == "" {
			return errors.New("admin not listening")
		}
		// The federation's routes are mounted once gossip runs, with
		// their readiness check.
		code, body, err := do(anon, http.MethodGet, srv.AdminURL()+"/readyz?verbose", nil, nil)
		if err != nil {
			return err
		}
		if code != 200 || !strings.Contains(body, "[+]federation ok") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	return srv
}

// do sends one request and returns the status and body.
func do(c *http.Client, method, url string, header http.Header, body io.Reader) (int, string, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// requestFor turns a mux pattern ("POST /federation/v1/members/{name}/forget",
// "/debug/xds") into a method and a path to call.
func requestFor(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = http.MethodGet, pattern
	}
	path = strings.NewReplacer("{name}", "west-9", "{$}", "").Replace(path)
	return method, path
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// TestAdminRoutesNeedAnOperator walks every route mounted on a running
// control plane's admin port: the open ones (exactly /healthz, /readyz,
// /metrics) answer without a certificate, every other one refuses a caller
// without one with 401 and lets an operator through. A route added later
// is protected by default; one added as open fails here.
func TestAdminRoutesNeedAnOperator(t *testing.T) {
	p := newMeshPKI(t)
	srv := startMeshServer(t, p)
	base := srv.AdminURL()
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("admin URL %q: want https with a CA", base)
	}
	anon := p.httpsClient(t, nil)
	op := p.httpsClient(t, mustIssue(t)(p.east1.IssueOperator("alice", 0)))

	routes := srv.Admin().Routes()
	var open []string
	protected := 0
	for _, r := range routes {
		if r.Open {
			open = append(open, r.Pattern)
			continue
		}
		protected++
	}
	if want := []string{"GET /healthz", "GET /readyz", "GET /metrics"}; !slices.Equal(open, want) {
		t.Errorf("open routes = %q, want exactly %q", open, want)
	}
	// The mesh mounts the federation API, status, view, xDS and exports
	// debug pages: a walk over fewer means the list is not derived right.
	if protected < 10 {
		t.Fatalf("only %d protected routes listed: %+v", protected, routes)
	}
	for _, r := range routes {
		method, path := requestFor(r.Pattern)
		t.Run(r.Pattern, func(t *testing.T) {
			var body io.Reader
			if changesState(method) {
				body = strings.NewReader("{}")
			}
			code, got, err := do(anon, method, base+path, jsonHeader, body)
			if err != nil {
				t.Fatal(err)
			}
			if r.Open {
				if code != http.StatusOK {
					t.Errorf("open %s %s without a certificate = %d %s, want 200", method, path, code, got)
				}
				// Probes and scrapers address the pod by IP or any name.
				if code, _, err := do(anon, method, base+path, http.Header{"Host": {"198.18.0.7:15014"}}, nil); err != nil || code != http.StatusOK {
					t.Errorf("open %s %s with a foreign Host = %d, %v; want 200", method, path, code, err)
				}
				return
			}
			if code != http.StatusUnauthorized || !strings.Contains(got, "operator") {
				t.Errorf("%s %s without a certificate = %d %s, want 401 naming the operator certificate", method, path, code, got)
			}
			if !changesState(method) || strings.HasPrefix(path, adminapi.PathToken) {
				// Reads and token creation are harmless to repeat: an
				// operator gets through (whatever the page answers next).
				var body io.Reader
				if changesState(method) {
					body = strings.NewReader("{}")
				}
				code, got, err := do(op, method, base+path, jsonHeader, body)
				if err != nil {
					t.Fatal(err)
				}
				if code == http.StatusUnauthorized || code == http.StatusForbidden {
					t.Errorf("%s %s as an operator = %d %s, want through", method, path, code, got)
				}
			}
		})
	}
}

// TestAdminIdentities checks who may call: operators of this cluster's CA
// or of the root, and the control plane itself; not an operator of
// another cluster's CA, a workload, or a peer's control plane. A
// certificate of another federation fails the handshake.
func TestAdminIdentities(t *testing.T) {
	p := newMeshPKI(t)
	srv := startMeshServer(t, p)
	url := srv.AdminURL() + adminapi.PathMembers
	must := mustIssue(t)

	foreignDir := t.TempDir()
	if err := ca.InitRoot("fedmesh.test", filepath.Join(foreignDir, "root")); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueClusterCA(filepath.Join(foreignDir, "root"), "east-1", filepath.Join(foreignDir, "east-1"), 0); err != nil {
		t.Fatal(err)
	}
	foreign, err := ca.LoadAuthority(filepath.Join(foreignDir, "east-1"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		cert     *ca.Issued
		want     int
		wantBody string
	}{
		{name: "operator of this cluster's CA", cert: must(p.east1.IssueOperator("alice", 0)), want: 200},
		{name: "operator of the root", cert: must(p.root.IssueOperator("demo", time.Hour)), want: 200},
		{name: "this control plane", cert: must(p.east1.IssueControlPlane(time.Hour, "127.0.0.1")), want: 200},
		{name: "operator of another cluster's CA", cert: must(p.east2.IssueOperator("mallory", 0)), want: 403, wantBody: "another cluster's CA"},
		{name: "workload of this cluster", cert: must(p.east1.IssueWorkload("demo", "client", time.Hour)), want: 403, wantBody: "may not use the admin API"},
		{name: "peer control plane", cert: must(p.east2.IssueControlPlane(time.Hour)), want: 403, wantBody: "may not use the admin API"},
		{name: "etcd root of a peer", cert: must(p.east2.IssueEtcdRoot(time.Hour)), want: 403, wantBody: "may not use the admin API"},
		{name: "no certificate", want: 401, wantBody: "operator client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, err := do(p.httpsClient(t, tt.cert), http.MethodGet, url, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.want || !strings.Contains(body, tt.wantBody) {
				t.Errorf("GET members = %d %s, want %d containing %q", code, body, tt.want, tt.wantBody)
			}
		})
	}

	t.Run("operator of another federation's root", func(t *testing.T) {
		c := p.httpsClient(t, must(foreign.IssueOperator("alice", 0)))
		if code, body, err := do(c, http.MethodGet, url, nil, nil); err == nil {
			t.Fatalf("GET members = %d %s, want the handshake refused", code, body)
		}
		if v := metricValue(t, srv, `fedmesh_controlplane_admin_refused_total{reason="tls_untrusted"}`); v < 1 {
			t.Errorf("tls_untrusted refusals = %v, want at least 1", v)
		}
	})
}

// TestAdminRefusesBrowsers plays a web page that an operator with a
// certificate in the browser visits: cross-site form posts, a foreign
// Origin and a DNS-rebound Host are refused and counted; the CLI's own
// requests pass.
func TestAdminRefusesBrowsers(t *testing.T) {
	p := newMeshPKI(t)
	srv := startMeshServer(t, p)
	base := srv.AdminURL()
	u, _ := url.Parse(base)
	_, port, _ := net.SplitHostPort(u.Host)
	op := p.httpsClient(t, mustIssue(t)(p.east1.IssueOperator("alice", 0)))

	tests := []struct {
		name   string
		method string
		path   string
		header http.Header
		body   string
		want   int
		reason string
	}{
		{name: "form post", method: "POST", path: adminapi.PathToken, header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, body: "ttl=1h", want: 415, reason: "content_type"},
		{name: "multipart post", method: "POST", path: adminapi.PathKeys, header: http.Header{"Content-Type": {"multipart/form-data; boundary=x"}}, body: "--x--", want: 415, reason: "content_type"},
		{name: "text post", method: "POST", path: adminapi.ForgetPath("west-9"), header: http.Header{"Content-Type": {"text/plain"}}, body: "{}", want: 415, reason: "content_type"},
		{name: "post without content type", method: "POST", path: adminapi.PathToken, body: "{}", want: 415, reason: "content_type"},
		{name: "foreign origin", method: "POST", path: adminapi.PathToken, header: http.Header{"Content-Type": {"application/json"}, "Origin": {"https://evil.example"}}, body: "{}", want: 403, reason: "origin"},
		{name: "null origin", method: "GET", path: adminapi.PathKeys, header: http.Header{"Origin": {"null"}}, want: 403, reason: "origin"},
		{name: "plain http origin of the same host", method: "GET", path: adminapi.PathKeys, header: http.Header{"Origin": {"http://" + u.Host}}, want: 403, reason: "origin"},
		{name: "dns rebinding", method: "GET", path: adminapi.PathKeys, header: http.Header{"Host": {"evil.example:" + port}}, want: 403, reason: "host"},
		{name: "rebinding to a look-alike", method: "GET", path: "/debug/view", header: http.Header{"Host": {"127.0.0.1.evil.example"}}, want: 403, reason: "host"},
		{name: "same origin", method: "POST", path: adminapi.PathToken, header: http.Header{"Content-Type": {"application/json"}, "Origin": {base}}, body: "{}", want: 200},
		{name: "json with charset", method: "POST", path: adminapi.PathToken, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: "{}", want: 200},
		{name: "localhost name", method: "GET", path: adminapi.PathMembers, header: http.Header{"Host": {"localhost:" + port}}, want: 200},
		{name: "configured service name", method: "GET", path: adminapi.PathMembers, header: http.Header{"Host": {"fedmesh-controlplane.fedmesh-system.svc:15014"}}, want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before float64
			metric := fmt.Sprintf(`fedmesh_controlplane_admin_refused_total{reason=%q}`, tt.reason)
			if tt.reason != "" {
				before = metricValue(t, srv, metric)
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			code, got, err := do(op, tt.method, base+tt.path, tt.header, body)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.want {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, code, got, tt.want)
			}
			if tt.reason != "" {
				if after := metricValue(t, srv, metric); after != before+1 {
					t.Errorf("%s went %v -> %v, want +1", metric, before, after)
				}
			}
		})
	}
}

// TestAdminCLIClient calls the API the way the fedmesh CLI does: the
// client built from an operator directory written by WriteOperator.
func TestAdminCLIClient(t *testing.T) {
	p := newMeshPKI(t)
	srv := startMeshServer(t, p)
	files := p.operatorFiles(t, mustIssue(t)(p.root.IssueOperator("demo", time.Hour)))
	cfg, err := files.ClientTLS(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c := &adminapi.Client{BaseURL: srv.AdminURL(), TLS: cfg}
	ctx := context.Background()
	tok, err := c.CreateToken(ctx, 10*time.Minute)
	if err != nil || !strings.HasPrefix(tok.Token, "fmjt") {
		t.Fatalf("CreateToken = %+v, %v; want a token", tok, err)
	}
	// Forget sends no body: the client still names JSON, so the
	// Content-Type check lets it through to the federation.
	if _, err := c.Forget(ctx, "west-9"); err != nil {
		if ae := new(adminapi.APIError); !errors.As(err, &ae) || ae.Status == 401 || ae.Status == 403 || ae.Status == 415 {
			t.Errorf("Forget = %v, want the federation's own answer, not a refusal", err)
		}
	}
	var members adminapi.MembersResponse
	if err := c.Get(ctx, adminapi.PathMembers, &members); err != nil || len(members.Members) != 1 {
		t.Errorf("Get members = %+v, %v; want this member", members, err)
	}

	// Without credentials the client fails before calling.
	if _, err := (&adminapi.Client{BaseURL: srv.AdminURL()}).CreateToken(ctx, 0); !errors.Is(err, adminapi.ErrNoOperatorCertificate) {
		t.Errorf("CreateToken without credentials = %v, want ErrNoOperatorCertificate", err)
	}
	// Plain http to the TLS port is answered, and refused, by TLS.
	plain := "http://" + strings.TrimPrefix(srv.AdminURL(), "https://")
	if _, err := (&adminapi.Client{BaseURL: plain}).CreateToken(ctx, 0); err == nil {
		t.Error("CreateToken over plain http to the TLS port succeeded")
	}
}

// metricValue reads one sample from the server's registry ("name{l=v}").
func metricValue(t *testing.T, srv *Server, sample string) float64 {
	t.Helper()
	mfs, err := srv.cfg.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	name, labels, _ := strings.Cut(sample, "{")
	labels = strings.TrimSuffix(labels, "}")
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range strings.Split(labels, ",") {
				if l == "" {
					continue
				}
				k, v, _ := strings.Cut(l, "=")
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && fmt.Sprintf("%q", lp.GetValue()) == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
