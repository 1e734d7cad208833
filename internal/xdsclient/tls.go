package xdsclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// ServerTLSConfig returns a client TLS configuration that trusts only the
// given roots and accepts the control plane only when its certificate
// carries exactly one URI SAN equal to want (its SPIFFE ID). Host names are
// not checked: SPIFFE certificates name workloads, not hosts. cert, when not
// nil, is presented as the client certificate.
func ServerTLSConfig(roots *x509.CertPool, want spiffeid.ID, cert func() (*tls.Certificate, error)) *tls.Config {
	return ServerTLSConfigRoots(func() *x509.CertPool { return roots }, want, cert)
}

// ServerTLSConfigRoots is ServerTLSConfig with roots asked for at every
// handshake, so that a client follows the trust bundle the control plane
// sends it over SDS (a root rotation) instead of the one it started with.
// roots must be safe for concurrent use.
func ServerTLSConfigRoots(roots func() *x509.CertPool, want spiffeid.ID, cert func() (*tls.Certificate, error)) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // the chain and the SPIFFE ID are checked below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyServer(raw, roots(), want)
		},
	}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert() }
	}
	return cfg
}

func verifyServer(raw [][]byte, roots *x509.CertPool, want spiffeid.ID) error {
	if len(raw) == 0 {
		return errors.New("control plane presented no certificate")
	}
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("control plane certificate: %w", err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("control plane certificate: %w", err)
	}
	if n := len(certs[0].URIs); n != 1 {
		return fmt.Errorf("control plane certificate has %d URI SANs, want exactly 1", n)
	}
	got, err := spiffeid.FromURI(certs[0].URIs[0])
	if err != nil {
		return fmt.Errorf("control plane certificate: %w", err)
	}
	if got != want {
		return fmt.Errorf("control plane is %s, want %s", got, want)
	}
	return nil
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }
