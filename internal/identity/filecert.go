package identity

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// FileCert is a CertSource that serves a PEM key pair from disk and reads
// it again when the certificate file's modification time changes, as when
// cert-manager or a Secret volume rotates it in place. While a rotation is
// half written (the new certificate with the old key), the last good pair
// is kept. Use it for certificates that come from outside fedmesh (the
// injection webhook's serving certificate); a node's own SVID is kept by a
// Rotator instead. Its methods are safe for concurrent use.
type FileCert struct {
	certFile, keyFile string

	mu      sync.Mutex // guards the following
	cert    *tls.Certificate
	modTime time.Time
}

var _ CertSource = (*FileCert)(nil)

// NewFileCert loads the key pair from certFile and keyFile (PEM) and
// returns a FileCert serving it; it fails if the pair cannot be loaded now.
func NewFileCert(certFile, keyFile string) (*FileCert, error) {
	c := &FileCert{certFile: certFile, keyFile: keyFile}
	if _, err := c.Certificate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Certificate returns the key pair on disk, reloading it when the
// certificate file changed since the last load. A pair that no longer
// loads leaves the last good one in place.
func (c *FileCert) Certificate() (*tls.Certificate, error) {
	st, err := os.Stat(c.certFile)
	if err != nil {
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	mod := st.ModTime()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && mod.Equal(c.modTime) {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil // keep the last good pair while a rotation is half written
		}
		return nil, fmt.Errorf("load key pair: %w", err)
	}
	c.cert, c.modTime = &cert, mod
	return c.cert, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (c *FileCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.Certificate()
}
