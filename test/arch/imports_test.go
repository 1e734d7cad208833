package arch

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// importRule is one row of the import rules: the packages in from (less
// those in except) may not import what deny names.
type importRule struct {
	name string
	// why is printed with every failure: the design decision the rule keeps.
	why string
	// from and except are patterns of the module's packages under the rule.
	from, except []string
	// reach names packages that may not appear anywhere in the transitive
	// imports of a package under the rule.
	reach []string
	// own names packages that neither the package under the rule nor any
	// package of this module that it reaches may import directly. Use it for
	// standard packages that the standard library itself imports (fmt
	// imports os; a pure package may use fmt but not os).
	own []string
	// allow names exceptions to reach and own.
	allow []string
	// pending, when set, says why a package under the rule may not exist
	// yet. The row is skipped while the directory of a from pattern is
	// missing, and applies as soon as it is there.
	pending string
}

// ioPackages are the standard packages that talk to the world: sockets,
// files, processes, the environment, the global logger. net/netip and
// net/url are pure values and stay allowed.
var ioPackages = []string{
	"net",
	"net/http/...",
	"net/rpc/...",
	"net/smtp",
	"os/...",
	"io/fs",
	"io/ioutil",
	"database/...",
	"syscall",
	"plugin",
	"log",
	"log/syslog",
	"golang.org/x/sys/...",
}

// heavyPackages are what a pure package may not link even indirectly: RPC,
// storage, Kubernetes clients, gossip, and xDS protobufs (the plan is an
// intermediate form with no protobuf in it; rendering to xDS is a later
// step in another package).
var heavyPackages = []string{
	"google.golang.org/grpc/...",
	"google.golang.org/protobuf/...",
	"github.com/envoyproxy/go-control-plane/...",
	"go.etcd.io/...",
	"k8s.io/client-go/...",
	"github.com/hashicorp/serf/...",
	"github.com/hashicorp/memberlist/...",
}

// controlPlaneOnly are the libraries only the control plane links.
var controlPlaneOnly = []string{
	"k8s.io/...",
	"sigs.k8s.io/...",
	"go.etcd.io/...",
	"github.com/hashicorp/serf/...",
	"github.com/hashicorp/memberlist/...",
	"github.com/google/cel-go/...",
}

// dnsNameChecks are the one DNS-1123 check the whole module uses,
// apimachinery's util/validation (pure string checks), and what it links:
// klog, logr and k8s.io/utils/net. Names the data plane parses (SNI,
// service accounts) go through it too; no Kubernetes types, scheme or
// client come with it.
var dnsNameChecks = []string{
	"k8s.io/apimachinery/pkg/util/validation/...",
	"k8s.io/apimachinery/pkg/util/sets",
	"k8s.io/apimachinery/pkg/util/errors",
	"k8s.io/apimachinery/pkg/api/validate/...",
	"k8s.io/klog/v2/...",
	"k8s.io/utils/net/...",
	"k8s.io/utils/internal/third_party/forked/golang/net",
}

