package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// TestPeerClusterOf: the cluster comes from the chain that verifies,
// never from a certificate the client merely sent.
func TestPeerClusterOf(t *testing.T) {
	root := meshtest.NewCA(t, "fed.test")
	east1, east2 := root.ClusterCA(t, "east-1"), root.ClusterCA(t, "east-2")
	id := root.Workload("web", "frontend")
	chain := func(c *tls.Certificate, extra ...*x509.Certificate) []*x509.Certificate {
		var out []*x509.Certificate
		for _, der := range c.Certificate {
			x, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, x)
		}
		return append(out, extra...)
	}
	leaf2, _, _ := east2.Issue(t, meshtest.SVID{URIs: []string{id}})
	direct, _, _ := root.Issue(t, meshtest.SVID{URIs: []string{id}})
	// A CA east-2's key signed, naming east-1: east-2's CA may not sign
	// CAs (path length 0), so nothing it issues verifies.
	forged := east2.ClusterCA(t, "east-1")
	leafForged, _, _ := forged.Issue(t, meshtest.SVID{URIs: []string{id}})
	tests := []struct {
		name  string
		certs []*x509.Certificate
		want  string
	}{
		{name: "cluster intermediate", certs: chain(leaf2), want: "east-2"},
		{name: "another cluster's intermediate sent first", certs: func() []*x509.Certificate {
			c := chain(leaf2)
			return []*x509.Certificate{c[0], east1.Cert, c[1]}
		}(), want: "east-2"},
		{name: "leaf signed by the root", certs: chain(direct), want: ""},
		{name: "forged cluster CA below a cluster CA", certs: chain(leafForged, east2.Cert), want: ""},
		{name: "no certificates", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := &tls.ConnectionState{PeerCertificates: tt.certs}
			if got := peerClusterOf(cs, root.Bundle()); got != tt.want {
				t.Errorf("peerClusterOf() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":             "/",
		"/a/b":          "/a/b",
		"/a/../admin":   "/admin",
		"//admin":       "/admin",
		"/a/./b/":       "/a/b/",
		"/public/..":    "/",
		"*":             "*",
		"":              "",
		"/x.y/z":        "/x.y/z",
		"/pkg.Svc/Call": "/pkg.Svc/Call",
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}
