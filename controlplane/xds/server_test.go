package xds

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
)

func TestMain(m *testing.M) {
	// grpc-go's test-only bootstrap entry points (BootstrapContentsForTesting,
	// NewXDSResolverWithConfigForTesting) build the "tls" channel
	// credentials' file watcher of a bootstrap and never run its cleanup;
	// a real client builds it once per process.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("google.golang.org/grpc/credentials/tls/certprovider/pemfile.(*watcher).run"))
}

// testCA is a real, small CA: a self-signed root that signs SVIDs with
// one URI SAN.
type testCA struct {
	td   string
	root *x509.Certificate
	key  *ecdsa.PrivateKey

	mu     sync.Mutex
	serial int64
}

func newTestCA(t testing.TB, td string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		URIs: []*url.URL{{Scheme: "spiffe", Host: td}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{td: td, root: root, key: key, serial: 1}
}

func (ca *testCA) SignWorkload(ns, sa string, pub crypto.PublicKey, ttl time.Duration) ([]*x509.Certificate, error) {
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		NotBefore:    now, NotAfter: now.Add(ttl),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{{Scheme: "spiffe", Host: ca.td, Path: "/ns/" + ns + "/sa/" + sa}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, pub, ca.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf}, nil
}

func (ca *testCA) TrustBundle() []*x509.Certificate { return []*x509.Certificate{ca.root} }

// tokens stands in for the CA's bootstrap token check: a fixed table.
var tokens = map[string]Identity{
	"tok-client": {Namespace: "demo", ServiceAccount: "client", Workload: "client"},
	"tok-echo":   {Namespace: "demo", ServiceAccount: "echo"},
	"tok-gw":     {Namespace: "fedmesh-system", ServiceAccount: "gateway"},
}

func verifyToken(tok string) (string, string, string, error) {
	id, ok := tokens[tok]
	if !ok {
		return "", "", "", errors.New("token not recognised")
	}
	return id.Namespace, id.ServiceAccount, id.Workload, nil
}

type harness struct {
	srv  *Server
	reg  *prometheus.Registry
	addr string
	ca   *testCA
	// creds are the clients' transport credentials: TLS that checks the
	// control plane's SVID with startTLSServer, insecure otherwise.
	creds credentials.TransportCredentials
}

func startServer(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	return startServerWith(t, false, mutate)
}

// startServerWith starts a server wired as the control plane wires it
// (ServerOptions, Listener), serving TLS with a control-plane SVID of the
// test CA when withTLS is set.
func startServerWith(t testing.TB, withTLS bool, mutate func(*Config)) *harness {
	t.Helper()
	ca := newTestCA(t, testTD)
	reg := prometheus.NewRegistry()
	cfg := Config{
		Cluster:       "east-1",
		Settings:      DefaultSettings(testTD),
		Authenticator: TokenAuthenticator(verifyToken),
		Issuer:        ca,
		Debounce:      10 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:    reg,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := srv.ServerOptions()
	creds := insecure.NewCredentials()
	if withTLS {
		serverTLS, clientTLS := ca.controlPlaneTLS(t, "east-1")
		opts = append(opts, grpc.Creds(credentials.NewTLS(serverTLS)))
		creds = credentials.NewTLS(clientTLS)
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(srv.Listener(lis)) }()
	go func() { defer wg.Done(); _ = srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		g.Stop()
		wg.Wait()
	})
	if err := srv.UpdateView(testView("east-1")); err != nil {
		t.Fatal(err)
	}
	return &harness{srv: srv, reg: reg, addr: lis.Addr().String(), ca: ca, creds: creds}
}

// controlPlaneTLS returns the xDS server's TLS config (an SVID of the
// control plane of cluster, client certificates optional as in the control
// plane) and a client config that accepts only that identity.
func (ca *testCA) controlPlaneTLS(t testing.TB, cluster string) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://" + ca.td + "/fedmesh/cluster/" + cluster)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1 << 40), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{id.URL()},
		// grpc-go's bootstrap "tls" channel credentials check the host,
		// as the real control plane's certificate allows.
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	bundle := identity.StaticBundle(x509bundle.FromX509Authorities(id.TrustDomain(), []*x509.Certificate{ca.root}))
	server = identity.ServerConfigOptionalClient(identity.StaticCert(cert), bundle, identity.AuthorizeWorkloads())
	client = identity.ClientConfig(nil, bundle, identity.AuthorizeIDs(id))
	return server, client
}

