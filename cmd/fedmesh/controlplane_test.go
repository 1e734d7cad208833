package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/xds"
)

// A malformed --gateway-identity stops the control plane before it starts
// anything, with a usage error naming the flag.
func TestControlPlaneGatewayIdentityFlag(t *testing.T) {
	for _, bad := range []string{"fedmesh-system", "fedmesh-system/", "Fedmesh/gateway"} {
		_, stderr, code := runCmd(context.Background(), t, "controlplane", "--cluster", "east-1", "--source", "file:"+t.TempDir(),
			"--ca-dir", t.TempDir(), "--gateway-identity", "fedmesh-system/fedmesh-gateway", "--gateway-identity", bad)
		if code != 2 || !strings.Contains(stderr, "--gateway-identity") || !strings.Contains(stderr, bad) {
			t.Errorf("--gateway-identity %q: exit %d, stderr %q; want exit 2 naming the flag and the value", bad, code, stderr)
		}
	}
}

// A malformed --cluster-cidrs stops the control plane before it starts
// anything, with a usage error naming the flag and what is wrong.
func TestControlPlaneClusterCIDRsFlag(t *testing.T) {
	for bad, want := range map[string]string{
		"10.1.2.3/16":           "did you mean 10.1.0.0/16",
		"east":                  `"east" is not a CIDR prefix`,
		"10.0.0.0/8,10.0.0.0/8": "given twice",
		"1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8,5.0.0.0/8,6.0.0.0/8,7.0.0.0/8,8.0.0.0/8,9.0.0.0/8": "at most 8",
	} {
		_, stderr, code := runCmd(context.Background(), t, "controlplane", "--cluster", "east-1", "--source", "file:"+t.TempDir(),
			"--ca-dir", t.TempDir(), "--cluster-cidrs", bad)
		if code != 2 || !strings.Contains(stderr, "--cluster-cidrs") || !strings.Contains(stderr, want) {
			t.Errorf("--cluster-cidrs %q: exit %d, stderr %q; want exit 2 naming the flag and %q", bad, code, stderr, want)
		}
	}
}

func TestParseGatewayIdentities(t *testing.T) {
	got, err := parseGatewayIdentities(defaultGatewayIdentities())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(xds.DefaultGatewayIdentities(), got); diff != "" {
		t.Errorf("the flag's default (-want +got):\n%s", diff)
	}
	got, err = parseGatewayIdentities([]string{"edge/gw", "fedmesh-system/fedmesh-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	want := []xds.Identity{{Namespace: "edge", ServiceAccount: "gw"}, {Namespace: "fedmesh-system", ServiceAccount: "fedmesh-gateway"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identities (-want +got):\n%s", diff)
	}
}

// --import-scope takes NAMESPACE/NAME values; a malformed one stops the
// control plane before it starts anything, with a usage error naming the
// flag and the value.
func TestControlPlaneImportScopeFlag(t *testing.T) {
	got, err := parseImportScope([]string{"demo/echo", "shop/cart"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []catalog.ServiceKey{{Namespace: "demo", Name: "echo"}, {Namespace: "shop", Name: "cart"}}; !slices.Equal(got, want) {
		t.Errorf("scope %v, want %v", got, want)
	}
	for bad, want := range map[string]string{
		"echo":                `"echo": want NAMESPACE/NAME`,
		"demo/Echo":           `"Echo"`,
		"de_mo/echo":          `"de_mo"`,
		"demo/echo,demo/echo": "demo/echo given twice",
	} {
		_, stderr, code := runCmd(context.Background(), t, "controlplane", "--cluster", "east-1", "--source", "file:"+t.TempDir(),
			"--ca-dir", t.TempDir(), "--import-scope", bad)
		if code != 2 || !strings.Contains(stderr, "--import-scope") || !strings.Contains(stderr, want) {
			t.Errorf("--import-scope %q: exit %d, stderr %q; want exit 2 naming the flag and %q", bad, code, stderr, want)
		}
	}
}
