package ca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/identity"
)

// Operator certificates authenticate people and tools to a control plane's
// admin API (mTLS). They are short-lived client certificates:
//
//	spiffe://TD/fedmesh/operator/NAME   client auth only, no Common Name
//
// A cluster CA's operator certificate is accepted by that cluster's control
// plane only; one signed by the root directly is accepted by every control
// plane of the federation (the demo uses one). Files in an operator
// directory (WriteOperator):
//
//	operator.crt (0644, leaf then the cluster CA when there is one)
//	operator.key (0600)
//	bundle.crt   (0644, the federation root, to verify the control plane)
const (
	// OperatorCertFile is the operator's certificate chain.
	OperatorCertFile = "operator.crt"
	// OperatorKeyFile is the operator's private key.
	OperatorKeyFile = "operator.key"
	// OperatorBundleFile is the federation root the operator trusts.
	OperatorBundleFile = BundleFile
	// DefaultOperatorTTL is an operator certificate's lifetime: a working
	// day, so a lost certificate is soon worthless.
	DefaultOperatorTTL = 12 * time.Hour
	// MaxOperatorTTL is the longest lifetime an operator certificate may
	// be given.
	MaxOperatorTTL = 90 * 24 * time.Hour
)

// operatorPrefix starts spiffe://TD/fedmesh/operator/NAME.
const operatorPrefix = "/fedmesh/operator/"

// ErrNotOperator is wrapped by ParseOperatorID's errors.
var ErrNotOperator = errors.New("not an operator identity")

// OperatorID returns spiffe://TD/fedmesh/operator/NAME. The name is a
// DNS-1123 subdomain (lower case letters, digits, '-' and '.'), such as
// "alice" or "ci.deploy-bot".
func OperatorID(td spiffeid.TrustDomain, name string) (spiffeid.ID, error) {
	if td.IsZero() {
		return spiffeid.ID{}, fmt.Errorf("%w: empty trust domain", identity.ErrBadID)
	}
	if why := catalog.IsDNS1123Subdomain(name); why != "" {
		return spiffeid.ID{}, fmt.Errorf("%w: operator name %q: %s", identity.ErrBadID, name, why)
	}
	id, err := spiffeid.FromSegments(td, "fedmesh", "operator", name)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %w", identity.ErrBadID, err)
	}
	return id, nil
}

// ParseOperatorID returns the operator name of an ID built by OperatorID,
// or an error wrapping ErrNotOperator.
func ParseOperatorID(id spiffeid.ID) (string, error) {
	name, ok := strings.CutPrefix(id.Path(), operatorPrefix)
	if !ok || id.IsZero() {
		return "", fmt.Errorf("%w: %q is not spiffe://TRUST-DOMAIN/fedmesh/operator/NAME", ErrNotOperator, id.String())
	}
	if why := catalog.IsDNS1123Subdomain(name); why != "" {
		return "", fmt.Errorf("%w: operator name %q: %s", ErrNotOperator, name, why)
	}
	return name, nil
}

// operatorTemplate is the leaf template of an operator certificate valid
// from now for ttl (capped at notAfterMax).
func operatorTemplate(id spiffeid.ID, now time.Time, ttl time.Duration, notAfterMax time.Time) (*x509.Certificate, error) {
	if ttl == 0 {
		ttl = DefaultOperatorTTL
	}
	if ttl < 0 || ttl > MaxOperatorTTL {
		return nil, fmt.Errorf("operator certificate ttl %s must be positive and at most %s", ttl, MaxOperatorTTL)
	}
	notAfter := now.Add(ttl)
	if notAfter.After(notAfterMax) {
		notAfter = notAfterMax
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("the signing CA expired at %s", notAfterMax.UTC().Format(time.RFC3339))
	}
	return &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"fedmesh"}, OrganizationalUnit: []string{"operator"}},
		NotBefore:   now.Add(-min(backdate, ttl/10)),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{id.URL()},
	}, nil
}

