package xds

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// Issuer signs workload certificates. It is called from the server's
// run goroutine only.
type Issuer interface {
	// SignWorkload signs pub as the SVID of namespace/serviceAccount,
	// valid for ttl, and returns the chain, leaf first.
	SignWorkload(namespace, serviceAccount string, pub crypto.PublicKey, ttl time.Duration) ([]*x509.Certificate, error)
	// TrustBundle returns the federation's root certificates.
	TrustBundle() []*x509.Certificate
}

// svid is one identity's current certificate.
type svid struct {
	secrets *Secrets
	// part is the two SDS secrets, marshalled once for every node of
	// the identity.
	part     *part
	notAfter time.Time
	renewAt  time.Time
	serial   string
}

// issue makes a key, has it signed and renders the node's secrets.
func issue(is Issuer, id Identity, ttl time.Duration, now time.Time) (*svid, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	chain, err := is.SignWorkload(id.Namespace, id.ServiceAccount, key.Public(), ttl)
	if err != nil {
		return nil, fmt.Errorf("sign %s/%s: %w", id.Namespace, id.ServiceAccount, err)
	}
	if len(chain) == 0 {
		return nil, errors.New("issuer returned an empty chain")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	leaf := chain[0]
	start := leaf.NotBefore
	if start.After(now) || start.IsZero() {
		start = now
	}
	secrets := &Secrets{
		ChainPEM:  certsPEM(chain),
		KeyPEM:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		BundlePEM: certsPEM(is.TrustBundle()),
	}
	return &svid{
		secrets:  secrets,
		part:     newPart(renderSecrets(secrets)),
		notAfter: leaf.NotAfter,
		renewAt:  start.Add(leaf.NotAfter.Sub(start) / 2),
		serial:   leaf.SerialNumber.String(),
	}, nil
}

func certsPEM(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// RenewCertificates makes every identity's certificate due now: the run
// goroutine issues new ones from the Issuer, with its current trust
// bundle, and pushes them (SDS "default" and "ROOTCA") to every node
// holding them. The control plane calls it when its CA changes (a
// rotation), so leaves of the old CA are replaced within seconds rather
// than at their half life.
func (s *Server) RenewCertificates() {
	now := s.cfg.Now()
	s.mu.Lock()
	for _, is := range s.identities {
		if is.cert != nil {
			is.cert.renewAt = now
		}
		is.retry = time.Time{}
	}
	s.mu.Unlock()
	s.signal()
}
