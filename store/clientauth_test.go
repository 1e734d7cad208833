package store_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/testpki"
	"github.com/fedmesh/fedmesh/store"
)

// attempt reads every key of the store's etcd and writes one, as the
// attacker of issue 14 did with etcdctl, and returns both errors.
func attempt(t *testing.T, url string, tc *tls.Config, key string) (getErr, putErr error) {
	t.Helper()
	cli, err := store.NewClient([]string{url}, tc, quietLogger())
	if err != nil {
		return err, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, getErr = cli.Get(ctx, "", clientv3.WithPrefix())
	cancel()
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	_, putErr = cli.Put(ctx, key, "owned")
	cancel()
	return getErr, putErr
}

// checkNoConnection fails unless err is the error of an RPC that never
// reached etcd (it found no connection until its deadline), rather than
// an answer of etcd's authentication.
func checkNoConnection(t *testing.T, op string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s succeeded", op)
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.Unavailable, status.Code(err) == codes.DeadlineExceeded:
	default:
		t.Errorf("%s: %v, want no connection", op, err)
	}
}

// handshake opens a TLS connection to the store's client URL with tc and
// returns the error of the first read: with TLS 1.3 the client finishes
// its side of the handshake before the server has checked its
// certificate, and a refusal arrives as an alert.
func handshake(t *testing.T, clientURL string, tc *tls.Config) error {
	t.Helper()
	u, err := url.Parse(clientURL)
	if err != nil {
		t.Fatal(err)
	}
	tc = tc.Clone()
	tc.NextProtos = []string{"h2"}
	tc.ServerName = u.Hostname()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", u.Host, tc)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// The HTTP/2 preface: an accepted client gets the server's SETTINGS.
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}

