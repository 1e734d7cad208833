package proxycmd

import (
	"context"
	"strings"
	"testing"
)

// TestSidecarTracingFlags: bad tracing flags are usage errors (exit 2)
// naming the flag, before anything is bound.
func TestSidecarTracingFlags(t *testing.T) {
	base := []string{"sidecar", "--cluster", "east-1", "--namespace", "demo", "--insecure-xds", "--trust-domain", "fedmesh.local",
		"--xds-address", "127.0.0.1:1", "--address", "127.0.0.1", "--dns", "none", "--audit-log", "none"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--otlp-endpoint", "127.0.0.1:4317", "--otlp-protocol", "thrift"}, "--otlp-protocol"},
		{[]string{"--otlp-endpoint", "127.0.0.1:4317", "--trace-sampling", "150"}, "--trace-sampling"},
		{[]string{"--otlp-endpoint", "127.0.0.1:4317", "--trace-sampling", "-1"}, "--trace-sampling"},
	} {
		_, stderr, code := runCmd(context.Background(), t, append(base, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %s", tc.args, code, stderr, tc.want)
		}
	}
}
