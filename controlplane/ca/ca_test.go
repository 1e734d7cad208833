package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/identity"
)

const testTD = "fedmesh.test"

// newCluster makes a root in a temp dir and a cluster CA for cluster, and
// loads its Authority.
func newCluster(t testing.TB, cluster string, cfg AuthorityConfig) (*Authority, string) {
	t.Helper()
	base := t.TempDir()
	rootDir, caDir := filepath.Join(base, "root"), filepath.Join(base, cluster)
	if err := InitRoot(testTD, rootDir); err != nil {
		t.Fatal(err)
	}
	if err := IssueClusterCA(rootDir, cluster, caDir, 0); err != nil {
		t.Fatal(err)
	}
	a, err := cfg.Load(caDir)
	if err != nil {
		t.Fatal(err)
	}
	return a, rootDir
}

func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestInitRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	if err := InitRoot(testTD, dir); err != nil {
		t.Fatal(err)
	}
	gotModes := map[string]os.FileMode{RootKeyFile: modeOf(t, filepath.Join(dir, RootKeyFile)), RootCertFile: modeOf(t, filepath.Join(dir, RootCertFile)), ".": modeOf(t, dir)}
	wantModes := map[string]os.FileMode{RootKeyFile: 0o600, RootCertFile: 0o644, ".": 0o700}
	if diff := cmp.Diff(wantModes, gotModes); diff != "" {
		t.Errorf("file modes (-want +got):\n%s", diff)
	}
	root, err := LoadRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := root.Certificate()
	if !c.IsCA || c.MaxPathLen != 1 || root.TrustDomain().Name() != testTD {
		t.Errorf("root: IsCA %v MaxPathLen %d trust domain %s", c.IsCA, c.MaxPathLen, root.TrustDomain())
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("root key is %T, want ECDSA", c.PublicKey)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < RootTTL || life > RootTTL+time.Hour {
		t.Errorf("root lifetime %s, want about %s", life, RootTTL)
	}
	before, _ := os.ReadFile(filepath.Join(dir, RootKeyFile))
	if err := InitRoot(testTD, dir); !errors.Is(err, ErrExists) {
		t.Fatalf("second InitRoot: err = %v, want ErrExists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, RootKeyFile))
	if string(before) != string(after) {
		t.Error("second InitRoot changed the root key")
	}
	if err := InitRoot("not a domain!", t.TempDir()); err == nil {
		t.Error("InitRoot accepted a bad trust domain")
	}
}

func TestIssueClusterCA(t *testing.T) {
	a, rootDir := newCluster(t, "east-1", AuthorityConfig{})
	caDir := filepath.Dir(rootDir) + "/east-1"
	gotModes := map[string]os.FileMode{}
	for _, n := range []string{CACertFile, CAKeyFile, BundleFile, TokenKeyFile} {
		gotModes[n] = modeOf(t, filepath.Join(caDir, n))
	}
	wantModes := map[string]os.FileMode{CACertFile: 0o644, CAKeyFile: 0o600, BundleFile: 0o644, TokenKeyFile: 0o600}
	if diff := cmp.Diff(wantModes, gotModes); diff != "" {
		t.Errorf("file modes (-want +got):\n%s", diff)
	}
	ca := a.CACertificate()
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("cluster CA: IsCA %v MaxPathLen %d zero %v", ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero)
	}
	if diff := cmp.Diff([]string{testTD}, ca.PermittedURIDomains); diff != "" {
		t.Errorf("URI name constraints (-want +got):\n%s", diff)
	}
	if got := []string{a.Cluster(), a.TrustDomain().Name(), a.ControlPlaneID().String()}; !cmp.Equal(got, []string{"east-1", testTD, "spiffe://fedmesh.test/fedmesh/cluster/east-1"}) {
		t.Errorf("cluster, trust domain, control plane ID = %v", got)
	}
	if err := IssueClusterCA(rootDir, "east-1", caDir, 0); !errors.Is(err, ErrExists) {
		t.Errorf("second IssueClusterCA: err = %v, want ErrExists", err)
	}
	for _, bad := range []string{"", "East_1", "a.b"} {
		if err := IssueClusterCA(rootDir, bad, t.TempDir(), 0); !errors.Is(err, identity.ErrBadID) {
			t.Errorf("IssueClusterCA(%q): err = %v, want ErrBadID", bad, err)
		}
	}
}

func TestLoadAuthorityRefuses(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, dir, otherDir string)
	}{
		{name: "key readable by others", spoil: func(t *testing.T, dir, _ string) {
			if err := os.Chmod(filepath.Join(dir, CAKeyFile), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "token key readable by group", spoil: func(t *testing.T, dir, _ string) {
			if err := os.Chmod(filepath.Join(dir, TokenKeyFile), 0o640); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "key of another cluster", spoil: func(t *testing.T, dir, other string) {
			data, err := os.ReadFile(filepath.Join(other, CAKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, CAKeyFile), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "bundle of another federation", spoil: func(t *testing.T, dir, _ string) {
			foreign := t.TempDir()
			if err := InitRoot(testTD, foreign); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(filepath.Join(foreign, RootCertFile))
			if err := os.WriteFile(filepath.Join(dir, BundleFile), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "short token key", spoil: func(t *testing.T, dir, _ string) {
			if err := os.WriteFile(filepath.Join(dir, TokenKeyFile), []byte("short"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "missing bundle", spoil: func(t *testing.T, dir, _ string) {
			if err := os.Remove(filepath.Join(dir, BundleFile)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			rootDir := filepath.Join(base, "root")
			if err := InitRoot(testTD, rootDir); err != nil {
				t.Fatal(err)
			}
			dir, other := filepath.Join(base, "east-1"), filepath.Join(base, "west-1")
			for c, d := range map[string]string{"east-1": dir, "west-1": other} {
				if err := IssueClusterCA(rootDir, c, d, 0); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := LoadAuthority(dir); err != nil {
				t.Fatalf("before spoiling: %v", err)
			}
			tt.spoil(t, dir, other)
			if _, err := LoadAuthority(dir); err == nil {
				t.Fatal("LoadAuthority accepted a spoiled directory")
			}
		})
	}
}

func TestSignWorkloadIssuesExactlyTheAskedIdentity(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	a, _ := newCluster(t, "east-1", AuthorityConfig{Now: func() time.Time { return now }})
	tests := []struct {
		name   string
		ns, sa string
		ttl    time.Duration
		want   string
		life   time.Duration
	}{
		{name: "default ttl", ns: "demo", sa: "echo", want: "spiffe://fedmesh.test/ns/demo/sa/echo", life: 24 * time.Hour},
		{name: "other namespace", ns: "prod", sa: "echo", ttl: time.Hour, want: "spiffe://fedmesh.test/ns/prod/sa/echo", life: time.Hour},
		{name: "dotted service account", ns: "demo", sa: "api.v2", ttl: time.Hour, want: "spiffe://fedmesh.test/ns/demo/sa/api.v2", life: time.Hour},
		{name: "capped at the CA's expiry", ns: "demo", sa: "echo", ttl: 5 * 365 * 24 * time.Hour, want: "spiffe://fedmesh.test/ns/demo/sa/echo", life: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			chain, err := a.SignWorkload(tt.ns, tt.sa, key.Public(), tt.ttl)
			if err != nil {
				t.Fatal(err)
			}
			leaf := chain[0]
			var uris []string
			for _, u := range leaf.URIs {
				uris = append(uris, u.String())
			}
			if diff := cmp.Diff([]string{tt.want}, uris); diff != "" {
				t.Errorf("URI SANs (-want +got):\n%s", diff)
			}
			if leaf.Subject.CommonName != "" || leaf.IsCA || len(leaf.DNSNames)+len(leaf.IPAddresses) != 0 {
				t.Errorf("leaf: CN %q IsCA %v DNS %v IP %v", leaf.Subject.CommonName, leaf.IsCA, leaf.DNSNames, leaf.IPAddresses)
			}
			if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
				t.Error("leaf carries another public key")
			}
			if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage); diff != "" {
				t.Errorf("ExtKeyUsage (-want +got):\n%s", diff)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("KeyUsage = %v", leaf.KeyUsage)
			}
			wantNotAfter := now.Add(tt.life)
			if tt.life < 0 {
				wantNotAfter = a.CACertificate().NotAfter
			}
			if !leaf.NotAfter.Equal(wantNotAfter) {
				t.Errorf("NotAfter = %s, want %s", leaf.NotAfter, wantNotAfter)
			}
			raw := [][]byte{chain[0].Raw, chain[1].Raw}
			id, err := identity.VerifyPeer(raw, a.Bundle(), now)
			if err != nil {
				t.Fatalf("VerifyPeer: %v", err)
			}
			ns, sa, err := identity.ParseWorkloadID(id)
			if err != nil || ns != tt.ns || sa != tt.sa {
				t.Errorf("identity %s parses to %q/%q (%v), asked %q/%q", id, ns, sa, err, tt.ns, tt.sa)
			}
		})
	}
	for _, bad := range [][2]string{{"", "echo"}, {"demo", ""}, {"Demo", "echo"}, {"demo", "a/b"}, {"fedmesh", "cluster/east-1"}} {
		if _, err := a.SignWorkload(bad[0], bad[1], a.CACertificate().PublicKey, 0); !errors.Is(err, identity.ErrBadID) {
			t.Errorf("SignWorkload(%q, %q): err = %v, want ErrBadID", bad[0], bad[1], err)
		}
	}
}

func TestSignControlPlaneAndEtcdRoot(t *testing.T) {
	a, _ := newCluster(t, "east-1", AuthorityConfig{})
	cp, err := a.IssueControlPlane(0, "127.0.0.11", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	leaf := cp.Chain[0]
	got := []string{cp.ID.String(), leaf.Subject.CommonName, leaf.IPAddresses[0].String(), leaf.DNSNames[0]}
	if diff := cmp.Diff([]string{"spiffe://fedmesh.test/fedmesh/cluster/east-1", "fedmesh-cp-east-1", "127.0.0.11", "localhost"}, got); diff != "" {
		t.Errorf("control plane cert (-want +got):\n%s", diff)
	}
	// A plain x509 client (etcd's) verifies it for the loopback address.
	pool := x509.NewCertPool()
	pool.AddCert(a.TrustBundle()[0])
	inter := x509.NewCertPool()
	inter.AddCert(a.CACertificate())
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.11", Roots: pool, Intermediates: inter}); err != nil {
		t.Errorf("control plane cert does not verify as a server for 127.0.0.11: %v", err)
	}
	if _, err := a.SignControlPlane("west-1", cp.Key.Public(), 0); err == nil {
		t.Error("east-1's CA signed west-1's control plane identity")
	}

	root, err := a.IssueEtcdRoot(0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, root.Chain[0].ExtKeyUsage); diff != "" {
		t.Errorf("etcd root ExtKeyUsage (-want +got):\n%s", diff)
	}
	if root.Chain[0].Subject.CommonName != EtcdRootUser {
		t.Errorf("etcd root CN = %q", root.Chain[0].Subject.CommonName)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("control plane cert is not a valid client cert: %v", err)
	}
}

func TestNameConstraintKeepsClusterCAInTrustDomain(t *testing.T) {
	a, _ := newCluster(t, "east-1", AuthorityConfig{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// Sign, with the cluster CA's own key, a leaf outside the trust domain,
	// as a stolen cluster key would: the root's constraint must refuse it.
	tmpl := &x509.Certificate{
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{{Scheme: "spiffe", Host: "other.test", Path: "/ns/demo/sa/echo"}},
	}
	leaf, err := create(tmpl, a.cur().cert, key.Public(), a.cur().key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(a.TrustBundle()[0])
	inter := x509.NewCertPool()
	inter.AddCert(a.CACertificate())
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	var inv x509.CertificateInvalidError
	if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
		t.Errorf("foreign-domain leaf under the cluster CA: err = %v, want CANotAuthorizedForThisName", err)
	}
}

func TestMutualTLSWithIssuedCertificates(t *testing.T) {
	a, _ := newCluster(t, "east-1", AuthorityConfig{})
	server, err := a.IssueWorkload("demo", "echo", 0)
	if err != nil {
		t.Fatal(err)
	}
	client, err := a.IssueWorkload("demo", "client", 0)
	if err != nil {
		t.Fatal(err)
	}
	bundle := identity.StaticBundle(a.Bundle())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", identity.ServerConfig(identity.StaticCert(server.TLS), bundle, identity.AuthorizeWorkloads()))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			seen <- err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			seen <- err.Error()
			return
		}
		id, err := identity.PeerID(tc.ConnectionState())
		if err != nil {
			seen <- err.Error()
			return
		}
		seen <- id.String()
		tc.Write([]byte{1})
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn := tls.Client(raw, identity.ClientConfig(identity.StaticCert(client.TLS), bundle, identity.AuthorizeIDs(server.ID)))
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(client.ID.String(), <-seen); diff != "" {
		t.Errorf("identity seen by the server (-want +got):\n%s", diff)
	}
	if got, _ := identity.PeerID(conn.ConnectionState()); got != server.ID {
		t.Errorf("client saw %s, want %s", got, server.ID)
	}
}

func TestDescribe(t *testing.T) {
	a, rootDir := newCluster(t, "east-1", AuthorityConfig{})
	info, err := Describe(filepath.Join(filepath.Dir(rootDir), "east-1"))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{info.Kind, info.TrustDomain, info.Cluster, info.Certificates[0].Role, info.Certificates[1].Role}
	if diff := cmp.Diff([]string{"cluster", testTD, "east-1", "cluster CA", "root"}, got); diff != "" {
		t.Errorf("Describe cluster (-want +got):\n%s", diff)
	}
	wantFiles := []FileInfo{{CACertFile, "-rw-r--r--"}, {CAKeyFile, "-rw-------"}, {BundleFile, "-rw-r--r--"}, {TokenKeyFile, "-rw-------"}}
	if diff := cmp.Diff(wantFiles, info.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if info.Certificates[0].Serial != a.CACertificate().SerialNumber.Text(16) {
		t.Error("serial mismatch")
	}
	rinfo, err := Describe(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	if rinfo.Kind != "root" || rinfo.TrustDomain != testTD || len(rinfo.Certificates) != 1 {
		t.Errorf("Describe root = %+v", rinfo)
	}
	if _, err := Describe(t.TempDir()); err == nil {
		t.Error("Describe of an empty directory succeeded")
	}
}

func BenchmarkSignWorkload(b *testing.B) {
	a, _ := newCluster(b, "east-1", AuthorityConfig{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.SignWorkload("demo", "echo", key.Public(), 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIssueWorkload(b *testing.B) {
	a, _ := newCluster(b, "east-1", AuthorityConfig{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.IssueWorkload("demo", "echo", 0); err != nil {
			b.Fatal(err)
		}
	}
}