// TestClientCertificatesBoundToTheirCluster reproduces the attack of issue
// 14 (a CN=root certificate signed by east-2's cluster CA read every key
// of east-1's etcd and wrote one) and its variants against a real etcd
// with certificates of a real federation PKI: every one is refused in the
// TLS handshake and counted by reason, nothing is written, and the
// legitimate peer and the owner keep working.
func TestClientCertificatesBoundToTheirCluster(t *testing.T) {
	ctx := testCtx(t)
	pki := newFederationPKI(t, "fedmesh.test", "east-1", "east-2", "east-3")
	s := openTLSStore(t, pki, "east-1")
	for _, peer := range []string{"east-2", "east-3"} {
		if err := s.GrantPeerRead(ctx, store.PeerUser(peer)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetExports(ctx, []catalog.Export{export("east-1", "demo", "echo", "127.0.1.1")}); err != nil {
		t.Fatal(err)
	}
	east1, east2 := pki.auths["east-1"], pki.auths["east-2"]
	issue := func(is *ca.Issued, err error) *ca.Issued {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	other := newFederationPKI(t, "other.test", "east-2")
	sameTD := newFederationPKI(t, "fedmesh.test", "east-2")

	tests := []struct {
		name   string
		tls    *tls.Config
		reason string
	}{
		{
			// The seen attack: east-2's CA issues its own etcd root
			// certificate (CN=root) and presents it to east-1.
			name:   "east-2's etcd root certificate",
			tls:    pki.clientTLS(issue(east2.IssueEtcdRoot(0))),
			reason: store.ReasonWrongUser,
		},
		{
			name:   "east-2's CA mints east-1's etcd root",
			tls:    pki.clientTLS(pki.forge(t, "east-2", store.RootUser, pki.controlPlaneID("east-1"))),
			reason: identity.ReasonIssuerMismatch,
		},
		{
			name:   "east-2's CA mints east-3's control plane",
			tls:    pki.clientTLS(pki.forge(t, "east-2", store.PeerUser("east-3"), pki.controlPlaneID("east-3"))),
			reason: identity.ReasonIssuerMismatch,
		},
		{
			name:   "east-2's control plane claims east-3's etcd user",
			tls:    pki.clientTLS(pki.forge(t, "east-2", store.PeerUser("east-3"), pki.controlPlaneID("east-2"))),
			reason: store.ReasonWrongUser,
		},
		{
			name:   "east-1's CA mints root for a workload",
			tls:    pki.clientTLS(pki.forge(t, "east-1", store.RootUser, "spiffe://fedmesh.test/ns/demo/sa/echo")),
			reason: identity.ReasonUnauthorized,
		},
		{
			name:   "east-1's own control plane SVID is not root",
			tls:    pki.clientTLS(issue(east1.IssueControlPlane(0))),
			reason: store.ReasonWrongUser,
		},
		{
			name:   "a workload of east-1",
			tls:    pki.clientTLS(issue(east1.IssueWorkload("demo", "echo", 0))),
			reason: identity.ReasonUnauthorized,
		},
		{
			name:   "another trust domain",
			tls:    pki.clientTLS(issue(other.auths["east-2"].IssueEtcdRoot(0))),
			reason: identity.ReasonForeignTrustDomain,
		},
		{
			name:   "another root of the same trust domain",
			tls:    pki.clientTLS(issue(sameTD.auths["east-2"].IssueControlPlane(0))),
			reason: identity.ReasonUntrusted,
		},
		{
			name:   "no client certificate",
			tls:    pki.clientTLS(nil),
			reason: identity.ReasonNoCertificate,
		},
	}
	refusals := s.Metrics().ClientRefusals
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counterValue(t, refusals.WithLabelValues(tt.reason))
			key := store.ExportKey("east-1", catalog.ServiceKey{Namespace: "demo", Name: "evil"})
			getErr, putErr := attempt(t, s.ClientURL(), tt.tls, key)
			if err := handshake(t, s.ClientURL(), tt.tls); err == nil || !strings.Contains(err.Error(), "tls: bad certificate") {
				t.Errorf("TLS handshake: %v, want the server's bad certificate alert", err)
			}
			checkNoConnection(t, "read of every key", getErr)
			checkNoConnection(t, "write of "+key, putErr)
			poll.True(t, 10*time.Second, "refusal counted as "+tt.reason, func() bool {
				return counterValue(t, refusals.WithLabelValues(tt.reason)) > before
			})
			resp, err := s.Client().Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Kvs) != 0 {
				t.Errorf("%s was written", key)
			}
		})
	}

	// The legitimate peer still reads the exports, and only reads; the
	// owner still writes.
	peerCP := issue(east2.IssueControlPlane(0))
	checkIssued(t, pki, peerCP, "east-2")
	if err := handshake(t, s.ClientURL(), pki.clientTLS(peerCP)); err != nil {
		t.Errorf("legitimate peer's TLS handshake: %v", err)
	}
	peer := newClient(t, s.ClientURL(), pki.clientTLS(peerCP))
	resp, err := peer.Get(ctx, store.ExportsPrefix("east-1"), clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("legitimate peer read of exports: %v", err)
	}
	if len(resp.Kvs) != 1 {
		t.Errorf("legitimate peer read %d exports, want 1", len(resp.Kvs))
	}
	if _, err := peer.Put(ctx, store.ExportKey("east-1", catalog.ServiceKey{Namespace: "demo", Name: "evil"}), "{}"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("legitimate peer write: %v, want permission denied", err)
	}
	if _, err := s.SetExports(ctx, []catalog.Export{export("east-1", "demo", "echo", "127.0.1.1", "127.0.1.2")}); err != nil {
		t.Errorf("owner write after the attacks: %v", err)
	}
}

// TestOpenRefusesBadClientAuth: a client CA file that is not a SPIFFE
// bundle, or a store client certificate the checks would refuse, is a
// configuration error naming what is wrong, before etcd starts.
func TestOpenRefusesBadClientAuth(t *testing.T) {
	pki := newFederationPKI(t, "fedmesh.test", "east-1", "east-2")
	cp, err := pki.auths["east-1"].IssueControlPlane(0)
	if err != nil {
		t.Fatal(err)
	}
	east2Root, err := pki.auths["east-2"].IssueEtcdRoot(0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		change  func(*store.Config)
		wantErr string
	}{
		{"bundle without trust domain", func(c *store.Config) {
			c.ClientCAFile = writeFile(t, t.TempDir(), "ca.pem", testpki.NewRoot(t, "plain").PEM())
		}, "URI SANs"},
		{"missing bundle", func(c *store.Config) { c.ClientCAFile = "/nonexistent/bundle.crt" }, "client CA file"},
		{"own client is the control plane SVID", func(c *store.Config) { c.ClientTLS = pki.clientTLS(cp) }, "would be refused"},
		{"own client is another cluster's root", func(c *store.Config) { c.ClientTLS = pki.clientTLS(east2Root) }, "would be refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tlsStoreConfig(t, pki, "east-1")
			tt.change(&cfg)
			s, err := store.Open(testCtx(t), cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, store.ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open = %v, want ErrConfig containing %q", err, tt.wantErr)
			}
		})
	}
}