func pbNode(n Node) *corev3.Node {
	return &corev3.Node{
		Id:       n.ID,
		Metadata: NodeMetadata(n),
		Locality: &corev3.Locality{Region: n.Locality.Region, Zone: n.Locality.Zone, SubZone: n.Locality.Cluster},
	}
}

// adsStream is a minimal state-of-the-world ADS client for tests.
type adsStream struct {
	t      testing.TB
	stream discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
}

func dialADS(t testing.TB, addr string, n Node) *adsStream {
	t.Helper()
	return dialADSWith(t, addr, insecure.NewCredentials(), n)
}

// dial opens an ADS stream for n with h's client credentials; the
// connection is closed when the test ends.
func (h *harness) dial(t testing.TB, n Node) *adsStream {
	t.Helper()
	return dialADSWith(t, h.addr, h.creds, n)
}

func dialADSWith(t testing.TB, addr string, creds credentials.TransportCredentials, n Node) *adsStream {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(func() { cancel(); conn.Close() })
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &adsStream{t: t, stream: st, node: pbNode(n)}
}

func (a *adsStream) request(typ string, names []string, version, nonce string) {
	a.t.Helper()
	err := a.stream.Send(&discoverygrpc.DiscoveryRequest{
		Node: a.node, TypeUrl: typ, ResourceNames: names, VersionInfo: version, ResponseNonce: nonce,
	})
	if err != nil {
		a.t.Fatal(err)
	}
}

func (a *adsStream) recv() (*discoverygrpc.DiscoveryResponse, error) { return a.stream.Recv() }

// secretsOf decodes the secrets of a response by name.
func secretsOf(t testing.TB, resp *discoverygrpc.DiscoveryResponse) map[string]*tlsv3.Secret {
	t.Helper()
	out := map[string]*tlsv3.Secret{}
	for _, r := range resp.GetResources() {
		var s tlsv3.Secret
		if err := r.UnmarshalTo(&s); err != nil {
			t.Fatal(err)
		}
		out[s.GetName()] = &s
	}
	return out
}

func leafOf(t testing.TB, s *tlsv3.Secret) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
	if block == nil {
		t.Fatal("secret has no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func clientNode() Node {
	n := sidecarNode("east-1", locEast1)
	n.Token = "tok-client"
	return n
}

func TestSDSServesOnlyOwnIdentity(t *testing.T) {
	h := startServer(t, nil)
	a := dialADS(t, h.addr, clientNode())
	a.request(resourcev3.SecretType, []string{naming.SecretWorkload, naming.SecretRootCA}, "", "")
	resp, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	secs := secretsOf(t, resp)
	leaf := leafOf(t, secs[naming.SecretWorkload])
	if diff := cmp.Diff("spiffe://fedmesh.test/ns/demo/sa/client", leaf.URIs[0].String()); diff != "" {
		t.Errorf("SVID (-want +got):\n%s", diff)
	}
	if len(secs[naming.SecretRootCA].GetValidationContext().GetTrustedCa().GetInlineBytes()) == 0 {
		t.Error("ROOTCA secret has no trusted CA")
	}
	// The key matches the certificate.
	block, _ := pem.Decode(secs[naming.SecretWorkload].GetTlsCertificate().GetPrivateKey().GetInlineBytes())
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(*ecdsa.PrivateKey).PublicKey.Equal(leaf.PublicKey) {
		t.Error("private key does not match the certificate")
	}

	// Asking for another name yields nothing for it and is counted.
	a.request(resourcev3.SecretType, []string{"spiffe://fedmesh.test/ns/demo/sa/echo"}, resp.GetVersionInfo(), resp.GetNonce())
	poll.True(t, 10*time.Second, "secret_name counted", func() bool {
		return counterValue(t, h.srv.metrics.rejected.WithLabelValues("secret_name")) == 1
	})
}

func TestStreamsRefused(t *testing.T) {
	tests := []struct {
		name   string
		node   func() Node
		code   codes.Code
		reason string
	}{
		{name: "no token", node: func() Node { n := clientNode(); n.Token = ""; return n }, code: codes.Unauthenticated, reason: "unauthenticated"},
		{name: "unknown token", node: func() Node { n := clientNode(); n.Token = "forged"; return n }, code: codes.Unauthenticated, reason: "unauthenticated"},
		{name: "claims another service account", node: func() Node { n := clientNode(); n.ServiceAccount = "echo"; return n }, code: codes.PermissionDenied, reason: "identity_mismatch"},
		{name: "claims another workload", node: func() Node { n := clientNode(); n.Workload = "echo-1"; return n }, code: codes.PermissionDenied, reason: "identity_mismatch"},
		{name: "other cluster", node: func() Node {
			n := clientNode()
			n.Cluster, n.Locality = "west-1", locWest1
			return n
		}, code: codes.PermissionDenied, reason: "wrong_cluster"},
		{name: "bad role", node: func() Node { n := clientNode(); n.Role = "admin"; return n }, code: codes.InvalidArgument, reason: "bad_node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startServer(t, nil)
			a := dialADS(t, h.addr, tt.node())
			a.request(resourcev3.SecretType, []string{naming.SecretWorkload}, "", "")
			_, err := a.recv()
			if diff := cmp.Diff(tt.code.String(), status.Code(err).String()); diff != "" {
				t.Errorf("stream error code (-want +got):\n%s\nerr: %v", diff, err)
			}
			if got := counterValue(t, h.srv.metrics.rejected.WithLabelValues(tt.reason)); got != 1 {
				t.Errorf("rejected{reason=%s} = %v, want 1", tt.reason, got)
			}
		})
	}
}

