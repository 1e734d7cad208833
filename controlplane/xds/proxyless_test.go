package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds" // the xds:/// resolver and balancers

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/svidfiles"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// backend is a real gRPC server that says which cluster served a call.
type backend struct {
	testpb.UnimplementedTestServiceServer
	name string
}

func (b *backend) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{ServerId: b.name}, nil
}

func startBackend(t *testing.T, name string) (string, int32) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	testpb.RegisterTestServiceServer(g, &backend{name: name})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); wg.Wait() })
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	p, _ := strconv.Atoi(port)
	return host, int32(p)
}

// TestProxylessGRPC: a plain grpc-go client with the xds resolver calls
// across clusters through this control plane, prefers its own locality and
// fails over when the local endpoints go unhealthy, then comes back.
func TestProxylessGRPC(t *testing.T) {
	eastHost, eastPort := startBackend(t, "east-1")
	westHost, westPort := startBackend(t, "west-1")
	view := func(rev uint64, eastHealthy bool) *catalog.View {
		mk := func(host string, port int32, loc topology.Locality, healthy bool) catalog.ViewEndpoint {
			return catalog.ViewEndpoint{Endpoint: catalog.Endpoint{Address: host, Port: port, PortName: "grpc",
				Locality: loc, Ready: healthy, ServiceAccount: "echo"}, Healthy: healthy}
		}
		return &catalog.View{
			Revision: rev, Local: "east-1",
			Clusters: map[string]catalog.ClusterInfo{
				"east-1": {Name: "east-1", Locality: locEast1},
				"west-1": {Name: "west-1", Locality: locWest1},
			},
			Services: []catalog.ImportedService{{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{{Name: "grpc", Port: 50051, AppProtocol: catalog.AppGRPC}},
				Clusters: []string{"east-1", "west-1"},
				Endpoints: []catalog.ViewEndpoint{
					mk(eastHost, eastPort, locEast1, eastHealthy),
					mk(westHost, westPort, locWest1, true),
				},
			}},
		}
	}
	h := startServerWith(t, true, nil)
	if err := h.srv.UpdateView(view(2, true)); err != nil {
		t.Fatal(err)
	}
	// The bootstrap of `fedmesh certs`: TLS to the control plane and the
	// certificate provider the clusters' TLS contexts name. The backends
	// here are plaintext, so the client uses insecure transport
	// credentials, which ignore the TLS contexts (TestProxylessMTLS uses
	// xDS credentials).
	bootstrap := proxylessWorkload(t, h, Node{ID: "proxyless~127.0.1.100~client.demo", Role: naming.RoleProxyless,
		Cluster: "east-1", Namespace: "demo", ServiceAccount: "client", Workload: "client", Token: "tok-client", Locality: locEast1})
	// The bootstrap goes to grpc-go's resolver directly: the same JSON a
	// client would find through GRPC_XDS_BOOTSTRAP_CONFIG.
	resolverBuilder, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///echo.demo.svc.clusterset.local:50051",
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolverBuilder))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	call := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		if err != nil {
			return "error: " + err.Error()
		}
		return resp.GetServerId()
	}
	// servedBy polls until a call is served by want, then checks that the
	// next calls are too.
	servedBy := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		last := ""
		for last = call(); last != want; last = call() {
			if time.Now().After(deadline) {
				t.Fatalf("calls never reached %s; last answer: %s", want, last)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for i := 0; i < 20; i++ {
			if got := call(); got != want {
				t.Fatalf("call %d served by %s, want %s", i, got, want)
			}
		}
	}

	servedBy("east-1") // own locality first

	if err := h.srv.UpdateView(view(3, false)); err != nil {
		t.Fatal(err)
	}
	servedBy("west-1") // local endpoints unhealthy: the next priority

	if err := h.srv.UpdateView(view(4, true)); err != nil {
		t.Fatal(err)
	}
	servedBy("east-1") // back when they recover
}

