package identity_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
)

type handshakeResult struct {
	serverErr  error
	clientErr  error
	serverSaw  spiffeid.ID // client identity as seen by the server
	serverErr2 error       // PeerID error on the server
	clientSaw  spiffeid.ID // server identity as seen by the client
}

// handshake runs one real TLS connection over loopback: the server
// handshakes and writes "ok", the client handshakes and reads it (in TLS
// 1.3 a client certificate refused by the server shows on the client's
// first read).
func handshake(t *testing.T, server, client *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var res handshakeResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		raw, err := ln.Accept()
		if err != nil {
			res.serverErr = err
			return
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		conn := tls.Server(raw, server)
		if err := conn.Handshake(); err != nil {
			res.serverErr = err
			return
		}
		res.serverSaw, res.serverErr2 = identity.PeerID(conn.ConnectionState())
		if _, err := conn.Write([]byte("ok")); err != nil {
			res.serverErr = err
		}
		conn.Close()
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	conn := tls.Client(raw, client)
	res.clientErr = conn.Handshake()
	if res.clientErr == nil {
		res.clientSaw, _ = identity.PeerID(conn.ConnectionState())
		buf := make([]byte, 2)
		if _, err := io.ReadFull(conn, buf); err != nil {
			res.clientErr = err
		} else if string(buf) != "ok" {
			res.clientErr = errors.New("bad payload " + string(buf))
		}
	}
	conn.Close()
	wg.Wait()
	return res
}

func fixedTime(c *tls.Config) *tls.Config {
	c.Time = func() time.Time { return tNow }
	return c
}

func TestMutualTLS(t *testing.T) {
	root := newRoot(t, "fedmesh.test")
	cluster := root.intermediate(t, tNow.Add(-48*time.Hour), tNow.Add(300*24*time.Hour))
	foreign := newRoot(t, "fedmesh.test")
	foreignCluster := foreign.intermediate(t, tNow.Add(-48*time.Hour), tNow.Add(300*24*time.Hour))
	otherTD := newRoot(t, "other.test")
	bundle := identity.StaticBundle(root.bundle())

	const clientID = "spiffe://fedmesh.test/ns/demo/sa/client"
	serverCert := identity.StaticCert(cluster.leaf(t, leafOpts{uris: []string{echoID}}, cluster.cert))
	clientCert := identity.StaticCert(cluster.leaf(t, leafOpts{uris: []string{clientID}}, cluster.cert))
	wantServer := identity.AuthorizeIDs(spiffeid.RequireFromString(echoID))

	tests := []struct {
		name          string
		clientCerts   identity.CertSource
		serverCerts   identity.CertSource
		authorize     identity.Authorizer
		expect        identity.Authorizer
		wantServerErr error
		wantClientErr error // on the client's handshake (server refused by client)
	}{
		{name: "accepted", clientCerts: clientCert, serverCerts: serverCert, authorize: identity.AuthorizeWorkloads(), expect: wantServer},
		{name: "no client certificate", clientCerts: nil, serverCerts: serverCert, wantServerErr: identity.ErrNoCertificate},
		{name: "client in foreign trust domain", clientCerts: identity.StaticCert(otherTD.leaf(t, leafOpts{uris: []string{"spiffe://other.test/ns/demo/sa/client"}})), serverCerts: serverCert, wantServerErr: identity.ErrForeignTrustDomain},
		{name: "client with two URI SANs", clientCerts: identity.StaticCert(cluster.leaf(t, leafOpts{uris: []string{clientID, echoID}}, cluster.cert)), serverCerts: serverCert, wantServerErr: identity.ErrSANCount},
		{name: "expired client", clientCerts: identity.StaticCert(cluster.leaf(t, leafOpts{uris: []string{clientID}, notBefore: tNow.Add(-48 * time.Hour), notAfter: tNow.Add(-24 * time.Hour)}, cluster.cert)), serverCerts: serverCert, wantServerErr: identity.ErrExpired},
		{name: "client chained to a foreign root", clientCerts: identity.StaticCert(foreignCluster.leaf(t, leafOpts{uris: []string{clientID}}, foreignCluster.cert)), serverCerts: serverCert, wantServerErr: identity.ErrUntrusted},
		{name: "client not authorized", clientCerts: clientCert, serverCerts: serverCert, authorize: identity.AuthorizeControlPlanes(), wantServerErr: identity.ErrUnauthorized},
		{name: "server not the expected identity", clientCerts: clientCert, serverCerts: serverCert, expect: identity.AuthorizeIDs(spiffeid.RequireFromString(clientID)), wantClientErr: identity.ErrUnauthorized},
		{name: "server chained to a foreign root", clientCerts: clientCert, serverCerts: identity.StaticCert(foreignCluster.leaf(t, leafOpts{uris: []string{echoID}}, foreignCluster.cert)), wantClientErr: identity.ErrUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var refused []string
			srv := identity.OnRefuse(fixedTime(identity.ServerConfig(tt.serverCerts, bundle, tt.authorize)),
				func(err error) { refused = append(refused, identity.Reason(err)) })
			cli := fixedTime(identity.ClientConfig(tt.clientCerts, bundle, tt.expect))
			res := handshake(t, srv, cli)
			switch {
			case tt.wantClientErr != nil:
				if !errors.Is(res.clientErr, tt.wantClientErr) {
					t.Fatalf("client error = %v, want %v", res.clientErr, tt.wantClientErr)
				}
				if res.serverErr == nil {
					t.Error("server handshake succeeded although the client refused")
				}
			case tt.wantServerErr != nil:
				if !errors.Is(res.serverErr, tt.wantServerErr) {
					t.Fatalf("server error = %v, want %v", res.serverErr, tt.wantServerErr)
				}
				if res.clientErr == nil {
					t.Error("client saw a working connection although the server refused")
				}
				if diff := cmp.Diff([]string{identity.Reason(tt.wantServerErr)}, refused); diff != "" {
					t.Errorf("OnRefuse reasons (-want +got):\n%s", diff)
				}
			default:
				if res.serverErr != nil || res.clientErr != nil || res.serverErr2 != nil {
					t.Fatalf("server err %v, client err %v, PeerID err %v", res.serverErr, res.clientErr, res.serverErr2)
				}
				if diff := cmp.Diff([]string{clientID, echoID}, []string{res.serverSaw.String(), res.clientSaw.String()}); diff != "" {
					t.Errorf("identities seen (-want +got):\n%s", diff)
				}
				if len(refused) != 0 {
					t.Errorf("OnRefuse called for an accepted handshake: %v", refused)
				}
			}
		})
	}
}