// IssueOperator generates a key and signs an operator certificate for
// name with the cluster CA, valid ttl (DefaultOperatorTTL when 0, never
// past the cluster CA). Only this cluster's control plane accepts it.
func (a *Authority) IssueOperator(name string, ttl time.Duration) (*Issued, error) {
	id, err := OperatorID(a.td, name)
	if err != nil {
		return nil, err
	}
	st := a.cur()
	tmpl, err := operatorTemplate(id, a.now(), ttl, st.cert.NotAfter)
	if err != nil {
		return nil, err
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	leaf, err := create(tmpl, st.cert, key.Public(), st.key)
	if err != nil {
		return nil, err
	}
	a.issued.WithLabelValues("operator").Inc()
	return issued([]*x509.Certificate{leaf, st.cert}, key)
}

// IssueOperator generates a key and signs an operator certificate for
// name with the root itself, valid ttl (DefaultOperatorTTL when 0). Every
// control plane of the federation accepts it: keep the root offline and
// prefer cluster operator certificates outside a demo.
func (r *Root) IssueOperator(name string, ttl time.Duration) (*Issued, error) {
	id, err := OperatorID(r.td, name)
	if err != nil {
		return nil, err
	}
	tmpl, err := operatorTemplate(id, r.now(), ttl, r.cert.NotAfter)
	if err != nil {
		return nil, err
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	leaf, err := create(tmpl, r.cert, key.Public(), r.key)
	if err != nil {
		return nil, err
	}
	return issued([]*x509.Certificate{leaf}, key)
}

// RootBundlePEM is the root certificate as PEM, as operators and
// clusters keep it in bundle.crt.
func (r *Root) RootBundlePEM() []byte { return EncodeCertsPEM(r.cert) }

// WriteOperator writes an operator certificate into dir (created 0700):
// operator.crt, operator.key (0600) and bundle.crt. Unlike CA material,
// operator certificates are re-issued often, so existing files are
// replaced, each atomically.
func WriteOperator(dir string, is *Issued, bundlePEM []byte) error {
	if len(bundlePEM) == 0 {
		return errors.New("write operator certificate: empty trust bundle")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, w := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{OperatorKeyFile, is.KeyPEM, 0o600},
		{OperatorCertFile, is.CertPEM, 0o644},
		{OperatorBundleFile, bundlePEM, 0o644},
	} {
		if err := replaceFile(filepath.Join(dir, w.name), w.data, w.mode); err != nil {
			return err
		}
	}
	return nil
}

// replaceFile writes data to a new file beside path and renames it over
// path, so a reader sees the old or the new content, never a mix.
func replaceFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// IssueOperatorFiles signs an operator certificate for name and writes it
// to outDir (WriteOperator). Exactly one of caDir (a cluster CA: only that
// cluster accepts it) and rootDir (the root: every cluster accepts it) is
// set.
func IssueOperatorFiles(caDir, rootDir, name, outDir string, ttl time.Duration) (*Issued, error) {
	var (
		is     *Issued
		bundle []byte
		err    error
	)
	switch {
	case (caDir == "") == (rootDir == ""):
		return nil, errors.New("issue operator certificate: name exactly one of the cluster CA and the root")
	case caDir != "":
		a, lerr := LoadAuthority(caDir)
		if lerr != nil {
			return nil, lerr
		}
		is, err = a.IssueOperator(name, ttl)
		bundle = a.BundlePEM()
	default:
		r, lerr := LoadRoot(rootDir)
		if lerr != nil {
			return nil, lerr
		}
		is, err = r.IssueOperator(name, ttl)
		bundle = r.RootBundlePEM()
	}
	if err != nil {
		return nil, err
	}
	return is, WriteOperator(outDir, is, bundle)
}

// OperatorIssuer says which CA signed a verified operator's leaf.
type OperatorIssuer int

// Who signed an operator certificate.
const (
	// IssuerOther: neither this cluster's CA nor a root (another
	// cluster's CA).
	IssuerOther OperatorIssuer = iota
	// IssuerCluster: this cluster's CA.
	IssuerCluster
	// IssuerRoot: a root of the trust bundle, directly.
	IssuerRoot
)

// LeafIssuer tells who signed leaf: this cluster's CA (the current
// intermediate or one retired by a rotation whose window still runs), a root of the trust
// bundle directly, or someone else. The chain must already be verified
// (identity.VerifyPeerCertificates); this only tells issuers apart.
func (a *Authority) LeafIssuer(leaf *x509.Certificate) OperatorIssuer {
	st := a.cur()
	if leaf.CheckSignatureFrom(st.cert) == nil {
		return IssuerCluster
	}
	for _, r := range st.retired {
		if leaf.CheckSignatureFrom(r) == nil {
			return IssuerCluster
		}
	}
	for _, r := range a.TrustBundle() {
		if leaf.CheckSignatureFrom(r) == nil {
			return IssuerRoot
		}
	}
	return IssuerOther
}
