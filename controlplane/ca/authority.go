package ca

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
)

// EtcdRootUser is the Common Name of the control plane's own etcd client
// certificate: etcd maps a client certificate's CN to the etcd user.
const EtcdRootUser = "root"

// ControlPlaneCN returns the Common Name of a control plane's SVID,
// "fedmesh-cp-CLUSTER" (identity.ControlPlaneCN). etcd maps it to an etcd
// user, which the federation gives a read-only role on the cluster's
// export prefix; the store accepts it only from CLUSTER's own CA.
func ControlPlaneCN(cluster string) string { return identity.ControlPlaneCN(cluster) }

// Authority is a cluster's CA: it signs the SVIDs of the cluster's
// workloads and control plane with the cluster's intermediate, and issues
// and checks bootstrap tokens. It is safe for concurrent use.
type Authority struct {
	td      spiffeid.TrustDomain
	cluster string
	now     func() time.Time
	// st is the CA material, replaced as a whole by Reload.
	st atomic.Pointer[authorityState]

	registerer    prometheus.Registerer
	issued        *prometheus.CounterVec
	tokenRefusals *prometheus.CounterVec
}

// AuthorityConfig configures the Authority its Load and New set up. The
// zero value is ready to use: LoadAuthority and NewAuthority use it.
type AuthorityConfig struct {
	// Now tells the time for certificate validity and token expiry;
	// default time.Now.
	Now func() time.Time
	// Registerer, when set, registers the authority's metrics:
	// fedmesh_ca_issued_total{kind} and
	// fedmesh_ca_bootstrap_token_refusals_total{reason}.
	Registerer prometheus.Registerer
}

// authorityState is what a CA directory holds at one time; Reload swaps
// it whole, so a signature never mixes an old certificate with a new key.
type authorityState struct {
	cert     *x509.Certificate // the intermediate
	key      crypto.Signer
	root     *x509.Certificate // the root cert chains to
	bundle   *x509bundle.Bundle
	tokenKey []byte
	// retired are this cluster's earlier intermediates inside their
	// rotation window (rotation.json): leaves they signed, such as
	// operator certificates, are still this cluster's own.
	retired []*x509.Certificate
}

// cur is the current CA material.
func (a *Authority) cur() *authorityState { return a.st.Load() }

// newAuthority returns an Authority with cfg's defaults filled in and no
// keys yet.
func newAuthority(cfg AuthorityConfig) *Authority {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Authority{now: cfg.Now, registerer: cfg.Registerer}
}

// LoadAuthority is AuthorityConfig{}.Load(dir): an Authority on the wall
// clock, its metrics not registered.
func LoadAuthority(dir string) (*Authority, error) { return AuthorityConfig{}.Load(dir) }

// NewAuthority is AuthorityConfig{}.New(f): an Authority on the wall
// clock, its metrics not registered.
func NewAuthority(f *ClusterFiles) (*Authority, error) { return AuthorityConfig{}.New(f) }

// Load reads a cluster CA directory written by IssueClusterCA:
// ca.crt, ca.key, bundle.crt and token.key. It checks that the key matches,
// that the intermediate chains to the bundle and that the secret files
// are not readable by others.
func (cfg AuthorityConfig) Load(dir string) (*Authority, error) {
	a := newAuthority(cfg)
	m, err := readCADir(dir)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	if err := a.init(m.cert, m.key, m.roots, m.tokenKey); err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	a.setRetired(m.retired)
	return a, nil
}

// caDirFiles is what readCADir found in a cluster CA directory.
type caDirFiles struct {
	cert     *x509.Certificate
	key      crypto.Signer
	roots    []*x509.Certificate
	tokenKey []byte
	retired  []*x509.Certificate
}

