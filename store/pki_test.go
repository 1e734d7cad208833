package store_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/testpki"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
)

// federationPKI is a real federation's PKI as controlplane/ca makes it: a
// root for a trust domain and one cluster CA (intermediate) per cluster.
// The tests use it as an attacker would: a cluster CA's key signs what
// that CA's Authority never would.
type federationPKI struct {
	td    string
	root  *ca.Root
	auths map[string]*ca.Authority
	files map[string]*ca.ClusterFiles
}

func newFederationPKI(t *testing.T, td string, clusters ...string) *federationPKI {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "root")
	if err := ca.InitRoot(td, dir); err != nil {
		t.Fatal(err)
	}
	root, err := ca.LoadRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := &federationPKI{td: td, root: root, auths: map[string]*ca.Authority{}, files: map[string]*ca.ClusterFiles{}}
	for _, c := range clusters {
		files, err := root.IssueCluster(c, 0)
		if err != nil {
			t.Fatal(err)
		}
		a, err := ca.NewAuthority(files)
		if err != nil {
			t.Fatal(err)
		}
		p.auths[c], p.files[c] = a, files
	}
	return p
}

func (p *federationPKI) bundlePEM() []byte { return ca.EncodeCertsPEM(p.root.Certificate()) }

func (p *federationPKI) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.root.Certificate())
	return pool
}

// clientTLS is an etcd client config trusting the federation's root and
// presenting is (nil: no client certificate).
func (p *federationPKI) clientTLS(is *ca.Issued) *tls.Config {
	c := &tls.Config{RootCAs: p.roots(), MinVersion: tls.VersionTLS12}
	if is != nil {
		c.Certificates = []tls.Certificate{*is.TLS}
	}
	return c
}

// forge signs a client certificate with cluster signer's CA key, with the
// given common name and URI SAN: what a compromised cluster can make.
func (p *federationPKI) forge(t *testing.T, signer, cn, uri string) *ca.Issued {
	t.Helper()
	caCerts, err := ca.ParseCertsPEM(p.files[signer].CACertPEM)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ca.ParseKeyPEM(p.files[signer].CAKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	key := testpki.Key(t)
	leaf := testpki.Sign(t, &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"fedmesh"}, CommonName: cn},
		NotBefore:   time.Now().Add(-time.Minute),
		NotAfter:    time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{u},
	}, caCerts[0], key.Public(), caKey)
	return &ca.Issued{
		Chain: []*x509.Certificate{leaf, caCerts[0]},
		Key:   key,
		TLS:   &tls.Certificate{Certificate: [][]byte{leaf.Raw, caCerts[0].Raw}, PrivateKey: key, Leaf: leaf},
	}
}

func (p *federationPKI) controlPlaneID(cluster string) string {
	return "spiffe://" + p.td + "/fedmesh/cluster/" + cluster
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tlsStoreConfig is the config of cluster's store as a control plane sets
// it up (controlplane/mesh.go): the control plane SVID serves etcd on
// https://127.0.0.1:0, the federation's bundle is the client CA file, and
// the store's own client presents the cluster CA's etcd root certificate.
func tlsStoreConfig(t *testing.T, p *federationPKI, cluster string) store.Config {
	t.Helper()
	a := p.auths[cluster]
	server, err := a.IssueControlPlane(0, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	root, err := a.IssueEtcdRoot(0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := storetest.Config(t, cluster)
	cfg.ListenClientURLs = []string{"https://127.0.0.1:0"}
	cfg.ServerCertFile = writeFile(t, dir, "cp.crt", server.CertPEM)
	cfg.ServerKeyFile = writeFile(t, dir, "cp.key", server.KeyPEM)
	cfg.ClientCAFile = writeFile(t, dir, "bundle.crt", p.bundlePEM())
	cfg.ClientTLS = p.clientTLS(root)
	return cfg
}

// openTLSStore opens tlsStoreConfig's store and enables etcd auth.
func openTLSStore(t *testing.T, p *federationPKI, cluster string) *store.Store {
	t.Helper()
	s := storetest.OpenConfig(t, tlsStoreConfig(t, p, cluster))
	if err := s.EnableAuth(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableAuth(testCtx(t)); err != nil {
		t.Fatalf("second EnableAuth: %v", err)
	}
	return s
}

// checkIssued fails unless is verifies as cluster's control plane: the
// fixtures must be what they claim.
func checkIssued(t *testing.T, p *federationPKI, is *ca.Issued, wantCluster string) {
	t.Helper()
	b := p.auths[wantCluster].Bundle()
	got, _, err := identity.VerifyControlPlane(is.Chain, b, time.Now())
	if err != nil || got != wantCluster {
		t.Fatalf("fixture: %v verifies as %q, %v; want %q", is.Chain[0].Subject, got, err, wantCluster)
	}
}
