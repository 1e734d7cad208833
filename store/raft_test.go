package store_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/testpki"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
)

func hostPort(t *testing.T, rawURL string) (host, port string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname(), u.Port()
}

// TestRaftPeerListenerStaysOnLoopback starts a store whose client
// listener is on a bind address other than 127.0.0.1, with the default
// raft peer URL: the peer listener is on 127.0.0.1 only and nothing
// answers on its port at the bind address. (Issue 14 found it plain HTTP
// on the bind address.)
func TestRaftPeerListenerStaysOnLoopback(t *testing.T) {
	const bind = "127.0.0.2"
	s := storetest.Open(t, "east-1", func(c *store.Config) {
		c.ListenClientURLs = []string{"http://" + net.JoinHostPort(bind, "0")}
		c.ListenPeerURL = "" // the default
	})
	peerHost, peerPort := hostPort(t, s.PeerURL())
	if peerHost != "127.0.0.1" {
		t.Fatalf("raft peer URL %s, want it on 127.0.0.1", s.PeerURL())
	}
	clientHost, clientPort := hostPort(t, s.ClientURL())
	if clientHost != bind {
		t.Fatalf("client URL %s, want it on %s", s.ClientURL(), bind)
	}
	dial := func(addr string) error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	// The ports exist where they should (so the refusal below means
	// something): the client port on the bind address, the peer port on
	// loopback.
	if err := dial(net.JoinHostPort(bind, clientPort)); err != nil {
		t.Fatalf("client listener on the bind address: %v", err)
	}
	if err := dial(net.JoinHostPort("127.0.0.1", peerPort)); err != nil {
		t.Fatalf("raft peer listener on 127.0.0.1: %v", err)
	}
	if err := dial(net.JoinHostPort(bind, peerPort)); err == nil {
		t.Errorf("the raft peer port %s answers on the bind address %s", peerPort, bind)
	}
}

// raftPeerPair signs a raft peer certificate for 127.0.0.1 with ca (etcd
// checks a peer client certificate's IP SAN against the connection's
// address) and writes it to dir.
func raftPeerPair(t *testing.T, ca *testpki.CA, dir, name string) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key := testpki.Key(t)
	leaf := testpki.Sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		NotBefore:   ca.Now.Add(-time.Hour),
		NotAfter:    ca.Now.Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, ca.Cert, key.Public(), ca.Key)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name+".crt", certPEM), writeFile(t, dir, name+".key", keyPEM), pair
}

// TestRaftPeerListenerMTLS configures an https raft peer URL with a CA of
// its own: a client without a certificate, or with a federation
// certificate, gets nothing; one the raft CA signed is served.
func TestRaftPeerListenerMTLS(t *testing.T) {
	dir := t.TempDir()
	raftCA := testpki.NewRoot(t, "raft")
	certFile, keyFile, _ := raftPeerPair(t, raftCA, dir, "server")
	_, _, member := raftPeerPair(t, raftCA, dir, "member")
	s := storetest.Open(t, "east-1", func(c *store.Config) {
		c.ListenPeerURL = "https://127.0.0.1:0"
		c.PeerCertFile, c.PeerKeyFile = certFile, keyFile
		c.PeerCAFile = writeFile(t, dir, "raft-ca.crt", raftCA.PEM())
	})
	u, err := url.Parse(s.PeerURL())
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "https" {
		t.Fatalf("peer URL %s, want https", s.PeerURL())
	}
	pool := x509.NewCertPool()
	pool.AddCert(raftCA.Cert)

	pki := newFederationPKI(t, "fedmesh.test", "east-1")
	federationCP, err := pki.auths["east-1"].IssueControlPlane(0, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	get := func(cert *tls.Certificate) (int, error) {
		tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(s.PeerURL() + "/members")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if code, err := get(nil); err == nil {
		t.Errorf("a client without a certificate got HTTP %d from the raft peer listener", code)
	}
	if code, err := get(federationCP.TLS); err == nil {
		t.Errorf("a federation control plane certificate got HTTP %d from the raft peer listener", code)
	}
	if code, err := get(&member); err != nil || code != http.StatusOK {
		t.Errorf("a raft peer certificate got %d, %v; want 200", code, err)
	}
}