// readCADir reads ca.crt, ca.key, bundle.crt, token.key and the retired
// intermediates that rotation.json still lists, checking that the key
// matches and that secret files are not readable by others.
func readCADir(dir string) (*caDirFiles, error) {
	cert, err := loadCert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	for _, secret := range []string{CAKeyFile, TokenKeyFile} {
		if err := checkPrivate(filepath.Join(dir, secret)); err != nil {
			return nil, err
		}
	}
	key, err := loadKey(filepath.Join(dir, CAKeyFile), cert)
	if err != nil {
		return nil, err
	}
	rootPEM, err := os.ReadFile(filepath.Join(dir, BundleFile))
	if err != nil {
		return nil, err
	}
	roots, err := ParseCertsPEM(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", BundleFile, err)
	}
	tokenKey, err := os.ReadFile(filepath.Join(dir, TokenKeyFile))
	if err != nil {
		return nil, err
	}
	if len(tokenKey) != tokenKeySize {
		return nil, fmt.Errorf("%s holds %d bytes, want %d", TokenKeyFile, len(tokenKey), tokenKeySize)
	}
	rs, err := ReadRotation(dir)
	if err != nil {
		return nil, err
	}
	var retired []*x509.Certificate
	for _, r := range rs.Retired {
		c, err := loadCert(filepath.Join(dir, RetiredDir, r.File))
		if err != nil {
			return nil, fmt.Errorf("retired CA: %w", err)
		}
		retired = append(retired, c)
	}
	return &caDirFiles{cert: cert, key: key, roots: roots, tokenKey: tokenKey, retired: retired}, nil
}

