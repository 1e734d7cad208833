package kube

import (
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The MCS fake clientset cannot stream a watch list's initial events
	// (its generated code predates them); informers then wait 10s for a
	// bookmark before they fall back to list and watch. Turn the client
	// feature off for the fakes; real API servers support it.
	os.Setenv("KUBE_FEATURE_WatchListClient", "false")
	goleak.VerifyTestMain(m,
		// klog's flush daemon starts with the package and never stops.
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
	)
}

func testLogger(tb testing.TB) *slog.Logger {
	if os.Getenv("FEDMESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", tb.Name())
	}
	return slog.New(slog.DiscardHandler)
}
