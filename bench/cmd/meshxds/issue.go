package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/controlplane/ca"
)

// runIssue signs a workload certificate for a reference proxy or a test
// server: the workload's SPIFFE ID as its URI SAN, like an SVID, plus the
// DNS names given (HAProxy checks the server name it sends against them).
// It writes OUT.crt (leaf then intermediate), OUT.key and OUT.pem (both,
// as HAProxy's crt wants).
func runIssue(args []string) error {
	fs := flag.NewFlagSet("issue", flag.ExitOnError)
	caDir := fs.String("ca-dir", "", "cluster CA directory (fedmesh ca issue-cluster)")
	ns := fs.String("ns", "demo", "namespace of the identity")
	sa := fs.String("sa", "default", "service account of the identity")
	out := fs.String("out", "", "output path prefix")
	var dns multiFlag
	fs.Var(&dns, "dns", "DNS name (repeatable)")
	_ = fs.Parse(args)
	if *caDir == "" || *out == "" {
		return errors.New("-ca-dir and -out are required")
	}
	caPEM, err := os.ReadFile(filepath.Join(*caDir, ca.CACertFile))
	if err != nil {
		return err
	}
	caCerts, err := ca.ParseCertsPEM(caPEM)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(filepath.Join(*caDir, ca.CAKeyFile))
	if err != nil {
		return err
	}
	caKey, err := ca.ParseKeyPEM(keyPEM)
	if err != nil {
		return err
	}
	caCert := caCerts[0]
	if len(caCert.URIs) == 0 {
		return errors.New("cluster CA certificate has no SPIFFE ID")
	}
	td, err := spiffeid.TrustDomainFromURI(caCert.URIs[0])
	if err != nil {
		return err
	}
	id, err := spiffeid.FromSegments(td, "ns", *ns, "sa", *sa)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: *sa + "." + *ns},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URL()},
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("sign %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	chain := ca.EncodeCertsPEM(leaf, caCert)
	kp, err := ca.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{".crt": chain, ".key": kp, ".pem": append(append([]byte{}, chain...), kp...)} {
		if err := os.WriteFile(*out+name, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
