package arch

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// proxyModules are the modules of which fedmesh-proxy may link no package
// but the DNS-name checks (dnsNameChecks): client-go, the Kubernetes API
// types and scheme (k8s.io/api, apimachinery's runtime), etcd, CEL, gossip.
// cel.dev/expr stays allowed: it is only the protobuf messages of CEL
// expressions, which the xDS matcher types (github.com/cncf/xds) refer
// to; the CEL compiler and evaluator are github.com/google/cel-go.
var proxyModules = []string{
	"k8s.io/...",
	"sigs.k8s.io/...",
	"go.etcd.io/...",
	"github.com/google/cel-go",
	"github.com/hashicorp/serf",
	"github.com/hashicorp/memberlist",
}

// TestProxyBinaryDeps lists the whole dependency set of cmd/fedmesh-proxy
// (`go list -deps`), as the default build and the image's build
// (CGO_ENABLED=0) link it, and fails on any package of a forbidden module
// or any package proxyRule forbids, with the import chain that brings it.
func TestProxyBinaryDeps(t *testing.T) {
	root := loadModule(t).dir
	for _, env := range [][]string{nil, {"CGO_ENABLED=0"}} {
		t.Run(fmt.Sprintf("env=%v", env), func(t *testing.T) {
			g := listDeps(t, root, env, "./cmd/fedmesh-proxy")
			// The set must hold the data plane, or the checks below
			// prove nothing.
			for _, want := range mod("sidecar", "gateway", "cmd/internal/proxycmd") {
				if g.pkgs[want] == nil {
					t.Fatalf("go list -deps ./cmd/fedmesh-proxy has no %s", want)
				}
			}
			for _, msg := range proxyViolations(g) {
				t.Error(msg)
			}
		})
	}
}

// The checks find what the full binary links: they can fail.
func TestProxyCheckCatchesFedmesh(t *testing.T) {
	g := listDeps(t, loadModule(t).dir, nil, "./cmd/fedmesh")
	r := proxyRule
	r.from = mod("cmd/fedmesh")
	g.own = slices.DeleteFunc(slices.Clone(g.own), func(p string) bool { return !matchAny(r.from, p) })
	got := strings.Join(append(proxyViolationsOf(g, r), ""), "\n")
	for _, want := range []string{"go.etcd.io/etcd", "k8s.io/client-go", "k8s.io/apimachinery/pkg/runtime", "fedmesh/controlplane"} {
		if !strings.Contains(got, want) {
			t.Errorf("the fedmesh-proxy checks applied to cmd/fedmesh do not name %s:\n%s", want, got)
		}
	}
}

func proxyViolations(g *graph) []string { return proxyViolationsOf(g, proxyRule) }

// proxyViolationsOf returns one message per import r forbids (with its
// chain) and per listed package of a forbidden module that r.allow does
// not name.
func proxyViolationsOf(g *graph, r importRule) []string {
	var msgs []string
	for _, v := range r.check(g) {
		msgs = append(msgs, fmt.Sprintf("%s imports %s (%s)\n\tchain: %s", v.importer(), v.imported(), r.why, strings.Join(v.chain, " -> ")))
	}
	for _, path := range slices.Sorted(mapKeys(g.pkgs)) {
		p := g.pkgs[path]
		if p.Module == nil || !matchAny(proxyModules, p.Module.Path) || matchAny(r.allow, path) {
			continue
		}
		msgs = append(msgs, fmt.Sprintf("links %s of module %s, which only the control plane may link", path, p.Module.Path))
	}
	return msgs
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// listDeps returns the import graph of the packages and all they import,
// as `go list -deps` in the module root dir with env added sees it.
func listDeps(t *testing.T, dir string, env []string, patterns ...string) *graph {
	t.Helper()
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("find the go command: %v", err)
	}
	cmd := exec.Command(gocmd, append([]string{"list", "-deps", "-json=ImportPath,Dir,Imports,Module"}, patterns...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.Bytes())
	}
	g, err := parseGoList(out)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