func TestReusedNodeIDGetsOwnSecret(t *testing.T) {
	h := startServer(t, nil)
	victim := clientNode()
	a := dialADS(t, h.addr, victim)
	a.request(resourcev3.SecretType, []string{naming.SecretWorkload}, "", "")
	if _, err := a.recv(); err != nil {
		t.Fatal(err)
	}
	// Another workload with its own valid token claims the same node.id.
	thief := Node{ID: victim.ID, Role: naming.RoleSidecar, Cluster: "east-1", Namespace: "demo", ServiceAccount: "echo", Token: "tok-echo", Locality: locEast1}
	b := dialADS(t, h.addr, thief)
	b.request(resourcev3.SecretType, []string{naming.SecretWorkload}, "", "")
	resp, err := b.recv()
	if err != nil {
		t.Fatal(err)
	}
	leaf := leafOf(t, secretsOf(t, resp)[naming.SecretWorkload])
	if diff := cmp.Diff("spiffe://fedmesh.test/ns/demo/sa/echo", leaf.URIs[0].String()); diff != "" {
		t.Errorf("SVID (-want +got):\n%s", diff)
	}
}

func TestCertificateRotation(t *testing.T) {
	h := startServer(t, func(c *Config) { c.CertTTL = 2 * time.Second })
	a := dialADS(t, h.addr, clientNode())
	a.request(resourcev3.SecretType, []string{naming.SecretWorkload}, "", "")
	first, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	serial1 := leafOf(t, secretsOf(t, first)[naming.SecretWorkload]).SerialNumber
	// ACK; the renewal at half life arrives as a new version on this stream.
	a.request(resourcev3.SecretType, []string{naming.SecretWorkload}, first.GetVersionInfo(), first.GetNonce())
	second, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	serial2 := leafOf(t, secretsOf(t, second)[naming.SecretWorkload]).SerialNumber
	if serial1.Cmp(serial2) == 0 || second.GetVersionInfo() == first.GetVersionInfo() {
		t.Fatalf("renewal kept serial %v and version %s", serial1, second.GetVersionInfo())
	}
	// A new connection of the same identity gets the renewed certificate.
	n := clientNode()
	n.ID = "sidecar~east-1~second"
	b := dialADS(t, h.addr, n)
	b.request(resourcev3.SecretType, []string{naming.SecretWorkload}, "", "")
	resp, err := b.recv()
	if err != nil {
		t.Fatal(err)
	}
	serial3 := leafOf(t, secretsOf(t, resp)[naming.SecretWorkload]).SerialNumber
	if serial3.Cmp(serial2) < 0 {
		t.Errorf("new connection got certificate %v, older than the renewed %v", serial3, serial2)
	}
}