// TestProxylessChurnKeepsSidecarSecrets: proxyless clients and a gateway,
// one of them with the sidecar's own identity, connect and disconnect over
// real TLS again and again; the sidecar's certificate is never dropped or
// replaced, and a rebuild still serves it (the node count was once taken
// for every role but added for sidecars only).
func TestProxylessChurnKeepsSidecarSecrets(t *testing.T) {
	h := startServerWith(t, true, nil)
	side := clientNode()
	a := h.dial(t, side)
	a.request(resourcev3.SecretType, []string{naming.SecretWorkload, naming.SecretRootCA}, "", "")
	first, err := a.recv()
	if err != nil {
		t.Fatal(err)
	}
	serial := leafOf(t, secretsOf(t, first)[naming.SecretWorkload]).SerialNumber

	proxyless := func(i int, tok, sa, workload string) Node {
		return Node{ID: "proxyless~churn-" + strconv.Itoa(i), Role: naming.RoleProxyless, Cluster: "east-1",
			Namespace: "demo", ServiceAccount: sa, Workload: workload, Token: tok, Locality: locEast1}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const rounds = 20
	for i := range rounds {
		churners := []Node{
			proxyless(i, "tok-client", "client", "client"), // the sidecar's own identity
			proxyless(i, "tok-echo", "echo", ""),           // another identity
			{ID: "gateway~churn-" + strconv.Itoa(i), Role: naming.RoleGateway, Cluster: "east-1",
				Namespace: "fedmesh-system", ServiceAccount: "gateway", Token: "tok-gw", Locality: locEast1},
		}
		for _, n := range churners {
			conn := h.newConn(t)
			_, err := openStream(ctx, conn, n)
			conn.Close()
			if err != nil {
				t.Fatalf("round %d, %s: %v", i, n.ID, err)
			}
		}
		poll.True(t, 10*time.Second, "churned nodes gone", func() bool {
			h.srv.mu.Lock()
			defer h.srv.mu.Unlock()
			return len(h.srv.nodes) == 1
		})
		h.srv.mu.Lock()
		is := h.srv.identities["demo/client"]
		nodes, idents := 0, len(h.srv.identities)
		if is != nil {
			nodes = is.nodes
		}
		h.srv.mu.Unlock()
		if is == nil || nodes != 1 || idents != 1 {
			t.Fatalf("round %d: identity demo/client %v with %d nodes, %d identities; want it with 1 node, alone", i, is != nil, nodes, idents)
		}
	}

	// Every node is rebuilt with a new view; a second stream of the
	// sidecar's node gets the same certificate.
	builds := counterValue(t, h.srv.metrics.builds)
	if err := h.srv.UpdateView(testView("east-1", func(v *catalog.View) { v.Revision = 2 })); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "rebuild", func() bool { return counterValue(t, h.srv.metrics.builds) > builds })
	b := h.dial(t, side)
	b.request(resourcev3.SecretType, []string{naming.SecretWorkload, naming.SecretRootCA}, "", "")
	again, err := b.recv()
	if err != nil {
		t.Fatal(err)
	}
	secs := secretsOf(t, again)
	if len(secs) != 2 {
		t.Fatalf("after the churn the sidecar gets %d secrets, want 2", len(secs))
	}
	if got := leafOf(t, secs[naming.SecretWorkload]).SerialNumber; got.Cmp(serial) != 0 {
		t.Errorf("certificate serial %v after the churn, want the original %v", got, serial)
	}
	if again.GetVersionInfo() != first.GetVersionInfo() {
		t.Errorf("secret version %s after the churn, want %s", again.GetVersionInfo(), first.GetVersionInfo())
	}
}

// idBackend answers with its name and the SPIFFE ID the caller's TLS
// certificate proved.
type idBackend struct {
	testpb.UnimplementedTestServiceServer
	name string
}

func (b *idBackend) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	caller := "no client certificate"
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 && len(info.State.PeerCertificates[0].URIs) == 1 {
			caller = info.State.PeerCertificates[0].URIs[0].String()
		}
	}
	return &testpb.SimpleResponse{ServerId: b.name + " <- " + caller}, nil
}

