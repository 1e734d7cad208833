package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/testpki"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

const probeTD = "fedmesh.test"

// probePKI is one root with its cluster intermediate.
type probePKI struct{ root, inter *testpki.CA }

func newProbePKI(t testing.TB, name string) probePKI {
	root := testpki.NewTrustDomainRoot(t, name, probeTD)
	return probePKI{root: root, inter: root.NewIntermediate(t, name)}
}

// cert issues id under the intermediate, as a tls.Certificate and as
// SDS PEM (chain, key).
func (p probePKI) cert(t testing.TB, id string) (tls.Certificate, []byte, []byte) {
	t.Helper()
	k := testpki.Key(t)
	leaf := p.inter.Leaf(t, k, id)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), p.inter.PEM()...)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, p.inter.Cert.Raw}, PrivateKey: k, Leaf: leaf},
		chain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// sds is an SDS update of the gateway's SVID and bundle.
func sds(chain, key, bundle []byte) xdsclient.Update {
	u := xdsclient.Update{TypeURL: xdsclient.SecretType, Resources: map[string]proto.Message{}}
	for _, r := range xdsresource.Secrets(chain, key, bundle) {
		u.Resources[r.(interface{ GetName() string }).GetName()] = r
	}
	return u
}

// selfProbe probes gw itself presenting cert: nil when the gateway
// accepted (its close_notify after the handshake).
func selfProbe(t *testing.T, addr string, cert tls.Certificate) error {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		ServerName: naming.GatewayProbeSNI, MinVersion: tls.VersionTLS13, NextProtos: []string{naming.ProbeALPN},
		InsecureSkipVerify: true, Certificates: []tls.Certificate{cert},
	})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// TestSelfProbeFollowsSDS: the gateway takes its SVID and the bundle
// over SDS; it answers probes of itself for control planes of the
// current bundle only, so after a root rotation's removal phase the old
// root's control plane certificate is refused and the new one's taken.
// The control plane is verified with the SDS bundle too.
func TestSelfProbeFollowsSDS(t *testing.T) {
	old, next := newProbePKI(t, "old"), newProbePKI(t, "new")
	boot := x509.NewCertPool()
	boot.AddCert(old.root.Cert)
	reg := prometheus.NewRegistry()
	g, err := New(Config{Cluster: "east-1", Logger: slog.New(slog.DiscardHandler)}, reg)
	if err != nil {
		t.Fatal(err)
	}
	// RootCAs without a control plane is refused by New; set it as the
	// command does for this check of the fallback.
	g.cfg.RootCAs = boot
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(func() { g.Shutdown(t.Context()) })
	addr := ln.Addr().String()
	cpOld, _, _ := old.cert(t, "spiffe://"+probeTD+"/fedmesh/cluster/west-1")
	cpNew, _, _ := next.cert(t, "spiffe://"+probeTD+"/fedmesh/cluster/west-1")
	workload, _, _ := old.cert(t, "spiffe://"+probeTD+"/ns/demo/sa/client")

	if err := selfProbe(t, addr, cpOld); err == nil {
		t.Fatal("a gateway without an SVID answered a probe of itself")
	}
	if g.controlPlaneRoots() != boot {
		t.Error("before SDS the control plane is not verified with the bundle the gateway started with")
	}
	h := NewXDSHandler(g)
	gwID := "spiffe://" + probeTD + "/ns/fedmesh-system/sa/fedmesh-gateway"
	_, chain, key := old.cert(t, gwID)
	both := append(old.root.PEM(), next.root.PEM()...)
	if err := h.OnUpdate(sds(chain, key, both)); err != nil {
		t.Fatal(err)
	}
	for name, cert := range map[string]tls.Certificate{"old root": cpOld, "new root": cpNew} {
		if err := selfProbe(t, addr, cert); err != nil {
			t.Errorf("with both roots, a control plane of the %s: %v", name, err)
		}
	}
	if err := selfProbe(t, addr, workload); err == nil {
		t.Error("a workload's probe of the gateway itself was accepted")
	}
	if !g.controlPlaneRoots().Equal(poolOf(old.root.Cert, next.root.Cert)) {
		t.Error("the control plane is not verified with the SDS bundle")
	}

	// A bad update is refused and counted; the identity stays.
	bad := sds(chain, key, both)
	delete(bad.Resources, naming.SecretRootCA)
	if err := h.OnUpdate(bad); err == nil {
		t.Error("an SDS update without ROOTCA was taken")
	}
	if n := counterValue(g.metrics.configRejected); n != 1 {
		t.Errorf("config rejected %v, want 1", n)
	}
	if err := selfProbe(t, addr, cpOld); err != nil {
		t.Errorf("after a refused update: %v", err)
	}

	// The remove phase: the new root alone, the gateway's SVID under it.
	_, chain, key = next.cert(t, gwID)
	if err := h.OnUpdate(sds(chain, key, next.root.PEM())); err != nil {
		t.Fatal(err)
	}
	if err := selfProbe(t, addr, cpOld); err == nil {
		t.Error("after the old root's removal, its control plane certificate was accepted")
	}
	if err := selfProbe(t, addr, cpNew); err != nil {
		t.Errorf("after the old root's removal, the new root's: %v", err)
	}
	if !g.controlPlaneRoots().Equal(poolOf(next.root.Cert)) {
		t.Error("the control plane is still verified with the old root")
	}
	for result, want := range map[string]float64{SelfProbeOK: 4, SelfProbeNoIdentity: 1, "untrusted": 1, "unauthorized": 1} {
		if n := counterValue(g.metrics.selfProbes.WithLabelValues(result)); n != want {
			t.Errorf("fedmesh_gateway_self_probes_total{result=%q} = %v, want %v", result, n, want)
		}
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// FuzzSetSecrets feeds arbitrary bytes as the SDS certificate chain, key
// and bundle: never a panic, and an update that is refused leaves the
// identity held before.
func FuzzSetSecrets(f *testing.F) {
	p := newProbePKI(f, "fuzz")
	_, chain, key := p.cert(f, "spiffe://"+probeTD+"/ns/fedmesh-system/sa/fedmesh-gateway")
	f.Add(chain, key, p.root.PEM())
	f.Add(chain, key, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{}, key, p.root.PEM())
	g, err := New(Config{Cluster: "east-1"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := NewXDSHandler(g)
	if err := h.OnUpdate(sds(chain, key, p.root.PEM())); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, chain, key, bundle []byte) {
		before := g.ident.Load()
		if err := h.OnUpdate(sds(chain, key, bundle)); err != nil && g.ident.Load() != before {
			t.Fatalf("refused update %v changed the identity", err)
		}
		if g.ident.Load() == nil {
			t.Fatal("identity lost")
		}
	})
}
