package kube

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"
)

// tools is the directory with kube-apiserver and etcd; skipWhy says why
// the tests cannot run when it is empty.
var (
	tools   string
	skipWhy string
)

// shared holds the two clusters every test uses, started once.
var shared struct {
	once     sync.Once
	err      error
	root     string
	clusters [2]*apiCluster
}

func TestMain(m *testing.M) {
	tools, skipWhy = findTools()
	if tools == "" && os.Getenv("CI") == "true" {
		fmt.Fprintln(os.Stderr, "test/kube: FAIL:", skipWhy)
		os.Exit(1)
	}
	code := m.Run()
	for _, c := range shared.clusters {
		if c != nil {
			c.stop()
		}
	}
	if shared.root != "" {
		os.RemoveAll(shared.root)
	}
	if code == 0 {
		// client-go starts goroutines that outlive every client: the
		// watch-list feature gate poller and klog's flush daemon, and the
		// HTTP/2 connections' read loops of cached transports, which close
		// only when idle. Those are ignored by name; anything else fails.
		if err := goleak.Find(
			goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
			goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
			goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreAnyFunction("k8s.io/client-go/util/workqueue.(*Typed[...]).updateUnfinishedWorkLoop"),
			goleak.IgnoreAnyFunction("k8s.io/apimachinery/pkg/util/wait.BackoffUntilWithContext.func1"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "test/kube: goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// findTools returns the directory holding kube-apiserver and etcd, from
// FEDMESH_KUBE_TOOLS or scripts/kube-tools.sh --check, or "" and why not.
func findTools() (string, string) {
	dir := os.Getenv("FEDMESH_KUBE_TOOLS")
	how := "FEDMESH_KUBE_TOOLS"
	if dir == "" {
		script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "kube-tools.sh"))
		if err != nil {
			return "", err.Error()
		}
		out, err := exec.Command("bash", script, "--check").Output()
		if err != nil {
			return "", "kube-apiserver and etcd are not built: run `bash scripts/kube-tools.sh` (15-20 minutes the first time) or set FEDMESH_KUBE_TOOLS to the directory that holds them"
		}
		dir = strings.TrimSpace(string(out))
		how = "scripts/kube-tools.sh --check"
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.Mode()&0o111 == 0 {
			return "", fmt.Sprintf("%s names %s, which has no executable %s: run `bash scripts/kube-tools.sh`", how, dir, b)
		}
	}
	return dir, ""
}

// clusters returns the two shared clusters, starting them in parallel on
// first use.
func clusters(t *testing.T) (*apiCluster, *apiCluster) {
	t.Helper()
	if tools == "" {
		t.Skip("test/kube:", skipWhy)
	}
	shared.once.Do(func() {
		shared.root, shared.err = os.MkdirTemp("", "fedmesh-kube-test-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var g errgroup.Group
		for i, name := range []string{"east-1", "west-1"} {
			g.Go(func() error {
				c, err := startAPICluster(ctx, tools, name, shared.root)
				shared.clusters[i] = c
				return err
			})
		}
		if shared.err = g.Wait(); shared.err != nil {
			return
		}
		for _, c := range shared.clusters {
			if shared.err = installCRDs(ctx, c); shared.err != nil {
				return
			}
			if shared.err = installFiles(ctx, c, "base/namespace.yaml", "base/rbac.yaml"); shared.err != nil {
				return
			}
		}
	})
	if shared.err != nil {
		t.Fatalf("start the test clusters: %v", shared.err)
	}
	return shared.clusters[0], shared.clusters[1]
}

func testLogger(tb testing.TB) *slog.Logger {
	if os.Getenv("FEDMESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", tb.Name())
	}
	return slog.New(slog.DiscardHandler)
}
