package merge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
)

// TestMergerMatchesMerge applies random changes (exports put and deleted,
// clusters fenced and unfenced) and checks after each that the
// incremental view equals a full Merge of the same inputs.
func TestMergerMatchesMerge(t *testing.T) {
	tests := []struct {
		name string
		seed uint64
	}{
		{name: "seed 1", seed: 1},
		{name: "seed 2", seed: 2},
		{name: "seed 3", seed: 3},
	}
	clusterNames := []string{"a", "b", "c"}
	// Exports carry no policies, or one of two different sets.
	policySets := []*catalog.Policies{nil, encode(t, routeDoc("canary", "echo", 10)), encode(t, routeDoc("canary", "echo", 50))}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tt.seed, 0))
			m := NewMerger("a")
			exports := map[string]map[string]catalog.Export{}
			clusters := map[string]catalog.ClusterInfo{}
			for step := range 300 {
				cluster := clusterNames[rng.IntN(len(clusterNames))]
				switch rng.IntN(4) {
				case 0: // fence or unfence
					ci := clusters[cluster]
					ci.Fenced = !ci.Fenced
					ci.FenceReason = fmt.Sprint("step ", step)
					ci.RTT = time.Duration(rng.IntN(100)) * time.Millisecond
					clusters[cluster] = ci
					m.SetClusters(clusters)
				default: // put or delete one service
					name := fmt.Sprintf("s%d", rng.IntN(6))
					set := exports[cluster]
					if set == nil {
						set = map[string]catalog.Export{}
						exports[cluster] = set
					}
					if _, ok := set[name]; ok && rng.IntN(3) == 0 {
						delete(set, name)
					} else {
						typ := catalog.ClusterSetIP
						if rng.IntN(5) == 0 {
							typ = catalog.Headless
						}
						e := export(cluster, time.Duration(rng.IntN(3))*time.Minute, typ,
							[]catalog.Port{httpPort(int32(80 + rng.IntN(2)))}, ep(fmt.Sprintf("127.0.0.%d", rng.IntN(3)+1), "http", rng.IntN(2) == 0))
						e.Service.Name = name
						e.Policies = policySets[rng.IntN(len(policySets))]
						if typ == catalog.ClusterSetIP && rng.IntN(2) == 0 {
							e.Service.ClusterIPs = []string{fmt.Sprintf("10.96.0.%d", rng.IntN(3)+1)}
						}
						set[name] = e
					}
					var list []catalog.Export
					for _, e := range set {
						list = append(list, e)
					}
					changed := []catalog.ServiceKey{{Namespace: "demo", Name: name}}
					if rng.IntN(10) == 0 {
						changed = nil // a resync
					}
					m.SetExports(cluster, list, changed)
				}
				all := map[string][]catalog.Export{}
				for c, set := range exports {
					for _, e := range set {
						all[c] = append(all[c], e)
					}
				}
				want := Merge("a", clusters, all)
				got := m.View()
				if !cmp.Equal(want, got, rawBytes) {
					t.Fatalf("step %d: incremental view differs (-merge +merger):\n%s", step, cmp.Diff(want, got, rawBytes))
				}
			}
		})
	}
}

// rawBytes compares policy documents as bytes: cmp's element by element
// walk of them makes the test many times slower.
var rawBytes = cmp.Comparer(func(a, b json.RawMessage) bool { return bytes.Equal(a, b) })

func BenchmarkMerge(b *testing.B) {
	const clusters, services = 10, 1000
	all := map[string][]catalog.Export{}
	for c := range clusters {
		name := fmt.Sprintf("c%02d", c)
		for s := range services {
			e := export(name, 0, catalog.ClusterSetIP, []catalog.Port{httpPort(80)}, ep("127.0.0.1", "http", true), ep("127.0.0.2", "http", true))
			e.Service.Name = fmt.Sprintf("svc-%04d", s)
			all[name] = append(all[name], e)
		}
	}
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			Merge("c00", nil, all)
		}
	})
	b.Run("incremental one change", func(b *testing.B) {
		m := NewMerger("c00")
		for c, list := range all {
			m.SetExports(c, list, nil)
		}
		m.View()
		changed := []catalog.ServiceKey{{Namespace: "demo", Name: "svc-0001"}}
		for b.Loop() {
			m.SetExports("c01", all["c01"], changed)
			m.View()
		}
	})
}
