package naming

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSNI(t *testing.T) {
	tests := []struct {
		name    string
		sni     string
		want    ServicePort
		wantErr string
	}{
		{name: "ok", sni: "8080.echo.demo.svc.clusterset.local", want: ServicePort{Namespace: "demo", Name: "echo", Port: 8080}},
		{name: "upper case folded", sni: "8080.ECHO.demo.svc.clusterset.local", want: ServicePort{Namespace: "demo", Name: "echo", Port: 8080}},
		{name: "empty", sni: "", wantErr: "bad SNI: empty"},
		{name: "other domain", sni: "8080.echo.demo.svc.cluster.local", wantErr: `bad SNI: "8080.echo.demo.svc.cluster.local" does not end in .svc.clusterset.local`},
		{name: "missing port", sni: "echo.demo.svc.clusterset.local", wantErr: `bad SNI: "echo.demo.svc.clusterset.local" is not PORT.NAME.NAMESPACE.svc.clusterset.local`},
		{name: "port zero", sni: "0.echo.demo.svc.clusterset.local", wantErr: `bad SNI: port "0" is not a number from 1 to 65535`},
		{name: "leading zero", sni: "080.echo.demo.svc.clusterset.local", wantErr: `bad SNI: port "080" is not a number from 1 to 65535`},
		{name: "bad label", sni: "80.-echo.demo.svc.clusterset.local", wantErr: `bad SNI: "-echo" is not a DNS-1123 label`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSNI(tt.sni)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadSNI) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parsed (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzSNI: whatever ParseSNI accepts builds back to the same (lower
// case) name, and outbound cluster names round-trip too.
func FuzzSNI(f *testing.F) {
	for _, s := range []string{
		"8080.echo.demo.svc.clusterset.local", "1.a.b.svc.clusterset.local", "65535.x-y.z9.svc.clusterset.local",
		"65536.a.b.svc.clusterset.local", "..svc.clusterset.local", "8080.Echo.Demo.SVC.clusterset.local", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sni string) {
		sp, err := ParseSNI(sni)
		if err != nil {
			if !errors.Is(err, ErrBadSNI) {
				t.Fatalf("error %v does not wrap ErrBadSNI", err)
			}
			return
		}
		if got := sp.SNI(); got != strings.ToLower(sni) {
			t.Fatalf("ParseSNI(%q).SNI() = %q", sni, got)
		}
		back, err := ParseOutboundCluster(sp.OutboundCluster())
		if err != nil || back != sp {
			t.Fatalf("outbound cluster round trip of %v: %v, %v", sp, back, err)
		}
	})
}
