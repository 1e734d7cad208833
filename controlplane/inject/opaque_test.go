package inject

import (
	"errors"
	"testing"

	"github.com/fedmesh/fedmesh/internal/portset"
)

// TestOpaquePorts: the sidecar is told the injector's opaque ports
// (Linkerd's by default), or the pod's annotation's in their place; a bad
// list is refused with the annotation's name.
func TestOpaquePorts(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        string
		annotation *string
		want       string
		wantErr    error
	}{
		{name: "default", want: portset.DefaultOpaque},
		{name: "the injector's", cfg: "3306, 5000-5010", want: "3306,5000-5010"},
		{name: "the injector's none", cfg: "none", want: "none"},
		{name: "the pod's in place of the default", annotation: ptr("8025,2525"), want: "2525,8025"},
		{name: "the pod's in place of the injector's", cfg: "3306", annotation: ptr("11211"), want: "11211"},
		{name: "the pod's none", annotation: ptr("none"), want: "none"},
		{name: "the pod's empty", annotation: ptr(""), want: "none"},
		{name: "a bad annotation", annotation: ptr("3306,mysql"), wantErr: ErrBadAnnotation},
		{name: "a bad injector list", cfg: "0", wantErr: ErrConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := New(Config{SidecarImage: "fedmesh:dev", InitImage: "fedmesh-init:dev", TrustDomain: "fedmesh.example", Cluster: "east-1", OpaquePorts: tc.cfg})
			if err != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("New = %v, want %v", err, tc.wantErr)
				}
				return
			}
			a := map[string]string{}
			if tc.annotation != nil {
				a[AnnotationOpaquePorts] = *tc.annotation
			}
			p := appPod(a)
			ok, err := in.Inject(&p.ObjectMeta, &p.Spec)
			if tc.wantErr != nil {
				if ok || !errors.Is(err, tc.wantErr) {
					t.Fatalf("Inject = %t, %v, want %v", ok, err, tc.wantErr)
				}
				return
			}
			if !ok || err != nil {
				t.Fatalf("Inject = %t, %v", ok, err)
			}
			if got := argOf(p.Spec.InitContainers[1].Args, "--opaque-ports"); got != tc.want {
				t.Errorf("--opaque-ports=%q, want %q", got, tc.want)
			}
		})
	}
}
