package federation

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

// testTD is the trust domain of the test federation.
const testTD = "fedmesh.test"

// fedPKI is the test federation's root and its cluster CAs, made on
// first use and shared by the tests of the process, as one federation's
// root is shared by its clusters. Its certificates are valid from an
// hour before the first use to a day after.
var fedPKI testPKI

type testPKI struct {
	mu     sync.Mutex // guards the following
	root   *testpki.CA
	bundle *x509bundle.Bundle
	pool   *x509.CertPool
	cas    map[string]*testpki.CA
}

func (p *testPKI) init(tb testing.TB) {
	if p.root != nil {
		return
	}
	p.root = testpki.NewRoot(tb, "fed")
	p.bundle = x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString(testTD), []*x509.Certificate{p.root.Cert})
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.root.Cert)
	p.cas = make(map[string]*testpki.CA)
}

// clusterCALocked is cluster's CA, as `fedmesh ca issue-cluster` makes
// it: the cluster's name is its one organizational unit.
func (p *testPKI) clusterCALocked(tb testing.TB, cluster string) *testpki.CA {
	p.init(tb)
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

// controlPlaneCert is a control plane certificate for id (a SPIFFE ID),
// signed by the CA of cluster caOf, for 127.0.0.1, as the control plane
// of caOf serves its etcd with and replicates with.
func (p *testPKI) controlPlaneCert(tb testing.TB, caOf, id string) tls.Certificate {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	ca := p.clusterCALocked(tb, caOf)
	u, err := url.Parse(id)
	if err != nil {
		tb.Fatal(err)
	}
	k := testpki.Key(tb)
	leaf := testpki.Sign(tb, &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"fedmesh"}, CommonName: "fedmesh-cp-" + caOf},
		NotBefore:   ca.Now.Add(-time.Hour),
		NotAfter:    ca.Now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{u},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, ca.Cert, k.Public(), ca.Key)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Cert.Raw}, PrivateKey: k, Leaf: leaf}
}

func (p *testPKI) trust(tb testing.TB) (*x509bundle.Bundle, *x509.CertPool, []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init(tb)
	return p.bundle, p.pool, p.root.PEM()
}

func cpID(cluster string) string { return "spiffe://" + testTD + "/fedmesh/cluster/" + cluster }

// nodeTLS is what one test control plane needs for TLS: its certificate,
// the client TLS for peers' etcd, and its prover.
type nodeTLS struct {
	cert    tls.Certificate
	peerTLS *tls.Config
	prover  *proof.Prover
}

func newNodeTLS(tb testing.TB, cert tls.Certificate) nodeTLS {
	tb.Helper()
	bundle, pool, _ := fedPKI.trust(tb)
	pr, err := proof.New(proof.Config{Bundle: identity.StaticBundle(bundle), Certs: identity.StaticCert(&cert), DialTimeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return nodeTLS{
		cert:    cert,
		peerTLS: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{cert}},
		prover:  pr,
	}
}

// withTLS serves scfg's embedded etcd over https with cert, requiring
// client certificates of the federation, as a control plane's etcd does;
// the store's own client presents cert too.
func withTLS(tb testing.TB, scfg store.Config, cert tls.Certificate) store.Config {
	tb.Helper()
	_, pool, rootPEM := fedPKI.trust(tb)
	dir := tb.TempDir()
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		tb.Fatal(err)
	}
	files := map[string][]byte{
		"cp.crt":     chain,
		"cp.key":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"bundle.crt": rootPEM,
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
	scfg.ClientTLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{cert}}
	return scfg
}
