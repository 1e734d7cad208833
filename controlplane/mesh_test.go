package controlplane

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// TestMeshAdvertisesPeerAddresses runs a federation member whose peers
// reach it through other addresses than it binds (NodePorts in kind): its
// gossip tags carry the advertised etcd URL, and its certificate names the
// advertised hosts so peers' TLS checks pass.
func TestMeshAdvertisesPeerAddresses(t *testing.T) {
	const advertisedEtcd = "https://127.0.0.99:32379"
	m := startMember(t, memberOptions{files: map[string]string{"echo.yaml": echoYAML}, config: func(c *Config) {
		c.Mesh.AdvertiseAddress = "127.0.0.98"
		c.Mesh.AdvertiseSerfPort = 30946
		c.Mesh.AdvertiseEtcdURL = advertisedEtcd
	}})
	var members adminapi.MembersResponse
	poll.Until(t, 60*time.Second, "member listed", func() error {
		members = adminapi.MembersResponse{}
		if err := m.operatorGet(adminapi.PathMembers, &members); err != nil {
			return err
		}
		if len(members.Members) == 0 {
			return errors.New("no members yet")
		}
		return nil
	})
	local := members.Members[0]
	if local.Catalog != advertisedEtcd || local.Addr != net.JoinHostPort("127.0.0.98", "30946") {
		t.Errorf("local member announces catalog %q at %q, want %q at 127.0.0.98:30946", local.Catalog, local.Addr, advertisedEtcd)
	}
	pemBytes, err := os.ReadFile(filepath.Join(m.dataDir, "tls", "cp.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "127.0.0.98", "127.0.0.99"} {
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("control plane certificate does not name %s: %v", host, err)
		}
	}
}
