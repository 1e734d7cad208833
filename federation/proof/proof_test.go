package proof_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/federation/proof"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/testpki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const td = "fedmesh.test"

// pki is a federation's root and the cluster CAs under it, built as
// `fedmesh ca issue-cluster` builds them: the cluster's name is the CA's
// one organizational unit.
type pki struct {
	root   *testpki.CA
	bundle *x509bundle.Bundle
}

func newPKI(t *testing.T) *pki {
	root := testpki.NewRoot(t, "fed")
	return &pki{root: root, bundle: x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString(td), []*x509.Certificate{root.Cert})}
}

func clusterCA(t *testing.T, root *testpki.CA, cluster string) *testpki.CA {
	t.Helper()
	k := testpki.Key(t)
	c := testpki.Sign(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "fedmesh cluster CA " + cluster, OrganizationalUnit: []string{cluster}},
		NotBefore:             root.Now.Add(-time.Hour),
		NotAfter:              root.Now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, root.Cert, k.Public(), root.Key)
	return &testpki.CA{Cert: c, Key: k, Now: root.Now}
}

// cert is a TLS certificate for uri signed by ca, with ca in the chain.
func cert(t *testing.T, ca *testpki.CA, uri string) tls.Certificate {
	t.Helper()
	k := testpki.Key(t)
	leaf := ca.Leaf(t, k, uri)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Cert.Raw}, PrivateKey: k, Leaf: leaf}
}

func cpID(cluster string) string { return "spiffe://" + td + "/fedmesh/cluster/" + cluster }

// serve accepts connections on 127.0.0.1 and hands each to handle until
// the test ends; it returns the address.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// tlsServer presents c (nil: none) and asks for, without requiring, a
// client certificate, as the catalog of a control plane does.
func tlsServer(t *testing.T, c *tls.Certificate, seenClient chan<- string) string {
	cfg := &tls.Config{ClientAuth: tls.RequestClientCert}
	if c != nil {
		cfg.Certificates = []tls.Certificate{*c}
	}
	return serve(t, func(raw net.Conn) {
		conn := tls.Server(raw, cfg)
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if conn.Handshake() != nil {
			return
		}
		if seenClient != nil {
			uri := ""
			if pc := conn.ConnectionState().PeerCertificates; len(pc) > 0 && len(pc[0].URIs) == 1 {
				uri = pc[0].URIs[0].String()
			}
			select {
			case seenClient <- uri:
			default:
			}
		}
		_, _ = conn.Read(make([]byte, 1)) // until the prover closes
	})
}

func TestProve(t *testing.T) {
	p := newPKI(t)
	east := clusterCA(t, p.root, "east-1")
	west := clusterCA(t, p.root, "west-1")
	evil := clusterCA(t, testpki.NewRoot(t, "evil"), "east-1")
	own := cert(t, east, cpID("east-1"))
	westCert := cert(t, west, cpID("west-1"))
	mintedByWest := cert(t, west, cpID("east-1"))
	workload := cert(t, east, "spiffe://"+td+"/ns/demo/sa/echo")
	foreign := cert(t, evil, cpID("east-1"))
	plain := serve(t, func(c net.Conn) { _, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) })
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()

	tests := []struct {
		name       string
		catalog    string
		wantReason string
		refused    bool
	}{
		{name: "own certificate", catalog: "https://" + tlsServer(t, &own, nil)},
		{name: "another cluster's certificate", catalog: "https://" + tlsServer(t, &westCert, nil), wantReason: proof.ReasonWrongCluster, refused: true},
		{name: "minted by another cluster's CA", catalog: "https://" + tlsServer(t, &mintedByWest, nil), wantReason: proof.ReasonWrongIssuer, refused: true},
		{name: "workload certificate", catalog: "https://" + tlsServer(t, &workload, nil), wantReason: proof.ReasonNotControlPlane, refused: true},
		{name: "foreign root", catalog: "https://" + tlsServer(t, &foreign, nil), wantReason: identity.ReasonUntrusted, refused: true},
		{name: "plain http catalog", catalog: "http://" + plain, wantReason: proof.ReasonNotTLS, refused: true},
		{name: "not TLS behind https", catalog: "https://" + plain, wantReason: proof.ReasonHandshake},
		{name: "nobody listening", catalog: "https://" + closed, wantReason: proof.ReasonUnreachable},
		{name: "no port", catalog: "https://127.0.0.1", wantReason: proof.ReasonBadAddress, refused: true},
	}
	pr, err := proof.New(proof.Config{Bundle: identity.StaticBundle(p.bundle), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := pr.Prove(context.Background(), "east-1", tt.catalog)
			if diff := cmp.Diff(tt.wantReason, proof.ReasonOf(err)); diff != "" {
				t.Fatalf("reason (-want +got):\n%s\nerr: %v", diff, err)
			}
			if err != nil {
				var pe *proof.Error
				if !errors.As(err, &pe) || pe.IdentityRefused() != tt.refused || pe.Cluster != "east-1" {
					t.Errorf("error %#v: want an *Error for east-1 with IdentityRefused %v", err, tt.refused)
				}
				return
			}
			if id.ID.String() != cpID("east-1") || !id.NotAfter.Equal(own.Leaf.NotAfter) {
				t.Errorf("proved %+v, want %s until %s", id, cpID("east-1"), own.Leaf.NotAfter)
			}
		})
	}
}

