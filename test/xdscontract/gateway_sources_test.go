package xdscontract

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/controlplane/plan/plantest"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/gateway"
	"github.com/fedmesh/fedmesh/internal/hostport"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// TestGatewaySourceClustersOverXDS: a real gateway, configured by a real
// xDS server of west-1 over mTLS, labels connections with the cluster
// their peer address belongs to: east-1 by the range it declares, east-2
// by its gateway's address (derived), anything else unknown. When east-1
// stops declaring its range, its clients count as unknown.
func TestGatewaySourceClustersOverXDS(t *testing.T) {
	backend := tlsBackend(t)
	bhost, bport, err := hostport.SplitPort(backend)
	if err != nil {
		t.Fatal(err)
	}
	view := func(east1CIDRs ...string) *catalog.View {
		return plantest.View("west-1", func(v *catalog.View) {
			ci := v.Clusters["east-1"]
			for _, c := range east1CIDRs {
				ci.CIDRs = append(ci.CIDRs, netip.MustParsePrefix(c))
			}
			v.Clusters["east-1"] = ci
			// west-1's echo replicas: one, the test's TLS backend.
			var eps []catalog.ViewEndpoint
			for _, ep := range v.Services[0].Endpoints {
				if ep.Locality.Cluster != "west-1" {
					eps = append(eps, ep)
				}
			}
			e := plantest.Endpoint(bhost, plantest.West1, true, "")
			e.Port = int32(bport)
			v.Services[0].Endpoints = append(eps, e)
		})
	}
	x := startXDS(t, "west-1")
	if err := x.srv.UpdateView(view("127.0.1.0/24")); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	gw := x.runGateway(t, reg)
	poll.Until(t, 30*time.Second, "the gateway routes echo", func() error {
		for _, r := range gw.Routes() {
			if r.Service.SNI() == plantest.EchoSNI && len(r.Endpoints) == 1 {
				return nil
			}
		}
		return fmt.Errorf("routes %+v", gw.Routes())
	})

	for _, src := range []string{"127.0.1.7", "127.0.1.8", "127.0.0.12", "127.0.0.2"} {
		through(t, src, gw.Addr())
	}
	want := map[string]float64{"east-1": 2, "east-2": 1, "unknown": 1}
	if diff := cmp.Diff(want, connections(t, reg)); diff != "" {
		t.Errorf("fedmesh_gateway_connections_total by source_cluster (-want +got):\n%s", diff)
	}

	// east-1 declares nothing any more: the control plane sends a table
	// without its range, and its clients are unknown.
	if err := x.srv.UpdateView(view()); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "east-1's range gone from the gateway's table", func() error {
		through(t, "127.0.1.7", gw.Addr())
		got := connections(t, reg)
		if got["unknown"] < 2 {
			return fmt.Errorf("connections %v", got)
		}
		return nil
	})
}

// xdsServer is a cluster's xDS server as the control plane wires it in
// local mode: bootstrap tokens signed by the cluster CA, mTLS with a
// control plane certificate of a real cluster CA.
type xdsServer struct {
	srv   *xds.Server
	addr  string
	auth  *ca.Authority
	roots *x509.CertPool
}

func startXDS(t *testing.T, cluster string) *xdsServer {
	t.Helper()
	rootDir := t.TempDir()
	if err := ca.InitRoot(plantest.TrustDomain, rootDir); err != nil {
		t.Fatal(err)
	}
	root, err := ca.LoadRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := root.IssueCluster(cluster, 0)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.NewAuthority(files)
	if err != nil {
		t.Fatal(err)
	}
	cpCert, err := auth.IssueControlPlane(time.Hour, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := xds.NewServer(xds.Config{
		Cluster:       cluster,
		Settings:      xds.DefaultSettings(plantest.TrustDomain),
		Authenticator: xds.TokenAuthenticator(auth.VerifyBootstrapToken),
		Issuer:        auth,
		Debounce:      10 * time.Millisecond,
		Logger:        slog.New(slog.DiscardHandler),
		Registerer:    prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS := identity.ServerConfigOptionalClient(identity.StaticCert(cpCert.TLS), identity.StaticBundle(auth.Bundle()), identity.AuthorizeWorkloads())
	g := grpc.NewServer(append(srv.ServerOptions(), grpc.Creds(credentials.NewTLS(serverTLS)))...)
	srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(srv.Listener(lis)) }()
	go func() { defer wg.Done(); _ = srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); g.Stop(); wg.Wait() })
	roots := x509.NewCertPool()
	for _, r := range auth.TrustBundle() {
		roots.AddCert(r)
	}
	return &xdsServer{srv: srv, addr: lis.Addr().String(), auth: auth, roots: roots}
}

// runGateway runs a whole gateway (its xDS client included) of x's
// cluster with a bootstrap token of the default gateway identity.
func (x *xdsServer) runGateway(t *testing.T, reg *prometheus.Registry) *gateway.Gateway {
	t.Helper()
	tok, err := x.auth.IssueBootstrapToken("fedmesh-system", "gateway", "gateway", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{
		Cluster:        x.auth.Cluster(),
		ControlPlane:   x.addr,
		ControlPlaneID: x.auth.ControlPlaneID(),
		RootCAs:        x.roots,
		Token:          tok,
		Namespace:      "fedmesh-system",
		ServiceAccount: "gateway",
		Workload:       "gateway",
		ListenAddr:     "127.0.0.1:0",
		XDSBackoff:     100 * time.Millisecond,
		Logger:         slog.New(slog.DiscardHandler),
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})
	return gw
}

// tlsBackend is an echo service's sidecar as the gateway sees it: a TLS
// server that answers one line per connection. It stops with the test.
func tlsBackend(t *testing.T) string {
	t.Helper()
	rootDir := t.TempDir()
	if err := ca.InitRoot(plantest.TrustDomain, rootDir); err != nil {
		t.Fatal(err)
	}
	root, err := ca.LoadRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := root.IssueCluster("west-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.NewAuthority(files)
	if err != nil {
		t.Fatal(err)
	}
	is, err := auth.IssueWorkload("demo", "echo", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*is.TLS}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.WriteString(c, "echo\n")
			}()
		}
	}()
	t.Cleanup(func() { lis.Close(); wg.Wait() })
	return lis.Addr().String()
}

// through opens a TLS connection from src through the gateway at addr to
// echo, reads its answer and closes it.
func through(t *testing.T, src, addr string) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: plantest.EchoSNI, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("from %s through the gateway: %v", src, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "echo\n" {
		t.Fatalf("from %s: read %q, %v", src, b, err)
	}
}

// connections returns fedmesh_gateway_connections_total of echo by
// source_cluster.
func connections(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "fedmesh_gateway_connections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["destination_service"] != strings.TrimPrefix(plantest.EchoSNI, "8080.") {
				t.Errorf("a connection to %q", labels["destination_service"])
			}
			out[labels["source_cluster"]] += m.GetCounter().GetValue()
		}
	}
	return out
}