var importRules = []importRule{
	{
		name:  "sidecar and gateway link no control-plane libraries",
		why:   "the data plane runs beside every workload and ships as the lean fedmesh-proxy binary: no client-go, Kubernetes types, etcd, serf or CEL",
		from:  mod("sidecar/...", "gateway/..."),
		reach: controlPlaneOnly,
		allow: dnsNameChecks,
	},
	{
		name:  "sidecar reaches only topology and internal",
		why:   "arrows point one way: sidecar -> topology, internal/...; never controlplane/, federation/ or store/",
		from:  mod("sidecar/..."),
		reach: mod("..."),
		allow: mod("sidecar/...", "topology/...", "internal/..."),
	},
	{
		name:  "gateway reaches only topology and internal",
		why:   "arrows point one way: gateway -> topology, internal/...; never controlplane/, federation/ or store/",
		from:  mod("gateway/..."),
		reach: mod("..."),
		allow: mod("gateway/...", "topology/...", "internal/..."),
	},
	{
		name:  "topology does no I/O",
		why:   "localities, priorities and weights are pure logic with table tests and fuzz targets",
		from:  mod("topology/..."),
		own:   ioPackages,
		reach: heavyPackages,
	},
	{
		name:  "catalog does no I/O",
		why:   "the exported-service model, its validation and the merged view are pure",
		from:  mod("catalog/..."),
		own:   ioPackages,
		reach: heavyPackages,
	},
	{
		name:  "xDS plan does no I/O",
		why:   "the xDS plan is pure: catalog and topology in, an intermediate form with no protobuf out; rendering and serving are elsewhere",
		from:  mod("controlplane/plan/..."),
		own:   ioPackages,
		reach: heavyPackages,
	},
	{
		name:  "the sidecar's rate limiter does no I/O",
		why:   "token buckets are pure logic with an injected clock: tested without sleeps, cheap on the request path",
		from:  mod("sidecar/ratelimit/..."),
		own:   ioPackages,
		reach: heavyPackages,
	},
	{
		name:  "clusterset allocation does no I/O",
		why:   "ClusterSetIPs are a pure function of the merged view, so every control plane computes the same ones",
		from:  mod("controlplane/clusterset/..."),
		own:   ioPackages,
		reach: heavyPackages,
	},
	{
		name:  "quota split does no I/O",
		why:   "every control plane splits a clusterset quota with the same pure functions of the replicated demand, so no leader is needed",
		from:  mod("controlplane/quota/..."),
		own:   ioPackages,
		reach: heavyPackages,
	},
	{
		name:    "policy does no I/O",
		why:     "parsing, validation and merge of routes and policies are pure",
		from:    mod("policy/..."),
		own:     ioPackages,
		reach:   heavyPackages,
		pending: "policy/ is planned",
	},
	{
		name:  "federation does not import controlplane",
		why:   "arrows point one way: controlplane -> federation",
		from:  mod("federation/..."),
		reach: mod("controlplane/..."),
	},
	{
		name:  "federation knows nothing of xDS",
		why:   "federation replicates and merges catalogs; xDS is the control plane's business",
		from:  mod("federation/..."),
		reach: []string{"github.com/envoyproxy/go-control-plane/..."},
	},
	{
		name:  "catalog and store sit below controlplane and federation",
		why:   "arrows point one way: controlplane -> federation -> store, catalog",
		from:  mod("catalog/...", "store/..."),
		reach: mod("controlplane/...", "federation/..."),
	},
	{
		name: "store knows nothing of xDS or gossip",
		why:  "store is the etcd layout; xDS belongs to controlplane/, serf to federation/",
		from: mod("store/..."),
		reach: []string{
			"github.com/envoyproxy/go-control-plane/...",
			"github.com/hashicorp/serf/...",
			"github.com/hashicorp/memberlist/...",
		},
	},
	{
		name:  "controlplane does not import the data plane",
		why:   "the control plane talks to sidecars and gateways over xDS only",
		from:  mod("controlplane/..."),
		reach: mod("sidecar/...", "gateway/..."),
	},
	{
		name:   "nothing imports cmd",
		why:    "cmd/ wires packages together and holds no logic anyone else needs",
		from:   mod("..."),
		except: mod("cmd/..."),
		reach:  mod("cmd/..."),
	},
	{
		name:   "only commands parse flags",
		why:    "cmd/ wires; packages take a Config and never read flags",
		from:   mod("..."),
		except: mod("cmd/...", "bench/cmd/..."),
		own:    []string{"github.com/spf13/cobra/...", "github.com/spf13/pflag/...", "flag"},
	},
	proxyRule,
}

// proxyRule keeps the lean data-plane binary lean. proxy_test.go applies
// it again to the binary's own `go list -deps`, by module as well as by
// package, for the build the image makes (CGO_ENABLED=0) too.
var proxyRule = importRule{
	name:  "fedmesh-proxy links no control-plane libraries",
	why:   "the data-plane binary may not link etcd, client-go, the Kubernetes scheme or CEL, nor the control plane's packages",
	from:  mod("cmd/fedmesh-proxy"),
	reach: append(slices.Clone(controlPlaneOnly), mod("controlplane/...", "federation/...", "store/...")...),
	allow: dnsNameChecks,
}