// TestProvePresentsClientCertificate: the prover shows its own control
// plane certificate, which a peer's etcd asks for.
func TestProvePresentsClientCertificate(t *testing.T) {
	p := newPKI(t)
	east := clusterCA(t, p.root, "east-1")
	west := clusterCA(t, p.root, "west-1")
	own := cert(t, east, cpID("east-1"))
	mine := cert(t, west, cpID("west-1"))
	seen := make(chan string, 1)
	addr := tlsServer(t, &own, seen)
	pr, err := proof.New(proof.Config{Bundle: identity.StaticBundle(p.bundle), Certs: identity.StaticCert(&mine)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Prove(context.Background(), "east-1", "https://"+addr); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != cpID("west-1") {
		t.Errorf("server saw client %q, want %q", got, cpID("west-1"))
	}
}

// TestPeerTLS: the replicator's TLS accepts the proven cluster's identity
// only, and reports a refusal.
func TestPeerTLS(t *testing.T) {
	p := newPKI(t)
	east := clusterCA(t, p.root, "east-1")
	west := clusterCA(t, p.root, "west-1")
	own := cert(t, east, cpID("east-1"))
	westCert := cert(t, west, cpID("west-1"))
	pr, err := proof.New(proof.Config{Bundle: identity.StaticBundle(p.bundle)})
	if err != nil {
		t.Fatal(err)
	}
	if pr.PeerTLS(nil, "east-1", nil) != nil {
		t.Error("PeerTLS(nil) is not nil")
	}
	base := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	var refusals []string
	cfg := pr.PeerTLS(base, "east-1", func(err error) { refusals = append(refusals, proof.ReasonOf(err)) })
	if base.VerifyConnection != nil {
		t.Fatal("PeerTLS changed its base")
	}
	dial := func(addr string) error {
		c, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(tlsServer(t, &own, nil)); err != nil {
		t.Errorf("east-1's own certificate refused: %v", err)
	}
	if err := dial(tlsServer(t, &westCert, nil)); err == nil {
		t.Error("west-1's certificate accepted for east-1")
	}
	if diff := cmp.Diff([]string{proof.ReasonWrongCluster}, refusals); diff != "" {
		t.Errorf("refusals (-want +got):\n%s", diff)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := proof.New(proof.Config{}); err == nil {
		t.Error("New without a bundle: no error")
	}
	if _, err := proof.New(proof.Config{Bundle: identity.StaticBundle(nil), DialTimeout: -time.Second}); err == nil {
		t.Error("New with a negative timeout: no error")
	}
}

// FuzzCatalogHostPort feeds catalog addresses as any gossip member may
// announce them: the result is an error or a host:port that splits.
func FuzzCatalogHostPort(f *testing.F) {
	for _, s := range []string{"https://127.0.0.1:2379", "http://127.0.0.1:2379", "https://[::1]:2379/", "https://a.b:1?x", "://", "https://user@h:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hp, err := proof.CatalogHostPort("east-1", s)
		if err != nil {
			var pe *proof.Error
			if !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("error %v is not an *Error with a reason", err)
			}
			return
		}
		if h, p, err := net.SplitHostPort(hp); err != nil || h == "" || p == "" {
			t.Fatalf("CatalogHostPort(%q) = %q, which does not split: %v", s, hp, err)
		}
	})
}
