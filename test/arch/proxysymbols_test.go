package arch

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// proxySymbols are symbols fedmesh-proxy must not link, with why. They
// are about what the linker keeps, not about imports: the generated
// protoc-gen-validate methods of go-control-plane's types are in packages
// the proxy must import, and are linked, all of them, as soon as anything
// calls ValidateAll or Validate through an interface (internal/pgv checks
// the same rules by reflection instead).
var proxySymbols = []struct {
	re  *regexp.Regexp
	why string
}{
	{regexp.MustCompile(`^github\.com/(envoyproxy/go-control-plane|cncf/xds)/.*\)\.(ValidateAll|validate)$`),
		"generated protoc-gen-validate code: 4.5 MB of the binary; use internal/pgv.Validate, never ValidateAll or Validate on an xDS message"},
}

// TestProxyBinarySymbols builds fedmesh-proxy as the image does and
// fails on any symbol proxySymbols forbids.
func TestProxyBinarySymbols(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root := loadModule(t).dir
	bin := filepath.Join(t.TempDir(), "fedmesh-proxy")
	build := exec.Command("go", "build", "-trimpath", "-tags", proxyTags, "-o", bin, "./cmd/fedmesh-proxy")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(build.Args, " "), err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	syms := 0
	found := map[int][]string{}
	for _, line := range bytes.Split(out, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 3 {
			continue
		}
		syms++
		name := strings.Join(f[2:], " ")
		for i, s := range proxySymbols {
			if s.re.MatchString(name) {
				found[i] = append(found[i], name)
			}
		}
	}
	if syms < 1000 {
		t.Fatalf("go tool nm listed only %d symbols: the check proves nothing", syms)
	}
	for i, names := range found {
		t.Errorf("fedmesh-proxy links %d symbols matching %s (%s), such as %s", len(names), proxySymbols[i].re, proxySymbols[i].why, names[0])
	}
}

// The check finds the generated validation when something calls it.
func TestProxySymbolsCatchValidateAll(t *testing.T) {
	re := proxySymbols[0].re
	for _, s := range []string{
		"github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3.(*Cluster).ValidateAll",
		"github.com/cncf/xds/go/xds/core/v3.(*TypedExtensionConfig).validate",
	} {
		if !re.MatchString(s) {
			t.Errorf("%s does not match %s", s, re)
		}
	}
	if re.MatchString("github.com/fedmesh/fedmesh/sidecar.(*CaptureConfig).validate") {
		t.Error("the pattern matches fedmesh's own validate methods")
	}
}
