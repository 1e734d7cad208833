package identity_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/testpki"
)

// writePair writes a fresh leaf of ca and its key as PEM files, stamps the
// certificate file with mod, and returns the leaf.
func writePair(t *testing.T, ca *testpki.CA, certFile, keyFile string, mod time.Time) *x509.Certificate {
	t.Helper()
	key := testpki.Key(t)
	leaf := ca.Leaf(t, key, "spiffe://fedmesh.test/ns/fedmesh-system/sa/webhook")
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	writeCert(t, leaf, certFile, mod)
	return leaf
}

func writeCert(t *testing.T, leaf *x509.Certificate, certFile string, mod time.Time) {
	t.Helper()
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// Set the modification time explicitly: two writes within the file
	// system's timestamp granularity would otherwise look the same.
	if err := os.Chtimes(certFile, mod, mod); err != nil {
		t.Fatal(err)
	}
}

// served returns the leaf a TLS server using fc presents on loopback.
func served(t *testing.T, fc *identity.FileCert) *x509.Certificate {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: fc.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.(*tls.Conn).Handshake()
	}()
	defer func() { <-done }()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true} /* only the presented leaf matters */)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func TestFileCertReloadsOnChange(t *testing.T) {
	ca := testpki.NewRoot(t, "webhook")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")

	if _, err := identity.NewFileCert(certFile, keyFile); err == nil {
		t.Fatal("NewFileCert with no files succeeded")
	}

	mod := time.Now().Add(-time.Hour).Truncate(time.Second)
	first := writePair(t, ca, certFile, keyFile, mod)
	fc, err := identity.NewFileCert(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := served(t, fc); !got.Equal(first) {
		t.Fatalf("served serial %v, want the first certificate %v", got.SerialNumber, first.SerialNumber)
	}

	// Rotated in place: the next handshake serves the new pair.
	mod = mod.Add(time.Minute)
	second := writePair(t, ca, certFile, keyFile, mod)
	if got := served(t, fc); !got.Equal(second) {
		t.Fatalf("served serial %v after rotation, want the second certificate %v", got.SerialNumber, second.SerialNumber)
	}

	// Half written: a new certificate whose key is not there yet. The
	// last good pair stays.
	mod = mod.Add(time.Minute)
	other := ca.Leaf(t, testpki.Key(t), "spiffe://fedmesh.test/ns/fedmesh-system/sa/webhook")
	writeCert(t, other, certFile, mod)
	c, err := fc.Certificate()
	if err != nil {
		t.Fatalf("half-written rotation: %v; want the last good pair", err)
	}
	if !c.Leaf.Equal(second) {
		t.Fatalf("half-written rotation served serial %v, want the last good %v", c.Leaf.SerialNumber, second.SerialNumber)
	}
}