func TestServerConfigOptionalClient(t *testing.T) {
	root := newRoot(t, "fedmesh.test")
	bundle := identity.StaticBundle(root.bundle())
	cp, err := identity.ControlPlaneID(root.td, "east-1")
	if err != nil {
		t.Fatal(err)
	}
	serverCert := identity.StaticCert(root.leaf(t, leafOpts{uris: []string{cp.String()}}))
	srv := fixedTime(identity.ServerConfigOptionalClient(serverCert, bundle, nil))

	t.Run("client without certificate", func(t *testing.T) {
		res := handshake(t, srv, fixedTime(identity.ClientConfig(nil, bundle, identity.AuthorizeIDs(cp))))
		if res.serverErr != nil || res.clientErr != nil {
			t.Fatalf("server err %v, client err %v", res.serverErr, res.clientErr)
		}
		if !errors.Is(res.serverErr2, identity.ErrNoCertificate) {
			t.Errorf("PeerID err = %v, want ErrNoCertificate", res.serverErr2)
		}
		if res.clientSaw != cp {
			t.Errorf("client saw %s, want %s", res.clientSaw, cp)
		}
	})
	t.Run("client with a good certificate", func(t *testing.T) {
		cert := identity.StaticCert(root.leaf(t, leafOpts{uris: []string{echoID}}))
		res := handshake(t, srv, fixedTime(identity.ClientConfig(cert, bundle, nil)))
		if res.serverErr != nil || res.clientErr != nil {
			t.Fatalf("server err %v, client err %v", res.serverErr, res.clientErr)
		}
		if res.serverSaw.String() != echoID {
			t.Errorf("server saw %s, want %s", res.serverSaw, echoID)
		}
	})
	t.Run("client with a foreign certificate", func(t *testing.T) {
		foreign := newRoot(t, "fedmesh.test")
		cert := identity.StaticCert(foreign.leaf(t, leafOpts{uris: []string{echoID}}))
		res := handshake(t, srv, fixedTime(identity.ClientConfig(cert, bundle, nil)))
		if !errors.Is(res.serverErr, identity.ErrUntrusted) {
			t.Fatalf("server err = %v, want ErrUntrusted", res.serverErr)
		}
	})
}

func TestNoLocalCertificate(t *testing.T) {
	root := newRoot(t, "fedmesh.test")
	bundle := identity.StaticBundle(root.bundle())
	rot, err := identity.NewRotator(identity.RotatorConfig{Renew: nil})
	if err == nil {
		t.Fatal("NewRotator accepted a nil Renew")
	}
	_ = rot
	srv := fixedTime(identity.ServerConfig(identity.StaticCert(nil), bundle, nil))
	res := handshake(t, srv, fixedTime(identity.ClientConfig(nil, bundle, nil)))
	if !errors.Is(res.serverErr, identity.ErrNoLocalCertificate) {
		t.Fatalf("server err = %v, want ErrNoLocalCertificate", res.serverErr)
	}
}
