package proxycmd

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// An xDS address the client cannot use must stop the gateway with an
// error, not leave it serving without routes.
func TestGatewayCmdFailsWithoutXDS(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	// The deadline only bounds a gateway that wrongly keeps running.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, stderr, code := runCmd(ctx, t, "gateway", "--cluster", "east-1", "--insecure-xds", "--xds-address", "dns:///%zz",
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if ctx.Err() != nil {
		t.Fatalf("gateway ran until the test's deadline (exit %d, %q); want it to stop with the xDS error", code, stderr)
	}
	if code == 0 || !strings.Contains(stderr, "xdsclient: dial") {
		t.Fatalf("gateway exit %d, stderr %q; want the xDS dial error", code, stderr)
	}
}
