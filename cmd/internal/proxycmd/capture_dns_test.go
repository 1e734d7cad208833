package proxycmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseUpstreams: --dns-upstream takes IPv4 and IPv6 nameservers,
// as a list ([ADDR]:PORT for IPv6) or from a resolv.conf (IPv6 ones
// become [ADDR]:53); anything else is refused, naming it.
func TestParseUpstreams(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("search demo.svc.cluster.local\nnameserver fd00:10:96::a\nnameserver 10.96.0.10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in, wantErr string
		want        []string
	}{
		{in: ""},
		{in: "[fd00::53]:53, 127.0.0.1:5353", want: []string{"[fd00::53]:53", "127.0.0.1:5353"}},
		{in: "file:" + conf, want: []string{"[fd00:10:96::a]:53", "10.96.0.10:53"}},
		{in: "fd00::53", wantErr: `"fd00::53" is not IP:PORT`},
		{in: "dns.example:53", wantErr: `"dns.example:53" is not IP:PORT`},
		{in: "file:" + filepath.Join(dir, "none"), wantErr: "no such file"},
	} {
		got, err := parseUpstreams(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--dns-upstream") {
				t.Errorf("parseUpstreams(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseUpstreams(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("parseUpstreams(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}
