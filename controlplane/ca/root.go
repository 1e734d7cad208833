package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
)

// Validity defaults.
const (
	// RootTTL is the validity of a federation root.
	RootTTL = 10 * 365 * 24 * time.Hour
	// DefaultClusterCATTL is the validity of a cluster intermediate.
	DefaultClusterCATTL = 365 * 24 * time.Hour
	// DefaultWorkloadTTL is the validity of an SVID.
	DefaultWorkloadTTL = 24 * time.Hour
	// backdate is how far NotBefore is set in the past, for clock skew
	// between machines.
	backdate = time.Minute
)

// tokenKeySize is the length of a cluster's bootstrap token secret.
const tokenKeySize = 32

// Root is the federation's root CA, loaded from its directory. It only
// signs cluster intermediates; keep its directory offline.
type Root struct {
	td   spiffeid.TrustDomain
	cert *x509.Certificate
	key  crypto.Signer
	now  func() time.Time
}

// InitRoot creates a new federation root CA for trust domain td in dir
// (created 0700 if missing): an ECDSA P-256 self-signed certificate valid
// ten years (root.crt, 0644) and its key (root.key, 0600). It refuses to
// overwrite an existing root.
func InitRoot(td string, dir string) error {
	return initRoot(td, dir, time.Now())
}

func initRoot(tdName, dir string, now time.Time) error {
	td, err := spiffeid.TrustDomainFromString(tdName)
	if err != nil {
		return fmt.Errorf("trust domain %q: %w", tdName, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := refuseExisting(dir, RootCertFile, RootKeyFile); err != nil {
		return err
	}
	key, err := newKey()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"fedmesh"}, CommonName: "fedmesh root CA " + td.Name()},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(RootTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	cert, err := create(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	keyPEM, err := EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	if err := writeNew(dir, RootKeyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeNew(dir, RootCertFile, EncodeCertsPEM(cert), 0o644)
}

// LoadRoot reads a root created by InitRoot.
func LoadRoot(dir string) (*Root, error) {
	cert, err := loadCert(filepath.Join(dir, RootCertFile))
	if err != nil {
		return nil, fmt.Errorf("load root: %w", err)
	}
	key, err := loadKey(filepath.Join(dir, RootKeyFile), cert)
	if err != nil {
		return nil, fmt.Errorf("load root: %w", err)
	}
	td, err := trustDomainOf(cert)
	if err != nil {
		return nil, fmt.Errorf("load root: %w", err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("load root: %s is not a CA certificate", RootCertFile)
	}
	return &Root{td: td, cert: cert, key: key, now: time.Now}, nil
}

// TrustDomain is the federation's trust domain.
func (r *Root) TrustDomain() spiffeid.TrustDomain { return r.td }

// Certificate is the root certificate.
func (r *Root) Certificate() *x509.Certificate { return r.cert }

// ClusterFiles is what a cluster's control plane needs to act as its
// cluster's CA, in the form it is written to disk (and could be carried by
// a join flow): the intermediate and its key, the trust bundle and the
// bootstrap token secret.
type ClusterFiles struct {
	// Cluster is the cluster's name.
	Cluster string
	// CACertPEM is the intermediate certificate.
	CACertPEM []byte
	// CAKeyPEM is the intermediate's private key. Secret.
	CAKeyPEM []byte
	// BundlePEM is the federation's root certificate.
	BundlePEM []byte
	// TokenKey is the cluster's bootstrap token secret. Secret.
	TokenKey []byte
}

// IssueCluster signs a new intermediate CA for cluster, valid ttl
// (DefaultClusterCATTL when 0, never past the root's expiry), limited to
// one level below it (MaxPathLen 0) and, by name constraints, to URIs in
// the federation's trust domain. It also draws the cluster's bootstrap
// token secret.
func (r *Root) IssueCluster(cluster string, ttl time.Duration) (*ClusterFiles, error) {
	if _, err := identity.ControlPlaneID(r.td, cluster); err != nil {
		return nil, fmt.Errorf("cluster name: %w", err)
	}
	certPEM, keyPEM, err := r.signIntermediate(cluster, ttl)
	if err != nil {
		return nil, err
	}
	tokenKey := make([]byte, tokenKeySize)
	if _, err := rand.Read(tokenKey); err != nil {
		return nil, err
	}
	return &ClusterFiles{
		Cluster:   cluster,
		CACertPEM: certPEM,
		CAKeyPEM:  keyPEM,
		BundlePEM: EncodeCertsPEM(r.cert),
		TokenKey:  tokenKey,
	}, nil
}

// Write stores the files in dir (created 0700): ca.crt and bundle.crt
// 0644, ca.key and token.key 0600. It refuses to overwrite any of them.
func (f *ClusterFiles) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := refuseExisting(dir, CACertFile, CAKeyFile, BundleFile, TokenKeyFile); err != nil {
		return err
	}
	for _, w := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CAKeyFile, f.CAKeyPEM, 0o600},
		{TokenKeyFile, f.TokenKey, 0o600},
		{BundleFile, f.BundlePEM, 0o644},
		{CACertFile, f.CACertPEM, 0o644},
	} {
		if err := writeNew(dir, w.name, w.data, w.mode); err != nil {
			return err
		}
	}
	return nil
}

// IssueClusterCA loads the root in rootDir, signs an intermediate for
// cluster and writes it to outDir (see Root.IssueCluster and
// ClusterFiles.Write).
func IssueClusterCA(rootDir, cluster, outDir string, ttl time.Duration) error {
	root, err := LoadRoot(rootDir)
	if err != nil {
		return err
	}
	if err := refuseExisting(outDir, CACertFile, CAKeyFile, BundleFile, TokenKeyFile); err != nil {
		return err
	}
	files, err := root.IssueCluster(cluster, ttl)
	if err != nil {
		return err
	}
	return files.Write(outDir)
}

// trustDomainOf reads the trust domain from a CA certificate's URI SAN
// (spiffe://TD).
func trustDomainOf(cert *x509.Certificate) (spiffeid.TrustDomain, error) {
	if len(cert.URIs) != 1 {
		return spiffeid.TrustDomain{}, fmt.Errorf("CA certificate %q has %d URI SANs, want 1 (spiffe://TRUST-DOMAIN)", cert.Subject, len(cert.URIs))
	}
	id, err := spiffeid.FromURI(cert.URIs[0])
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("CA certificate URI SAN: %w", err)
	}
	return id.TrustDomain(), nil
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

var serialLimit = new(big.Int).Lsh(big.NewInt(1), 127)

// create fills a random serial number and signs tmpl.
func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errors.New("parse the certificate just signed: " + err.Error())
	}
	return c, nil
}
