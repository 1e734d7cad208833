package arch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

// module is the import path of the module under test.
const module = "github.com/fedmesh/fedmesh"

// pkg is the part of `go list -json` output the rules use.
type pkg struct {
	ImportPath string
	Dir        string
	Imports    []string // direct imports of the non-test files, sorted
	Module     *struct {
		Path string
		Dir  string
		Main bool
	}
}

// graph is the import graph of the module's packages and everything they
// reach, without test files.
type graph struct {
	pkgs map[string]*pkg
	// dir is the module's root directory.
	dir string
	// own lists the import paths of the module's own packages, sorted.
	own []string
}

// inModule reports whether path is one of the module's own packages.
func (g *graph) inModule(path string) bool {
	p := g.pkgs[path]
	return p != nil && p.Module != nil && p.Module.Main
}

var (
	loadOnce  sync.Once
	loaded    *graph
	errLoaded error
)

// loadModule returns the module's import graph. The first call runs
// `go list -deps -json` once; later calls reuse its result.
func loadModule(t *testing.T) *graph {
	t.Helper()
	loadOnce.Do(func() { loaded, errLoaded = goList() })
	if errLoaded != nil {
		t.Fatal(errLoaded)
	}
	return loaded
}

func goList() (*graph, error) {
	// go test puts its own GOROOT/bin first on PATH, so this is the go
	// command that runs the test.
	gocmd, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("find the go command: %w", err)
	}
	cmd := exec.Command(gocmd, "list", "-deps", "-json=ImportPath,Dir,Imports,Module", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, stderr.Bytes())
	}
	return parseGoList(out)
}

// parseGoList reads the stream of JSON objects that `go list -json` prints.
func parseGoList(out []byte) (*graph, error) {
	g := &graph{pkgs: make(map[string]*pkg)}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		err := dec.Decode(p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse go list output: %w", err)
		}
		g.pkgs[p.ImportPath] = p
		if p.Module != nil && p.Module.Main {
			g.own = append(g.own, p.ImportPath)
			g.dir = p.Module.Dir
		}
	}
	if len(g.own) == 0 {
		return nil, fmt.Errorf("go list found no package of module %s", module)
	}
	slices.Sort(g.own)
	return g, nil
}

// match reports whether an import path matches a pattern. As in the go
// command, a pattern ending in "/..." matches the path before it and
// everything below; any other pattern matches only itself, so "net" does
// not match "net/netip".
func match(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	return path == pattern
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, path) })
}

// mod returns the import paths of the module's packages named by the
// module-relative patterns, for example mod("sidecar/...", "topology").
func mod(patterns ...string) []string {
	out := make([]string, len(patterns))
	for i, p := range patterns {
		out[i] = module + "/" + p
	}
	return out
}
