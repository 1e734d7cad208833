package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds" // the xds:/// resolver, balancers and server

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/svidfiles"
	"github.com/fedmesh/fedmesh/internal/testpki"
)

// The proxyless workloads of TestProxylessMTLSAcrossClusters: a gRPC
// service exported by east-2, and its caller in east-1.
const (
	grpcService = "echo-grpc"
	grpcPort    = 50051
	grpcTarget  = "xds:///echo-grpc.demo.svc.clusterset.local:50051"
	grpcCaller  = "grpc-client"
	serverID    = "spiffe://" + trustDomain + "/ns/demo/sa/" + grpcService
	callerID    = "spiffe://" + trustDomain + "/ns/demo/sa/" + grpcCaller
)

// TestProxylessMTLSAcrossClusters: a stock grpc-go client in east-1
// (xds:/// target, xDS credentials) calls a stock grpc-go xDS server
// (xds.NewGRPCServer) in east-2, each with the bootstrap and certificate
// files a real `fedmesh certs --watch` keeps from its own cluster's control
// plane, and nothing else. East-2 exports the service from its source
// directory; east-1 imports it over the federation. The client dials the
// server's own address (a proxyless node gets every endpoint as it is, not
// the gateway) with mutual TLS: the server sees the client's SPIFFE ID on a
// certificate of east-1's CA, the client sees the service's SPIFFE ID on a
// certificate of east-2's CA, both chaining to the federation's root. The
// server refuses a plaintext caller, a TLS caller without a certificate and
// one whose certificate claims the client's SPIFFE ID from another root;
// and once east-2's catalog says the service runs as another identity, the
// client refuses the server.
func TestProxylessMTLSAcrossClusters(t *testing.T) {
	m := startMesh(t, meshSpec{})
	east1, east2 := m.cluster("east-1"), m.cluster("east-2")

	// The server's socket first, on a free port of an east-2 workload
	// address, so that the catalog names the port it listens on.
	lis, err := net.Listen("tcp", net.JoinHostPort(workloadIP(east2, 60), "0"))
	if err != nil {
		t.Fatal(err)
	}
	serverAddr := lis.Addr().String()
	m.exportGRPC(east2, lis.Addr().(*net.TCPAddr), grpcService)
	poll.Until(t, 60*time.Second, "east-1 imports "+grpcService+" with east-2's endpoint", func() error {
		return m.wantEndpoint(east1, grpcService, serverAddr)
	})

	serverFiles := m.proxylessCerts(east2, grpcService)
	callerFiles := m.proxylessCerts(east1, grpcCaller)

	// The server: grpc-go's xDS server with xDS credentials. The fallback
	// (plaintext) would serve only if the listener carried no security:
	// the refusals below prove it does.
	srv := &callerRecorder{}
	serving := make(chan struct{})
	var (
		servingOnce sync.Once
		modeMu      sync.Mutex // guards lastMode
		lastMode    string
	)
	serverCreds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := xds.NewGRPCServer(grpc.Creds(serverCreds), xds.BootstrapContentsForTesting(serverFiles.bootstrap),
		xds.ServingModeCallback(func(addr net.Addr, args xds.ServingModeChangeArgs) {
			modeMu.Lock()
			lastMode = fmt.Sprintf("%v on %s (%v)", args.Mode, addr, args.Err)
			modeMu.Unlock()
			if args.Mode == connectivity.ServingModeServing {
				servingOnce.Do(func() { close(serving) })
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	testpb.RegisterTestServiceServer(gs, srv)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); wg.Wait() })
	select {
	case <-serving:
	case <-time.After(30 * time.Second):
		modeMu.Lock()
		defer modeMu.Unlock()
		t.Fatalf("the xDS server on %s never got its listener from east-2's control plane; last mode: %q", serverAddr, lastMode)
	}

	// The client: the xds:/// resolver on the caller's bootstrap, xDS
	// credentials.
	resolverBuilder, err := xds.NewXDSResolverWithConfigForTesting(callerFiles.bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	clientCreds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(grpcTarget, grpc.WithTransportCredentials(clientCreds), grpc.WithResolvers(resolverBuilder))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	gwConns := metric(scrape(t, east2.IP+":15021/stats/prometheus"), "fedmesh_gateway_connections_total")
	var (
		p    peer.Peer
		resp *testpb.SimpleResponse
	)
	poll.Until(t, 30*time.Second, "an mTLS call from east-1 to east-2's "+grpcService, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err = client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Peer(&p))
		return err
	})

	// The server saw the caller's SPIFFE ID, on a certificate of east-1's
	// CA, the one `fedmesh certs` wrote for it.
	if got := resp.GetServerId(); got != grpcService+" <- "+callerID {
		t.Errorf("served as %q, want %q", got, grpcService+" <- "+callerID)
	}
	callerChain := srv.last()
	if len(callerChain) == 0 {
		t.Fatal("the server recorded no client certificate")
	}
	m.wantIssuedBy(t, "the caller's certificate", callerChain, east1, east2)
	if callerChain[0].SerialNumber.Cmp(callerFiles.leaf(t).SerialNumber) != 0 {
		t.Errorf("the caller presented serial %v, not the one in %s (%v)", callerChain[0].SerialNumber, callerFiles.dir, callerFiles.leaf(t).SerialNumber)
	}

	// The client dialled the server itself, not east-2's gateway, and saw
	// the service's SPIFFE ID on a certificate of east-2's CA, the one
	// `fedmesh certs` wrote for the server.
	if p.Addr == nil || p.Addr.String() != serverAddr {
		t.Errorf("the call went to %v, want the server's own address %s", p.Addr, serverAddr)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		t.Fatalf("the call's auth info is %T, not TLS", p.AuthInfo)
	}
	serverChain := info.State.PeerCertificates
	if len(serverChain) == 0 {
		t.Fatal("the server presented no certificate")
	}
	if got := uris(serverChain[0]); got != serverID {
		t.Errorf("the server's certificate names %q, want %q", got, serverID)
	}
	m.wantIssuedBy(t, "the server's certificate", serverChain, east2, east1)
	if serverChain[0].SerialNumber.Cmp(serverFiles.leaf(t).SerialNumber) != 0 {
		t.Errorf("the server presented serial %v, not the one in %s (%v)", serverChain[0].SerialNumber, serverFiles.dir, serverFiles.leaf(t).SerialNumber)
	}
	if n := metric(scrape(t, east2.IP+":15021/stats/prometheus"), "fedmesh_gateway_connections_total"); n != gwConns {
		t.Errorf("east-2's gateway routed %v connections during the proxyless calls; they must not cross it", n-gwConns)
	}

	// Callers the server refuses: plaintext, TLS without a client
	// certificate, and a certificate with the caller's SPIFFE ID from a
	// root that is not the federation's.
	root := readCert(t, m.path("root", ca.RootCertFile))
	roots := x509.NewCertPool()
	roots.AddCert(root)
	impostorCA := testpki.NewTrustDomainRoot(t, "impostor", trustDomain)
	impostorKey := testpki.Key(t)
	impostor := tls.Certificate{Certificate: [][]byte{impostorCA.Leaf(t, impostorKey, callerID).Raw}, PrivateKey: impostorKey}
	for _, c := range []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"plaintext", insecure.NewCredentials()},
		{"TLS without a client certificate", credentials.NewTLS(&tls.Config{
			RootCAs: roots, InsecureSkipVerify: true, //nolint:gosec // the test is about the client certificate
		})},
		{"a client certificate of another root", credentials.NewTLS(&tls.Config{
			RootCAs: roots, InsecureSkipVerify: true, //nolint:gosec // the test is about the client certificate
			// Sent whatever authorities the server names (Go's client
			// would otherwise send no certificate of an unnamed root).
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &impostor, nil },
		})},
	} {
		// Refused by the transport (Unavailable), never answered by the
		// service.
		resp, err := directCall(serverAddr, c.creds)
		if err == nil {
			t.Errorf("%s: served as %q; want refused", c.name, resp.GetServerId())
		} else if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: %v; want the connection refused (Unavailable)", c.name, err)
		}
	}
	if n := srv.calls(); n != 1 {
		t.Errorf("the server served %d calls, want only the mTLS one", n)
	}

	// The client's check of the server's identity holds across clusters:
	// east-2's catalog says the service runs as another service account,
	// east-1 imports that, and the client's new connections refuse the
	// server's certificate (one made before keeps going).
	m.exportGRPC(east2, lis.Addr().(*net.TCPAddr), "other")
	var refused error
	poll.Until(t, 60*time.Second, "new connections refused once east-2 says the service is another identity", func() error {
		fresh, err := grpc.NewClient(grpcTarget, grpc.WithTransportCredentials(clientCreds), grpc.WithResolvers(resolverBuilder))
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, refused = testpb.NewTestServiceClient(fresh).UnaryCall(ctx, &testpb.SimpleRequest{}); refused == nil {
			return errors.New("still served")
		}
		return nil
	})
	if status.Code(refused) != codes.Unavailable || !strings.Contains(refused.Error(), "do not match any of the accepted SANs") {
		t.Errorf("call to a server of the wrong identity: %v, want Unavailable for a SAN mismatch", refused)
	}
}