// proxylessWorkload runs the certificate writer of one proxyless workload
// against h and returns its grpc-go bootstrap.
func proxylessWorkload(t *testing.T, h *harness, n Node) []byte {
	t.Helper()
	dir := t.TempDir()
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.root)
	cpID := spiffeid.RequireFromString("spiffe://" + testTD + "/fedmesh/cluster/east-1")
	w, err := svidfiles.New(svidfiles.Config{
		Dir: dir,
		XDS: xdsclient.Config{
			Target:      h.addr,
			Credentials: credentials.NewTLS(xdsclient.ServerTLSConfig(roots, cpID, nil)),
			Node:        pbNode(n),
			Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-w.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("no certificate files for %s", n.ID)
	}
	meta := map[string]string{}
	for k, v := range NodeMetadata(n).GetFields() {
		meta[k] = v.GetStringValue()
	}
	bootstrap, err := svidfiles.Bootstrap(svidfiles.BootstrapConfig{
		ServerURI: h.addr, NodeID: n.ID, Dir: dir, Metadata: meta,
		Locality: map[string]string{"region": n.Locality.Region, "zone": n.Locality.Zone, "sub_zone": n.Locality.Cluster},
	})
	if err != nil {
		t.Fatal(err)
	}
	return bootstrap
}

// TestProxylessMTLS: a stock grpc-go xDS server (xds.NewGRPCServer) and
// client (xds:/// target), both with xDS credentials and certificate files
// kept by svidfiles, talk mutual TLS through the control plane's
// resources: the server sees the client's SPIFFE ID, the client accepts
// only the identities the catalog names for the service, and the server
// refuses a client without a certificate.
func TestProxylessMTLS(t *testing.T) {
	h := startServerWith(t, true, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := int32(lis.Addr().(*net.TCPAddr).Port)
	view := func(rev uint64, sa string) *catalog.View {
		return &catalog.View{
			Revision: rev, Local: "east-1",
			Clusters: map[string]catalog.ClusterInfo{"east-1": {Name: "east-1", Locality: locEast1}},
			Services: []catalog.ImportedService{{
				Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
				Ports:    []catalog.Port{{Name: "grpc", Port: 50051, AppProtocol: catalog.AppGRPC}},
				Clusters: []string{"east-1"},
				Endpoints: []catalog.ViewEndpoint{{Endpoint: catalog.Endpoint{Address: "127.0.0.1", Port: port, PortName: "grpc",
					Locality: locEast1, Ready: true, ServiceAccount: sa, Workload: "echo-grpc"}, Healthy: true}},
			}},
		}
	}
	if err := h.srv.UpdateView(view(2, "echo")); err != nil {
		t.Fatal(err)
	}
	serverNode := Node{ID: "proxyless~echo-grpc", Role: naming.RoleProxyless, Cluster: "east-1", Namespace: "demo",
		ServiceAccount: "echo", Workload: "echo-grpc", Token: "tok-echo", Locality: locEast1}
	clientNode := Node{ID: "proxyless~client", Role: naming.RoleProxyless, Cluster: "east-1", Namespace: "demo",
		ServiceAccount: "client", Workload: "client", Token: "tok-client", Locality: locEast1}

	serverCreds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := xds.NewGRPCServer(grpc.Creds(serverCreds), xds.BootstrapContentsForTesting(proxylessWorkload(t, h, serverNode)))
	if err != nil {
		t.Fatal(err)
	}
	testpb.RegisterTestServiceServer(gs, &idBackend{name: "echo-grpc"})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); wg.Wait() })

	resolverBuilder, err := xds.NewXDSResolverWithConfigForTesting(proxylessWorkload(t, h, clientNode))
	if err != nil {
		t.Fatal(err)
	}
	clientCreds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///echo.demo.svc.clusterset.local:50051",
		grpc.WithTransportCredentials(clientCreds), grpc.WithResolvers(resolverBuilder))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	call := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		return resp.GetServerId(), err
	}

	want := "echo-grpc <- spiffe://" + testTD + "/ns/demo/sa/client"
	var got string
	poll.True(t, 10*time.Second, "an mTLS call through the mesh", func() bool {
		got, err = call()
		return err == nil
	})
	if got != want {
		t.Errorf("served as %q, want %q", got, want)
	}

	// The server refuses a caller without a certificate: plain TLS that
	// trusts the federation's roots.
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.root)
	plain, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(
		&tls.Config{RootCAs: roots, InsecureSkipVerify: true}))) //nolint:gosec // the test is about the client certificate
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resp, err := testpb.NewTestServiceClient(plain).UnaryCall(ctx, &testpb.SimpleRequest{}); err == nil {
		t.Errorf("a caller without a client certificate was served: %q", resp.GetServerId())
	}

	// An AuthorizationPolicy reaches the gRPC server as an RBAC filter
	// (gRFC A41). A DENY of the client's calls to the test service refuses
	// them with PermissionDenied. Its condition on the caller's cluster,
	// which grpc-go cannot check, is dropped: the rule denies more, never
	// less.
	deny, err := policy.Parse([]byte(`apiVersion: fedmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-client, namespace: demo}
spec:
  action: DENY
  targetRefs: [{kind: Service, name: echo}]
  rules:
  - from: [{source: {principals: ["spiffe://` + testTD + `/ns/demo/sa/client"], clusters: [west-1]}}]
    to: [{operation: {paths: ["/grpc.testing.TestService/*"]}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.UpdatePolicies([]policy.AuthorizationPolicy{*deny}); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "the call denied by demo/deny-client", func() bool {
		_, err := call()
		return status.Code(err) == codes.PermissionDenied
	})
	if err := h.srv.UpdatePolicies(nil); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "the call served again once the policy is gone", func() bool {
		_, err := call()
		return err == nil
	})

	// The catalog says the service runs as another identity: a new
	// connection no longer accepts the server's certificate (a handshake
	// checks the SANs; connections made before keep going).
	if err := h.srv.UpdateView(view(3, "other")); err != nil {
		t.Fatal(err)
	}
	var refused error
	poll.True(t, 10*time.Second, "new connections refused once the server's identity is not the service's", func() bool {
		fresh, err := grpc.NewClient("xds:///echo.demo.svc.clusterset.local:50051",
			grpc.WithTransportCredentials(clientCreds), grpc.WithResolvers(resolverBuilder))
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, refused = testpb.NewTestServiceClient(fresh).UnaryCall(ctx, &testpb.SimpleRequest{})
		return refused != nil
	})
	if status.Code(refused) != codes.Unavailable || !strings.Contains(refused.Error(), "do not match any of the accepted SANs") {
		t.Errorf("call to a server of the wrong identity: %v, want Unavailable for a SAN mismatch", refused)
	}
}
