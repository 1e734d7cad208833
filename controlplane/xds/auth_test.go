package xds

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		in      string
		want    Identity
		wantErr string // part of the error; "" when it parses
	}{
		{in: "fedmesh-system/fedmesh-gateway", want: Identity{Namespace: "fedmesh-system", ServiceAccount: "fedmesh-gateway"}},
		{in: "edge/gw.east", want: Identity{Namespace: "edge", ServiceAccount: "gw.east"}},
		{in: "fedmesh-system", wantErr: "want NAMESPACE/SERVICEACCOUNT"},
		{in: "", wantErr: "want NAMESPACE/SERVICEACCOUNT"},
		{in: "/gateway", wantErr: `namespace "" must not be empty`},
		{in: "fedmesh-system/", wantErr: `service account "" must not be empty`},
		{in: "Fedmesh/gateway", wantErr: `namespace "Fedmesh"`},
		{in: "ns.dotted/gateway", wantErr: `namespace "ns.dotted"`},
		{in: "fedmesh-system/gate/way", wantErr: `service account "gate/way"`},
		{in: "fedmesh-system/gate_way", wantErr: `service account "gate_way"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseIdentity(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseIdentity(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

// The default gateway identities cover the local demo's bootstrap token
// and the ServiceAccount deploy/ runs the gateway as.
func TestDefaultGatewayIdentities(t *testing.T) {
	want := []Identity{
		{Namespace: "fedmesh-system", ServiceAccount: "gateway"},
		{Namespace: "fedmesh-system", ServiceAccount: "fedmesh-gateway"},
	}
	if diff := cmp.Diff(want, DefaultGatewayIdentities()); diff != "" {
		t.Errorf("DefaultGatewayIdentities (-want +got):\n%s", diff)
	}
}

func TestNewServerRejectsBadGatewayIdentity(t *testing.T) {
	for _, bad := range []Identity{{Namespace: "fedmesh-system"}, {Namespace: "Bad", ServiceAccount: "gw"}} {
		_, err := NewServer(Config{
			Cluster: "east-1", Settings: DefaultSettings(testTD), Authenticator: TokenAuthenticator(verifyToken),
			Issuer: newTestCA(t, testTD), GatewayIdentities: []Identity{bad},
		})
		if err == nil || !strings.Contains(err.Error(), "gateway identity 0") {
			t.Errorf("gateway identity %+v: err = %v, want one naming gateway identity 0", bad, err)
		}
	}
}

// FuzzParseIdentity: ParseIdentity never panics, and what it accepts
// prints back to the input and names valid Kubernetes objects.
func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"fedmesh-system/fedmesh-gateway", "a/b.c", "/", "a//b", "ns/", "Ä/ß", strings.Repeat("a", 64) + "/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Errorf("ParseIdentity(%q).String() = %q", s, id.String())
		}
		if err := id.validate(); err != nil {
			t.Errorf("ParseIdentity(%q) accepted an invalid identity: %v", s, err)
		}
		if strings.Contains(id.Namespace, "/") || strings.Contains(id.ServiceAccount, "/") {
			t.Errorf("ParseIdentity(%q) = %+v, a slash in a name", s, id)
		}
	})
}
