package identity_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
)

var td = spiffeid.RequireTrustDomainFromString("fedmesh.test")

func TestWorkloadID(t *testing.T) {
	tests := []struct {
		name    string
		ns, sa  string
		want    string
		wantErr bool
	}{
		{name: "plain", ns: "demo", sa: "echo", want: "spiffe://fedmesh.test/ns/demo/sa/echo"},
		{name: "dotted service account", ns: "kube-system", sa: "a.b-c", want: "spiffe://fedmesh.test/ns/kube-system/sa/a.b-c"},
		{name: "empty namespace", ns: "", sa: "echo", wantErr: true},
		{name: "upper case", ns: "Demo", sa: "echo", wantErr: true},
		{name: "slash in sa", ns: "demo", sa: "a/b", wantErr: true},
		{name: "leading dash", ns: "-demo", sa: "echo", wantErr: true},
		{name: "namespace too long", ns: strings.Repeat("a", 64), sa: "echo", wantErr: true},
		{name: "empty label in sa", ns: "demo", sa: "a..b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := identity.WorkloadID(td, tt.ns, tt.sa)
			if tt.wantErr {
				if !errors.Is(err, identity.ErrBadID) {
					t.Fatalf("WorkloadID(%q, %q) = %v, %v; want ErrBadID", tt.ns, tt.sa, id, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, id.String()); diff != "" {
				t.Errorf("WorkloadID (-want +got):\n%s", diff)
			}
			ns, sa, err := identity.ParseWorkloadID(id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tt.ns, tt.sa}, []string{ns, sa}); diff != "" {
				t.Errorf("ParseWorkloadID round trip (-want +got):\n%s", diff)
			}
			if identity.IsControlPlane(id) || !identity.IsWorkload(id) {
				t.Errorf("%s classified wrongly", id)
			}
		})
	}
}

func TestParseWorkloadIDRefuses(t *testing.T) {
	tests := []struct {
		name string
		id   string
	}{
		{name: "control plane", id: "spiffe://fedmesh.test/fedmesh/cluster/east-1"},
		{name: "missing sa", id: "spiffe://fedmesh.test/ns/demo"},
		{name: "extra segment", id: "spiffe://fedmesh.test/ns/demo/sa/echo/x"},
		{name: "swapped", id: "spiffe://fedmesh.test/sa/echo/ns/demo"},
		{name: "no path", id: "spiffe://fedmesh.test"},
		{name: "bad namespace", id: "spiffe://fedmesh.test/ns/De_mo/sa/echo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, sa, err := identity.ParseWorkloadID(spiffeid.RequireFromString(tt.id))
			if !errors.Is(err, identity.ErrBadID) {
				t.Fatalf("ParseWorkloadID(%s) = %q, %q, %v; want ErrBadID", tt.id, ns, sa, err)
			}
		})
	}
	if _, _, err := identity.ParseWorkloadID(spiffeid.ID{}); !errors.Is(err, identity.ErrBadID) {
		t.Errorf("zero ID: err = %v, want ErrBadID", err)
	}
}

func TestControlPlaneID(t *testing.T) {
	id, err := identity.ControlPlaneID(td, "east-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("spiffe://fedmesh.test/fedmesh/cluster/east-1", id.String()); diff != "" {
		t.Errorf("ControlPlaneID (-want +got):\n%s", diff)
	}
	cluster, err := identity.ParseControlPlaneID(id)
	if err != nil || cluster != "east-1" {
		t.Errorf("ParseControlPlaneID = %q, %v; want east-1", cluster, err)
	}
	if identity.IsWorkload(id) || !identity.IsControlPlane(id) {
		t.Errorf("%s classified wrongly", id)
	}
	for _, bad := range []string{"", "East", "a.b", "a/b"} {
		if _, err := identity.ControlPlaneID(td, bad); !errors.Is(err, identity.ErrBadID) {
			t.Errorf("ControlPlaneID(%q) err = %v, want ErrBadID", bad, err)
		}
	}
	if _, err := identity.ControlPlaneID(spiffeid.TrustDomain{}, "east-1"); !errors.Is(err, identity.ErrBadID) {
		t.Errorf("zero trust domain: err = %v, want ErrBadID", err)
	}
	if _, err := identity.ParseControlPlaneID(spiffeid.RequireFromString("spiffe://fedmesh.test/fedmesh/cluster/a/b")); err == nil {
		t.Error("ParseControlPlaneID accepted a nested path")
	}
}

func FuzzParseWorkloadID(f *testing.F) {
	for _, s := range []string{
		"spiffe://fedmesh.test/ns/demo/sa/echo",
		"spiffe://fedmesh.test/fedmesh/cluster/east-1",
		"spiffe://fedmesh.test/ns/demo/sa/a.b",
		"spiffe://fedmesh.test/ns//sa/x",
		"spiffe://x/ns/a/sa/b/c",
		"http://fedmesh.test/ns/demo/sa/echo",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := spiffeid.FromString(s)
		if err != nil {
			return
		}
		ns, sa, err := identity.ParseWorkloadID(id)
		if err != nil {
			if !errors.Is(err, identity.ErrBadID) {
				t.Fatalf("error %v does not wrap ErrBadID", err)
			}
			return
		}
		// Whatever parses must rebuild to the same ID.
		back, err := identity.WorkloadID(id.TrustDomain(), ns, sa)
		if err != nil {
			t.Fatalf("parsed %q/%q from %s but WorkloadID refuses: %v", ns, sa, id, err)
		}
		if back != id {
			t.Fatalf("round trip %s -> %s", id, back)
		}
		if identity.IsControlPlane(id) {
			t.Fatalf("%s is both workload and control plane", id)
		}
	})
}