// exportGRPC writes (or rewrites) c's source file of the proxyless gRPC
// service: port grpc (50051) served by one workload at addr whose service
// account is sa.
func (m *mesh) exportGRPC(c demo.Cluster, addr *net.TCPAddr, sa string) {
	m.t.Helper()
	doc := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: demo}
spec:
  selector: {app: %[1]s}
  ports: [{name: grpc, port: %[2]d, appProtocol: grpc}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: %[1]s, namespace: demo}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: %[1]s, namespace: demo, labels: {app: %[1]s}}
spec: {address: %[3]s, ports: {grpc: %[4]d}, serviceAccount: %[5]s, zone: %[6]s}
`, grpcService, grpcPort, addr.IP, addr.Port, sa, c.Zone)
	// Written aside and renamed, so that the source never reads half a file.
	dir := m.path(c.Name, "source")
	tmp := filepath.Join(dir, ".grpc.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "grpc.yaml")); err != nil {
		m.t.Fatal(err)
	}
}

// wantEndpoint returns nil when c's merged view has service demo/name
// with exactly one endpoint, at addr and healthy.
func (m *mesh) wantEndpoint(c demo.Cluster, name, addr string) error {
	var v struct {
		Services []struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			Endpoints []struct {
				Address string `json:"address"`
				Port    int32  `json:"port"`
				Healthy bool   `json:"healthy"`
			} `json:"endpoints"`
		} `json:"services"`
	}
	if err := m.admin.Get(c.Admin(), "/debug/view", &v); err != nil {
		return err
	}
	for _, s := range v.Services {
		if s.Namespace != "demo" || s.Name != name {
			continue
		}
		if len(s.Endpoints) != 1 {
			return fmt.Errorf("%s sees %d endpoints of %s", c.Name, len(s.Endpoints), name)
		}
		ep := s.Endpoints[0]
		if got := net.JoinHostPort(ep.Address, strconv.Itoa(int(ep.Port))); got != addr || !ep.Healthy {
			return fmt.Errorf("%s sees %s at %s (healthy %v)", c.Name, name, got, ep.Healthy)
		}
		return nil
	}
	return fmt.Errorf("%s does not see %s", c.Name, name)
}

// proxylessFiles are what `fedmesh certs` keeps for one workload.
type proxylessFiles struct {
	dir       string // cert.pem, key.pem, ca.pem
	bootstrap []byte // the grpc-go bootstrap JSON
}

// leaf is the certificate on disk.
func (f proxylessFiles) leaf(t *testing.T) *x509.Certificate {
	t.Helper()
	return readCert(t, filepath.Join(f.dir, svidfiles.CertFile))
}

// proxylessCerts issues a bootstrap token for the workload (namespace
// demo, service account and workload name both sa) of cluster c, starts
// `fedmesh certs --watch` against c's control plane and waits until its
// certificate files and bootstrap are written.
func (m *mesh) proxylessCerts(c demo.Cluster, sa string) proxylessFiles {
	m.t.Helper()
	dir := m.workloadDir(c, "demo", sa, sa)
	f := proxylessFiles{dir: filepath.Join(dir, "certs")}
	bootstrap := filepath.Join(dir, "bootstrap.json")
	p := m.start(c, c.Name+"-"+sa+"-certs", "certs", "--cluster", c.Name, "--region", c.Region, "--zone", c.Zone,
		"--namespace", "demo", "--service-account", sa, "--workload", sa,
		"--xds-address", c.IP+":15010", "--trust-domain", trustDomain,
		"--root-bundle", filepath.Join(dir, "bundle.crt"), "--token-file", filepath.Join(dir, "token"),
		"--dir", f.dir, "--bootstrap", bootstrap, "--watch")
	poll.Until(m.t, 30*time.Second, "fedmesh certs writes "+sa+"'s files in "+c.Name, func() error {
		if p.exited() {
			m.t.Fatalf("%s exited: %v", p.name, p.err)
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(f.dir, svidfiles.CertFile), filepath.Join(f.dir, svidfiles.KeyFile)); err != nil {
			return err
		}
		b, err := os.ReadFile(bootstrap)
		if err != nil {
			return err
		}
		f.bootstrap = b
		return nil
	})
	if got := uris(f.leaf(m.t)); got != "spiffe://"+trustDomain+"/ns/demo/sa/"+sa {
		m.t.Fatalf("%s's certificate names %q", sa, got)
	}
	return f
}

// wantIssuedBy checks that chain (leaf first, as presented) was issued
// by cluster from's CA, not by other's, and verifies to the federation's
// root.
func (m *mesh) wantIssuedBy(t *testing.T, what string, chain []*x509.Certificate, from, other demo.Cluster) {
	t.Helper()
	leaf := chain[0]
	if err := leaf.CheckSignatureFrom(readCert(t, m.path(from.Name, "ca", ca.CACertFile))); err != nil {
		t.Errorf("%s (%s) is not signed by %s's CA: %v", what, uris(leaf), from.Name, err)
	}
	if leaf.CheckSignatureFrom(readCert(t, m.path(other.Name, "ca", ca.CACertFile))) == nil {
		t.Errorf("%s (%s) is signed by %s's CA", what, uris(leaf), other.Name)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, m.path("root", ca.RootCertFile)))
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("%s (%s) does not verify to the federation's root with the chain presented: %v", what, uris(leaf), err)
	}
}

// directCall calls the server at addr with creds, without xDS.
func directCall(addr string, creds credentials.TransportCredentials) (*testpb.SimpleResponse, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{})
}

// callerRecorder is the gRPC service: it answers with its name and the
// caller's SPIFFE ID, and keeps the caller's certificate chain.
type callerRecorder struct {
	testpb.UnimplementedTestServiceServer

	mu     sync.Mutex // guards chain and served
	chain  []*x509.Certificate
	served int
}

func (s *callerRecorder) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil, status.Errorf(codes.Unauthenticated, "no client certificate (auth info %T)", p.AuthInfo)
	}
	s.mu.Lock()
	s.chain, s.served = info.State.PeerCertificates, s.served+1
	s.mu.Unlock()
	return &testpb.SimpleResponse{ServerId: grpcService + " <- " + uris(info.State.PeerCertificates[0])}, nil
}

func (s *callerRecorder) last() []*x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chain
}

func (s *callerRecorder) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

// uris is a certificate's URI SANs, comma separated.
func uris(c *x509.Certificate) string {
	s := make([]string, len(c.URIs))
	for i, u := range c.URIs {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}
