package kube

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var repoRoot = filepath.Join("..", "..")

// TestShellcheck runs shellcheck on the kind and tool scripts, and the
// fake kubectl of TestKindDemoScript, when it is installed (apt-get install shellcheck).
func TestShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed")
	}
	for _, s := range []string{"kind-demo.sh", "kind-down.sh", "kube-tools.sh", "../test/kube/testdata/kind-demo/kubectl"} {
		t.Run(filepath.Base(s), func(t *testing.T) {
			out, err := exec.Command(sc, "--severity=info", filepath.Join(repoRoot, "scripts", s)).CombinedOutput()
			if err != nil {
				t.Errorf("shellcheck %s: %v\n%s", s, err, out)
			}
		})
	}
}

// kindCluster is the part of a kind cluster configuration the demo
// depends on.
type kindCluster struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Name       string `json:"name"`
	Networking struct {
		PodSubnet     string `json:"podSubnet"`
		ServiceSubnet string `json:"serviceSubnet"`
	} `json:"networking"`
	Nodes []struct {
		Role   string            `json:"role"`
		Labels map[string]string `json:"labels"`
	} `json:"nodes"`
}

// TestKindConfigs checks the demo's kind clusters without Docker: each is
// a kind Cluster named after its file, its pod and service ranges overlap
// no other range of any cluster, and every node has a region and zone,
// one region per cluster.
func TestKindConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "kind-configs", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var prefixes []netip.Prefix
	owner := map[netip.Prefix]string{}
	regions := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var kc kindCluster
		if err := yaml.UnmarshalStrict(data, &kc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		base := filepath.Base(f)
		base = base[:len(base)-len(".yaml")]
		names = append(names, kc.Name)
		if kc.Kind != "Cluster" || kc.APIVersion != "kind.x-k8s.io/v1alpha4" || kc.Name != "fedmesh-"+base {
			t.Errorf("%s: kind %q apiVersion %q name %q", f, kc.Kind, kc.APIVersion, kc.Name)
		}
		for _, s := range []string{kc.Networking.PodSubnet, kc.Networking.ServiceSubnet} {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				t.Errorf("%s: subnet %q: %v", f, s, err)
				continue
			}
			for _, q := range prefixes {
				if p.Overlaps(q) {
					t.Errorf("%s: %s overlaps %s of %s", f, p, q, owner[q])
				}
			}
			prefixes = append(prefixes, p)
			owner[p] = base
		}
		if len(kc.Nodes) < 2 {
			t.Errorf("%s: %d nodes, want at least 2 (zones)", f, len(kc.Nodes))
		}
		for i, n := range kc.Nodes {
			r, z := n.Labels[corev1.LabelTopologyRegion], n.Labels[corev1.LabelTopologyZone]
			if r == "" || z == "" {
				t.Errorf("%s: node %d has region %q zone %q", f, i, r, z)
			}
			if regions[base] != "" && regions[base] != r {
				t.Errorf("%s: nodes in regions %s and %s", f, regions[base], r)
			}
			regions[base] = r
		}
	}
	if d := cmp.Diff([]string{"fedmesh-east-1", "fedmesh-east-2", "fedmesh-west-1"}, names); d != "" {
		t.Errorf("clusters (-want +got):\n%s", d)
	}
	if regions["east-1"] != regions["east-2"] || regions["east-1"] == regions["west-1"] {
		t.Errorf("regions %v: want east-1 and east-2 together, west-1 apart (the failover scenario needs it)", regions)
	}
}
