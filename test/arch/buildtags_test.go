package arch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// proxyTags are the build tags every build of the proxy binary uses
// (Makefile, Dockerfile, the benchmark drivers): grpcnotrace leaves
// golang.org/x/net/trace and html/template out of gRPC, which nothing
// in fedmesh turns on (grpc.EnableTracing), for 5 MB less binary and
// about 3 MB less RSS per sidecar (bench/README.md).
const proxyTags = "grpcnotrace"

// TestProxyBuildTags checks that the builds pass proxyTags and that the
// tags keep the packages they are for out of fedmesh-proxy.
func TestProxyBuildTags(t *testing.T) {
	root := loadModule(t).dir
	for _, file := range []string{"Makefile", "Dockerfile", "scripts/bench-sidecar.sh", "scripts/bench-sidecar-rss.sh", "scripts/bench-proxy-footprint.sh"} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "go build") && strings.Contains(line, "fedmesh-proxy") && !strings.Contains(line, "-tags") {
				t.Errorf("%s:%d builds fedmesh-proxy without -tags %s: %s", file, i+1, proxyTags, strings.TrimSpace(line))
			}
		}
		if !strings.Contains(string(b), proxyTags) {
			t.Errorf("%s does not name the build tag %s", file, proxyTags)
		}
	}
	g := listDeps(t, root, nil, "-tags", proxyTags, "./cmd/fedmesh-proxy")
	if g.pkgs["github.com/fedmesh/fedmesh/sidecar"] == nil {
		t.Fatal("go list -deps -tags " + proxyTags + " ./cmd/fedmesh-proxy has no sidecar: the check below proves nothing")
	}
	for _, p := range []string{"golang.org/x/net/trace", "html/template"} {
		if g.pkgs[p] != nil {
			t.Errorf("fedmesh-proxy built with -tags %s links %s", proxyTags, p)
		}
	}
}
