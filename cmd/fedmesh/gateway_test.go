package main

import (
	"bytes"
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
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"gateway", "--cluster", "east-1", "--insecure-xds", "--xds-address", "dns:///%zz",
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"})
	err := root.ExecuteContext(ctx)
	if ctx.Err() != nil {
		t.Fatalf("gateway ran until the test's deadline (err %v); want it to stop with the xDS error", err)
	}
	if err == nil || !strings.Contains(err.Error(), "xdsclient: dial") {
		t.Fatalf("gateway error = %v, want the xDS dial error", err)
	}
}
