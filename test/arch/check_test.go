package arch

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeGraph builds a graph from an adjacency list. Paths starting with "m/"
// are the module's own packages.
func fakeGraph(imports map[string][]string) *graph {
	g := &graph{pkgs: make(map[string]*pkg)}
	for path, imps := range imports {
		p := &pkg{ImportPath: path, Imports: imps}
		if strings.HasPrefix(path, "m/") {
			p.Module = &struct {
				Path string
				Dir  string
				Main bool
			}{Path: "m", Main: true}
			g.own = append(g.own, path)
		}
		g.pkgs[path] = p
	}
	slices.Sort(g.own)
	return g
}

// TestCheck shows that the checker finds what the rules forbid, on a small
// made-up graph, so that TestImportRules passing means something.
func TestCheck(t *testing.T) {
	g := fakeGraph(map[string][]string{
		"m/sidecar":       {"fmt", "m/sidecar/proxy", "m/topology"},
		"m/sidecar/proxy": {"m/internal/dial", "net"},
		"m/internal/dial": {"etcd/client"},
		"m/topology":      {"fmt", "strings"},
		"m/catalog":       {"m/topology", "net/netip", "os"},
		"m/plan":          {"m/catalog", "m/render"},
		"m/render":        {"fmt"},
		"etcd/client":     {"etcd/api", "net"},
		"etcd/api":        {"fmt"},
		"fmt":             {"os", "strings"},
		"os":              {"syscall"},
		"net/netip":       {"strings"},
		"net":             {"syscall"},
		"strings":         nil,
		"syscall":         nil,
	})
	tests := []struct {
		name string
		rule importRule
		want []string // chains
	}{
		{
			name: "reach stops at the first forbidden package",
			rule: importRule{from: []string{"m/sidecar/..."}, reach: []string{"etcd/..."}},
			want: []string{"m/sidecar/proxy -> m/internal/dial -> etcd/client"},
		},
		{
			name: "one report per import, shortest chain",
			rule: importRule{from: []string{"m/sidecar/..."}, reach: []string{"net"}},
			want: []string{
				"m/sidecar/proxy -> m/internal/dial -> etcd/client -> net",
				"m/sidecar/proxy -> net",
			},
		},
		{
			name: "own ignores what the standard library imports",
			rule: importRule{from: []string{"m/topology", "m/catalog"}, own: []string{"os", "net"}},
			want: []string{"m/catalog -> os"},
		},
		{
			name: "own follows the module's packages",
			rule: importRule{from: []string{"m/plan"}, own: []string{"os"}},
			want: []string{"m/plan -> m/catalog -> os"},
		},
		{
			name: "allow makes exceptions",
			rule: importRule{from: []string{"m/sidecar"}, reach: []string{"m/..."}, allow: []string{"m/sidecar/...", "m/topology"}},
			want: []string{"m/sidecar -> m/sidecar/proxy -> m/internal/dial"},
		},
		{
			name: "except leaves packages out",
			rule: importRule{from: []string{"m/..."}, except: []string{"m/sidecar/...", "m/internal/..."}, reach: []string{"etcd/..."}},
			want: nil,
		},
		{
			name: "a pattern without /... matches only itself",
			rule: importRule{from: []string{"m/catalog"}, own: []string{"net"}},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, v := range tt.rule.check(g) {
				got = append(got, strings.Join(v.chain, " -> "))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("check() chains (-want +got):\n%s", diff)
			}
		})
	}
}