// New builds an Authority from files already in memory (for example
// ClusterFiles carried by a join flow).
func (cfg AuthorityConfig) New(f *ClusterFiles) (*Authority, error) {
	a := newAuthority(cfg)
	certs, err := ParseCertsPEM(f.CACertPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA certificate: %w", err)
	}
	key, err := ParseKeyPEM(f.CAKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA key: %w", err)
	}
	if !publicKeyEqual(key.Public(), certs[0].PublicKey) {
		return nil, errors.New("cluster CA key does not match its certificate")
	}
	roots, err := ParseCertsPEM(f.BundlePEM)
	if err != nil {
		return nil, fmt.Errorf("trust bundle: %w", err)
	}
	if len(f.TokenKey) != tokenKeySize {
		return nil, fmt.Errorf("token key holds %d bytes, want %d", len(f.TokenKey), tokenKeySize)
	}
	if err := a.init(certs[0], key, roots, f.TokenKey); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Authority) init(cert *x509.Certificate, key crypto.Signer, roots []*x509.Certificate, tokenKey []byte) error {
	td, cluster, st, err := a.newState(cert, key, roots, tokenKey)
	if err != nil {
		return err
	}
	a.td, a.cluster = td, cluster
	a.st.Store(st)
	a.issued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "fedmesh_ca_issued_total",
		Help:        "Certificates issued by the cluster CA, by kind (workload, control_plane, etcd_root, operator).",
		ConstLabels: prometheus.Labels{"cluster": cluster},
	}, []string{"kind"})
	a.tokenRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "fedmesh_ca_bootstrap_token_refusals_total",
		Help:        "Bootstrap tokens refused, by reason (malformed, signature, expired, cluster).",
		ConstLabels: prometheus.Labels{"cluster": cluster},
	}, []string{"reason"})
	if a.registerer != nil {
		for _, c := range []prometheus.Collector{a.issued, a.tokenRefusals} {
			if err := a.registerer.Register(c); err != nil {
				return fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return nil
}

// newState checks CA material: the intermediate names one cluster of
// its trust domain and chains to one of roots at the current time.
func (a *Authority) newState(cert *x509.Certificate, key crypto.Signer, roots []*x509.Certificate, tokenKey []byte) (spiffeid.TrustDomain, string, *authorityState, error) {
	td, err := trustDomainOf(cert)
	if err != nil {
		return spiffeid.TrustDomain{}, "", nil, err
	}
	if !cert.IsCA {
		return spiffeid.TrustDomain{}, "", nil, errors.New("cluster CA certificate is not a CA")
	}
	if len(cert.Subject.OrganizationalUnit) != 1 {
		return spiffeid.TrustDomain{}, "", nil, fmt.Errorf("cluster CA subject %q does not name one cluster (OU)", cert.Subject)
	}
	cluster := cert.Subject.OrganizationalUnit[0]
	if _, err := identity.ControlPlaneID(td, cluster); err != nil {
		return spiffeid.TrustDomain{}, "", nil, fmt.Errorf("cluster CA names cluster %q: %w", cluster, err)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: a.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return spiffeid.TrustDomain{}, "", nil, fmt.Errorf("cluster CA does not chain to the trust bundle: %w", err)
	}
	return td, cluster, &authorityState{
		cert: cert, key: key, root: chains[0][len(chains[0])-1],
		bundle:   x509bundle.FromX509Authorities(td, roots),
		tokenKey: append([]byte(nil), tokenKey...),
	}, nil
}

// checkPrivate refuses a secret file that group or others can read.
func checkPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	return nil
}

// TrustDomain is the federation's trust domain.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.td }

// Cluster is the name of the cluster this CA serves.
func (a *Authority) Cluster() string { return a.cluster }

// Bundle is the federation's trust bundle (the root).
func (a *Authority) Bundle() *x509bundle.Bundle { return a.cur().bundle }

// TrustBundle returns the root certificates.
func (a *Authority) TrustBundle() []*x509.Certificate { return a.cur().bundle.X509Authorities() }

// BundlePEM is the trust bundle as PEM, as written to bundle.crt.
func (a *Authority) BundlePEM() []byte { return EncodeCertsPEM(a.cur().bundle.X509Authorities()...) }

// CACertificate is the cluster's intermediate.
func (a *Authority) CACertificate() *x509.Certificate { return a.cur().cert }

// ControlPlaneID is this cluster's control plane identity.
func (a *Authority) ControlPlaneID() spiffeid.ID {
	id, _ := identity.ControlPlaneID(a.td, a.cluster) // validated at load
	return id
}

// SignWorkload signs pub as the SVID spiffe://TD/ns/NS/sa/SA, valid ttl
// (DefaultWorkloadTTL when 0, never past the intermediate's expiry), and
// returns the chain leaf first, then the intermediate. The leaf carries
// exactly one URI SAN, no Common Name (so etcd never maps it to a user),
// KeyUsage digital signature and ExtKeyUsage server and client auth.
func (a *Authority) SignWorkload(ns, sa string, pub crypto.PublicKey, ttl time.Duration) ([]*x509.Certificate, error) {
	id, err := identity.WorkloadID(a.td, ns, sa)
	if err != nil {
		return nil, err
	}
	chain, err := a.sign(id, pkix.Name{Organization: []string{"fedmesh"}}, pub, ttl, nil,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	if err != nil {
		return nil, err
	}
	a.issued.WithLabelValues("workload").Inc()
	return chain, nil
}

// SignControlPlane signs pub as the control plane SVID of cluster, which
// must be this authority's own cluster: URI SAN
// spiffe://TD/fedmesh/cluster/CLUSTER, Common Name ControlPlaneCN(cluster),
// server and client auth, and the given hosts (IP addresses or DNS names)
// as SANs, so the same certificate serves the cluster's etcd and xDS
// listeners and authenticates its replication client.
func (a *Authority) SignControlPlane(cluster string, pub crypto.PublicKey, ttl time.Duration, hosts ...string) ([]*x509.Certificate, error) {
	if cluster != a.cluster {
		return nil, fmt.Errorf("the CA of cluster %q does not sign for cluster %q", a.cluster, cluster)
	}
	chain, err := a.sign(a.ControlPlaneID(), pkix.Name{Organization: []string{"fedmesh"}, CommonName: ControlPlaneCN(cluster)}, pub, ttl, hosts,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	if err != nil {
		return nil, err
	}
	a.issued.WithLabelValues("control_plane").Inc()
	return chain, nil
}

// SignEtcdRoot signs pub as the client certificate the control plane uses
// for its own etcd: Common Name "root" (etcd's root user), client auth
// only, with the control plane's SPIFFE ID as its one URI SAN.
func (a *Authority) SignEtcdRoot(pub crypto.PublicKey, ttl time.Duration) ([]*x509.Certificate, error) {
	chain, err := a.sign(a.ControlPlaneID(), pkix.Name{Organization: []string{"fedmesh"}, CommonName: EtcdRootUser}, pub, ttl, nil,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	if err != nil {
		return nil, err
	}
	a.issued.WithLabelValues("etcd_root").Inc()
	return chain, nil
}

func (a *Authority) sign(id spiffeid.ID, subject pkix.Name, pub crypto.PublicKey, ttl time.Duration, hosts []string, eku []x509.ExtKeyUsage) ([]*x509.Certificate, error) {
	if pub == nil {
		return nil, errors.New("no public key to sign")
	}
	if ttl == 0 {
		ttl = DefaultWorkloadTTL
	}
	if ttl < 0 {
		return nil, fmt.Errorf("ttl %s is negative", ttl)
	}
	st := a.cur()
	now := a.now()
	notAfter := now.Add(ttl)
	if notAfter.After(st.cert.NotAfter) {
		notAfter = st.cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("cluster CA expired at %s", st.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	// Backdate for clock skew, but by no more than a tenth of the
	// lifetime: renewal at half life counts from NotBefore, and a
	// backdate as long as a short lifetime (--cert-ttl 20s) would put
	// half life in the past at issuance and renew without end.
	tmpl := &x509.Certificate{
		Subject:     subject,
		NotBefore:   now.Add(-min(backdate, ttl/10)),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: eku,
		URIs:        []*url.URL{id.URL()},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	leaf, err := create(tmpl, st.cert, pub, st.key)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf, st.cert}, nil
}

// Issued is a freshly generated key with its signed chain, in the forms
// callers need.
type Issued struct {
	// ID is the SPIFFE ID of the certificate.
	ID spiffeid.ID
	// Chain is leaf first, then the intermediate.
	Chain []*x509.Certificate
	// Key is the private key.
	Key crypto.Signer
	// TLS is the chain and key ready for tls.Config (Leaf set).
	TLS *tls.Certificate
	// CertPEM is Chain as PEM.
	CertPEM []byte
	// KeyPEM is Key as PKCS#8 PEM. Secret.
	KeyPEM []byte
}

func issued(chain []*x509.Certificate, key crypto.Signer) (*Issued, error) {
	keyPEM, err := EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	id, err := spiffeid.FromURI(chain[0].URIs[0])
	if err != nil {
		return nil, err
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return &Issued{ID: id, Chain: chain, Key: key, TLS: tc, CertPEM: EncodeCertsPEM(chain...), KeyPEM: keyPEM}, nil
}

// IssueWorkload generates an ECDSA P-256 key and signs it with
// SignWorkload.
func (a *Authority) IssueWorkload(ns, sa string, ttl time.Duration) (*Issued, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	chain, err := a.SignWorkload(ns, sa, key.Public(), ttl)
	if err != nil {
		return nil, err
	}
	return issued(chain, key)
}

// IssueControlPlane generates a key and signs it with SignControlPlane for
// this authority's cluster.
func (a *Authority) IssueControlPlane(ttl time.Duration, hosts ...string) (*Issued, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	chain, err := a.SignControlPlane(a.cluster, key.Public(), ttl, hosts...)
	if err != nil {
		return nil, err
	}
	return issued(chain, key)
}

// IssueEtcdRoot generates a key and signs it with SignEtcdRoot.
func (a *Authority) IssueEtcdRoot(ttl time.Duration) (*Issued, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	chain, err := a.SignEtcdRoot(key.Public(), ttl)
	if err != nil {
		return nil, err
	}
	return issued(chain, key)
}

// setRetired keeps the retired intermediates that still chain to the
// bundle; others can no longer verify and are left out.
func (a *Authority) setRetired(retired []*x509.Certificate) {
	next := *a.cur()
	next.retired = a.verifiedRetired(&next, retired)
	a.st.Store(&next)
}

func (a *Authority) verifiedRetired(st *authorityState, retired []*x509.Certificate) []*x509.Certificate {
	pool := x509.NewCertPool()
	for _, r := range st.bundle.X509Authorities() {
		pool.AddCert(r)
	}
	var keep []*x509.Certificate
	for _, c := range retired {
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: a.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			keep = append(keep, c)
		}
	}
	return keep
}

// Reload reads dir again (as Load does) and, when what it holds differs
// from what the Authority uses, switches to it: the next certificate is
// signed by the intermediate on disk and Bundle returns the bundle on
// disk. The trust domain and the cluster must stay the same. On any
// error the Authority keeps what it had, so a CA directory caught half
// rewritten by a rotation is simply read again later. It reports
// whether anything changed. Safe for concurrent use with the signing
// methods; call it from one goroutine at a time.
func (a *Authority) Reload(dir string) (bool, error) {
	m, err := readCADir(dir)
	if err != nil {
		return false, fmt.Errorf("reload cluster CA: %w", err)
	}
	td, cluster, st, err := a.newState(m.cert, m.key, m.roots, m.tokenKey)
	if err != nil {
		return false, fmt.Errorf("reload cluster CA: %w", err)
	}
	if td != a.td || cluster != a.cluster {
		return false, fmt.Errorf("reload cluster CA: %s now holds the CA of %s in %s, not %s in %s", dir, cluster, td.Name(), a.cluster, a.td.Name())
	}
	st.retired = a.verifiedRetired(st, m.retired)
	if sameState(a.cur(), st) {
		return false, nil
	}
	a.st.Store(st)
	return true, nil
}

func sameState(old, st *authorityState) bool {
	return old.cert.Equal(st.cert) && bytes.Equal(old.tokenKey, st.tokenKey) && old.bundle.Equal(st.bundle) &&
		slices.EqualFunc(old.retired, st.retired, (*x509.Certificate).Equal)
}
