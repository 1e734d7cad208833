package proxycmd

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/fedmesh/fedmesh/internal/portset"
)

// TestOpaquePortsFlag: --opaque-ports is Linkerd's list unless told, none
// or a list in its place; a bad list is refused naming the flag, and the
// flag needs --capture.
func TestOpaquePortsFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{name: "default", args: []string{"--capture"}, want: portset.DefaultOpaque},
		{name: "none", args: []string{"--capture", "--opaque-ports=none"}, want: "none"},
		{name: "a list", args: []string{"--capture", "--opaque-ports=3306,8000-8010"}, want: "3306,8000-8010"},
		{name: "bad", args: []string{"--capture", "--opaque-ports=mysql"}, wantErr: "--opaque-ports"},
		{name: "without --capture", args: []string{"--opaque-ports=3306"}, wantErr: "need --capture"},
		{name: "probes", args: []string{"--capture", `--app-probes={"/app-health/a/readyz":{"kind":"exec","port":80}}`}, wantErr: "--app-probes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c captureFlags
			f := pflag.NewFlagSet("sidecar", pflag.ContinueOnError)
			c.addFlags(f)
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			cc, err := c.config("198.18.0.1")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("config = %v, want an error naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cc.OpaquePorts.String(); got != tc.want {
				t.Errorf("opaque ports %q, want %q", got, tc.want)
			}
		})
	}
}