func TestImportRules(t *testing.T) {
	g := loadModule(t)
	for _, r := range importRules {
		t.Run(r.name, func(t *testing.T) {
			if r.pending != "" {
				for _, dir := range r.dirs() {
					if _, err := os.Stat(filepath.Join(g.dir, filepath.FromSlash(dir))); os.IsNotExist(err) {
						t.Skipf("%s/ does not exist yet (%s); this rule applies once it does", dir, r.pending)
					}
				}
			}
			if len(r.packages(g)) == 0 {
				t.Fatalf("no package of the module matches %q; fix the rule", r.from)
			}
			vs := r.check(g)
			if len(vs) == 0 {
				return
			}
			var b strings.Builder
			fmt.Fprintf(&b, "%d forbidden import(s); rule: %s", len(vs), r.why)
			for _, v := range vs {
				fmt.Fprintf(&b, "\n%s imports %s\n\tchain: %s", v.importer(), v.imported(), strings.Join(v.chain, " -> "))
			}
			t.Error(b.String())
		})
	}
}

// violation is a forbidden import: chain runs from the package under the
// rule to the forbidden package, each element importing the next.
type violation struct {
	chain []string
}

func (v violation) importer() string { return v.chain[len(v.chain)-2] }
func (v violation) imported() string { return v.chain[len(v.chain)-1] }

// dirs returns the directories of r's from patterns, by slash-separated
// path from the module root.
func (r importRule) dirs() []string {
	var dirs []string
	for _, p := range r.from {
		rel := strings.TrimPrefix(strings.TrimSuffix(p, "/..."), module)
		dirs = append(dirs, strings.TrimPrefix(rel, "/"))
	}
	return dirs
}

// packages returns the module's packages that r applies to.
func (r importRule) packages(g *graph) []string {
	var out []string
	for _, p := range g.own {
		if matchAny(r.from, p) && !matchAny(r.except, p) {
			out = append(out, p)
		}
	}
	return out
}

// forbids reports whether importer may not import imp under r.
func (r importRule) forbids(g *graph, importer, imp string) bool {
	if matchAny(r.allow, imp) {
		return false
	}
	return matchAny(r.reach, imp) || (g.inModule(importer) && matchAny(r.own, imp))
}

// check walks the imports of every package under r, breadth first, and
// returns each forbidden import once, with the shortest chain that reaches
// it from a package under the rule. It does not walk past a forbidden
// package, so linking etcd is one violation, not one per etcd package.
func (r importRule) check(g *graph) []violation {
	type edge struct{ from, to string }
	found := make(map[edge][]string)
	for _, root := range r.packages(g) {
		prev := map[string]string{root: ""}
		queue := []string{root}
		for len(queue) > 0 {
			n := queue[0]
			queue = queue[1:]
			p := g.pkgs[n]
			if p == nil {
				continue
			}
			for _, imp := range p.Imports {
				if r.forbids(g, n, imp) {
					e := edge{n, imp}
					chain := append(pathTo(prev, n), imp)
					if old, ok := found[e]; !ok || len(chain) < len(old) {
						found[e] = chain
					}
					continue
				}
				if _, seen := prev[imp]; !seen {
					prev[imp] = n
					queue = append(queue, imp)
				}
			}
		}
	}
	vs := make([]violation, 0, len(found))
	for _, chain := range found {
		vs = append(vs, violation{chain: chain})
	}
	slices.SortFunc(vs, func(a, b violation) int {
		return cmp.Or(
			strings.Compare(a.importer(), b.importer()),
			strings.Compare(a.imported(), b.imported()),
		)
	})
	return vs
}

// pathTo returns the import chain from the walk's root to n.
func pathTo(prev map[string]string, n string) []string {
	var chain []string
	for ; n != ""; n = prev[n] {
		chain = append(chain, n)
	}
	slices.Reverse(chain)
	return chain
}
