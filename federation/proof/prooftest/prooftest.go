// Package prooftest gives the tests of other packages a federation's
// PKI with real certificates, so that their control planes prove their
// identities to each other as real ones do: a root, one cluster CA per
// cluster (the cluster's name is its one organizational unit, as `fedmesh
// ca issue-cluster` writes it), control plane certificates for
// 127.0.0.1, an https embedded etcd serving one, and a proof.Prover.
//
//	pki := prooftest.Default(t)
//	cp := pki.ControlPlane(t, "east-1")
//	st := storetest.OpenConfig(t, cp.Store(t, storetest.Config(t, "east-1")))
//	fed, err := federation.New(federation.Config{..., Prover: cp.Prover, PeerTLS: cp.PeerTLS})
//
// It is for tests only: every function takes a testing.TB and fails the
// test on error.
package prooftest

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/federation/proof"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/testpki"
	"github.com/fedmesh/fedmesh/store"
)

// TrustDomain is the trust domain of the test federation.
const TrustDomain = "fedmesh.test"

// ControlPlaneID is spiffe://fedmesh.test/fedmesh/cluster/CLUSTER.
func ControlPlaneID(cluster string) string {
	return "spiffe://" + TrustDomain + "/fedmesh/cluster/" + cluster
}

// PKI is a test federation's root and its cluster CAs. Its certificates
// are valid from an hour before it was made to a day after. Safe for
// concurrent use.
type PKI struct {
	mu     sync.Mutex // guards the following
	root   *testpki.CA
	bundle *x509bundle.Bundle
	pool   *x509.CertPool
	cas    map[string]*testpki.CA
}

var (
	defaultMu  sync.Mutex
	defaultPKI *PKI
)

// Default is one PKI shared by the tests of the process, as one
// federation's root is shared by its clusters.
func Default(tb testing.TB) *PKI {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if defaultPKI == nil {
		defaultPKI = New(tb)
	}
	return defaultPKI
}

// New makes a PKI with a new root.
func New(tb testing.TB) *PKI {
	tb.Helper()
	root := testpki.NewTrustDomainRoot(tb, "fed", TrustDomain)
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	return &PKI{
		root:   root,
		bundle: x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString(TrustDomain), []*x509.Certificate{root.Cert}),
		pool:   pool,
		cas:    make(map[string]*testpki.CA),
	}
}

// Bundle is the federation's trust bundle.
func (p *PKI) Bundle() *x509bundle.Bundle { return p.bundle }

// Roots is the root as a pool.
func (p *PKI) Roots() *x509.CertPool { return p.pool }

// ClusterCA is cluster's CA, made on first use.
func (p *PKI) ClusterCA(tb testing.TB, cluster string) *testpki.CA {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if ca, ok := p.cas[cluster]; ok {
		return ca
	}
	k := testpki.Key(tb)
	c := testpki.Sign(tb, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "fedmesh cluster CA " + cluster, OrganizationalUnit: []string{cluster}},
		NotBefore:             p.root.Now.Add(-time.Hour),
		NotAfter:              p.root.Now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, p.root.Cert, k.Public(), p.root.Key)
	ca := &testpki.CA{Cert: c, Key: k, Now: p.root.Now}
	p.cas[cluster] = ca
	return ca
}

// Cert is a control plane certificate for id (a SPIFFE ID) signed by
// the CA of cluster caOf, for 127.0.0.1, with the CA in its chain. Tests
// of refusals pass an id that is not caOf's.
func (p *PKI) Cert(tb testing.TB, caOf, id string) tls.Certificate {
	tb.Helper()
	return p.certCN(tb, caOf, id, "fedmesh-cp-"+caOf)
}

// certCN is Cert with common name cn.
func (p *PKI) certCN(tb testing.TB, caOf, id, cn string) tls.Certificate {
	tb.Helper()
	ca := p.ClusterCA(tb, caOf)
	u, err := url.Parse(id)
	if err != nil {
		tb.Fatal(err)
	}
	k := testpki.Key(tb)
	leaf := testpki.Sign(tb, &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"fedmesh"}, CommonName: cn},
		NotBefore:   ca.Now.Add(-time.Hour),
		NotAfter:    ca.Now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{u},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, ca.Cert, k.Public(), ca.Key)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Cert.Raw}, PrivateKey: k, Leaf: leaf}
}

// ControlPlane is one test control plane's TLS: its certificate, the
// client TLS for peers' etcd and its prover.
type ControlPlane struct {
	pki *PKI
	// Cert is the control plane's certificate.
	Cert tls.Certificate
	// PeerTLS is federation.Config.PeerTLS: Cert, the root, and the host
	// name check of 127.0.0.1.
	PeerTLS *tls.Config
	// Prover is federation.Config.Prover, presenting Cert.
	Prover *proof.Prover
}

// ControlPlane is cluster's control plane with the certificate its own
// cluster CA issues it.
func (p *PKI) ControlPlane(tb testing.TB, cluster string) *ControlPlane {
	tb.Helper()
	return p.ControlPlaneWith(tb, p.Cert(tb, cluster, ControlPlaneID(cluster)))
}

// ControlPlaneWith is a control plane presenting cert.
func (p *PKI) ControlPlaneWith(tb testing.TB, cert tls.Certificate) *ControlPlane {
	tb.Helper()
	pr, err := proof.New(proof.Config{Bundle: identity.StaticBundle(p.bundle), Certs: identity.StaticCert(&cert)})
	if err != nil {
		tb.Fatal(err)
	}
	return &ControlPlane{
		pki:     p,
		Cert:    cert,
		PeerTLS: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: p.pool, Certificates: []tls.Certificate{cert}},
		Prover:  pr,
	}
}

// Store returns scfg serving its embedded etcd over https on 127.0.0.1
// with the control plane's certificate and requiring client certificates
// of the federation, as a control plane's etcd does; the store's own
// client presents the control plane's identity with common name "root",
// as controlplane/ca's IssueEtcdRoot makes it. The files are written to a new
// tb.TempDir().
func (cp *ControlPlane) Store(tb testing.TB, scfg store.Config) store.Config {
	tb.Helper()
	dir := tb.TempDir()
	var chain []byte
	for _, der := range cp.Cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cp.Cert.PrivateKey)
	if err != nil {
		tb.Fatal(err)
	}
	files := map[string][]byte{
		"cp.crt":     chain,
		"cp.key":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"bundle.crt": cp.pki.root.PEM(),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	scfg.ListenClientURLs = []string{"https://127.0.0.1:0"}
	scfg.ServerCertFile = filepath.Join(dir, "cp.crt")
	scfg.ServerKeyFile = filepath.Join(dir, "cp.key")
	scfg.ClientCAFile = filepath.Join(dir, "bundle.crt")
	// The store's own client is its cluster's root user, whatever
	// certificate its etcd serves (tests of impostors serve another's).
	cluster := scfg.Cluster
	if cluster == "" {
		c, err := identity.ParseControlPlaneID(spiffeid.RequireFromString(cp.Cert.Leaf.URIs[0].String()))
		if err != nil {
			tb.Fatal(err)
		}
		cluster = c
	}
	root := cp.pki.certCN(tb, cluster, ControlPlaneID(cluster), store.RootUser)
	scfg.ClientTLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cp.pki.pool, Certificates: []tls.Certificate{root}}
	return scfg
}