func claFrom(t testing.TB, resp *discoverygrpc.DiscoveryResponse, name string) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	for _, r := range resp.GetResources() {
		var cla endpointv3.ClusterLoadAssignment
		if err := r.UnmarshalTo(&cla); err != nil {
			t.Fatal(err)
		}
		if cla.GetClusterName() == name {
			return &cla
		}
	}
	t.Fatalf("no assignment %s in response", name)
	return nil
}

func TestPushOnViewChange(t *testing.T) {
	h := startServer(t, nil)
	a := dialADS(t, h.addr, clientNode())
	a.request(resourcev3.EndpointType, []string{echoCluster}, "", "")
	first, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	a.request(resourcev3.EndpointType, []string{echoCluster}, first.GetVersionInfo(), first.GetNonce())

	// The local endpoints go unhealthy.
	v := testView("east-1", func(v *catalog.View) {
		v.Revision = 2
		v.Services[0].Endpoints[0].Healthy = false
	})
	if err := h.srv.UpdateView(v); err != nil {
		t.Fatal(err)
	}
	second, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	got := summarizeCLA(claFrom(t, second, echoCluster))
	want := []string{
		"p0 us-east/a/east-1 w1: 127.0.1.1:15006 UNHEALTHY, 127.0.1.2:15006 UNHEALTHY",
		"p1 us-east/b/east-2 w1: 127.0.0.12:15443 HEALTHY w1 sni=" + echoSNI,
		"p2 us-west/a/west-1 w2: 127.0.0.13:15443 HEALTHY w2 sni=" + echoSNI,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pushed assignment (-want +got):\n%s", diff)
	}
	// An older view is refused and changes nothing.
	if err := h.srv.UpdateView(testView("east-1")); err == nil {
		t.Error("older view accepted")
	}
}

func TestDeltaStream(t *testing.T) {
	h := startServer(t, nil)
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{Node: pbNode(clientNode()), TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range resp.GetResources() {
		names = append(names, r.GetName())
	}
	want := []string{"outbound|5432||store.demo.svc.clusterset.local", echoCluster}
	if diff := cmp.Diff(want, names, sortStrings); diff != "" {
		t.Errorf("delta clusters (-want +got):\n%s", diff)
	}
}

var sortStrings = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

func TestDebugHandler(t *testing.T) {
	h := startServer(t, nil)
	n := clientNode()
	a := dialADS(t, h.addr, n)
	a.request(resourcev3.SecretType, []string{naming.SecretWorkload}, "", "")
	if _, err := a.recv(); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(h.srv.Handler())
	defer web.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(web.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get(DebugXDSPath + "?node=" + url.QueryEscape(n.ID))
	if code != 200 {
		t.Fatalf("/debug/xds: %d %s", code, body)
	}
	if !strings.Contains(body, echoCluster) || !strings.Contains(body, "[redacted]") || strings.Contains(body, "PRIVATE KEY") {
		t.Errorf("/debug/xds lacks the cluster or shows a private key:\n%.2000s", body)
	}
	code, body = get(DebugEndpointsPath + "?node=" + url.QueryEscape(n.ID) + "&service=demo/echo")
	if code != 200 {
		t.Fatalf("/debug/endpoints: %d %s", code, body)
	}
	var dumps []EndpointsDump
	if err := json.Unmarshal([]byte(body), &dumps); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range dumps[0].Clusters[0].Endpoints {
		got = append(got, fmt.Sprintf("%s p%d %s", e.Address, e.Priority, e.PriorityReason))
	}
	want := []string{
		"127.0.1.1:15006 p0 same cluster and zone",
		"127.0.1.2:15006 p0 same cluster and zone",
		"127.0.2.1:15006 p1 same region us-east",
		"127.0.3.1:15006 p2 other region us-west",
		"127.0.3.2:15006 p2 other region us-west",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/debug/endpoints (-want +got):\n%s", diff)
	}
	if code, _ := get(DebugXDSPath + "?node=nobody"); code != http.StatusNotFound {
		t.Errorf("unknown node: status %d, want 404", code)
	}
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
