package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Info describes a root or cluster CA directory, without its secrets.
type Info struct {
	// Kind is "root" or "cluster".
	Kind string `json:"kind"`
	// TrustDomain is the federation's trust domain.
	TrustDomain string `json:"trustDomain"`
	// Cluster is the cluster name of a cluster CA.
	Cluster string `json:"cluster,omitempty"`
	// Certificates are the directory's certificates, CA first, then root.
	Certificates []CertInfo `json:"certificates"`
	// Files lists the CA files present with their permissions.
	Files []FileInfo `json:"files"`
}

// CertInfo summarizes one certificate.
type CertInfo struct {
	// Role is "root" or "cluster CA".
	Role string `json:"role"`
	// Subject is the certificate's subject name.
	Subject string `json:"subject"`
	// Serial is the serial number in hex.
	Serial string `json:"serial"`
	// NotBefore and NotAfter bound its validity.
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// SHA256 is the fingerprint of its DER encoding, in hex.
	SHA256 string `json:"sha256"`
}

// FileInfo is one file of a CA directory.
type FileInfo struct {
	// Name is the file's name.
	Name string `json:"name"`
	// Mode is its permission bits, such as "-rw-------".
	Mode string `json:"mode"`
}

// Describe reads the certificates of a root directory (root.crt) or a
// cluster CA directory (ca.crt, bundle.crt). It never reads keys beyond
// their file modes.
func Describe(dir string) (*Info, error) {
	info := &Info{}
	var names []string
	switch {
	case exists(filepath.Join(dir, CACertFile)):
		info.Kind = "cluster"
		names = []string{CACertFile, CAKeyFile, BundleFile, TokenKeyFile}
		ca, err := loadCert(filepath.Join(dir, CACertFile))
		if err != nil {
			return nil, err
		}
		td, err := trustDomainOf(ca)
		if err != nil {
			return nil, err
		}
		info.TrustDomain = td.Name()
		if len(ca.Subject.OrganizationalUnit) == 1 {
			info.Cluster = ca.Subject.OrganizationalUnit[0]
		}
		info.Certificates = append(info.Certificates, certInfo("cluster CA", ca))
		data, err := os.ReadFile(filepath.Join(dir, BundleFile))
		if err != nil {
			return nil, err
		}
		roots, err := ParseCertsPEM(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", BundleFile, err)
		}
		for _, r := range roots {
			info.Certificates = append(info.Certificates, certInfo("root", r))
		}
	case exists(filepath.Join(dir, RootCertFile)):
		info.Kind = "root"
		names = []string{RootCertFile, RootKeyFile}
		root, err := loadCert(filepath.Join(dir, RootCertFile))
		if err != nil {
			return nil, err
		}
		td, err := trustDomainOf(root)
		if err != nil {
			return nil, err
		}
		info.TrustDomain = td.Name()
		info.Certificates = append(info.Certificates, certInfo("root", root))
	default:
		return nil, fmt.Errorf("%s holds neither %s nor %s: %w", dir, CACertFile, RootCertFile, fs.ErrNotExist)
	}
	for _, n := range names {
		st, err := os.Stat(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		info.Files = append(info.Files, FileInfo{Name: n, Mode: st.Mode().Perm().String()})
	}
	return info, nil
}

func certInfo(role string, c *x509.Certificate) CertInfo {
	sum := sha256.Sum256(c.Raw)
	return CertInfo{
		Role:      role,
		Subject:   c.Subject.String(),
		Serial:    c.SerialNumber.Text(16),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		SHA256:    hex.EncodeToString(sum[:]),
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
