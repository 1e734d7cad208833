package federation

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// benchServices is how many services every cluster exports.
const benchServices = 1000

// benchExports is cluster i's export of every bench service; flip sets
// the readiness of the first endpoint of service k.
func benchExports(i int, readyOff map[int]bool) []catalog.Export {
	c := clusterName(i)
	out := make([]catalog.Export, benchServices)
	for k := range out {
		e := export(c, fmt.Sprintf("svc-%04d", k), t0.Add(time.Duration(i)*time.Minute), 8080,
			fmt.Sprintf("10.%d.%d.%d", i, k/250, k%250+1), fmt.Sprintf("10.%d.%d.%d", 100+i, k/250, k%250+1))
		if readyOff[k] {
			e.Endpoints[0].Ready = false
			e.Endpoints[0].Serving = false
		}
		out[k] = e
	}
	return out
}

// BenchmarkPropagation measures how long one endpoint change takes from
// SetExports in cluster c00's store to cluster c01's merged view, with
// every cluster exporting benchServices services. It reports p50 and p99
// latency, and the process CPU time and heap per control plane (all
// control planes share the process, so these are averages).
func BenchmarkPropagation(b *testing.B) {
	for _, clusters := range []int{3, 10} {
		b.Run(fmt.Sprintf("clusters=%d", clusters), func(b *testing.B) {
			nodes := startCluster(b, clusters, testOptions{fence: time.Minute})
			for i, n := range nodes {
				n.setExports(b, benchExports(i, nil))
			}
			src, dst := nodes[0], nodes[1]
			poll.Until(b, 5*time.Minute, "federated", func() error {
				for _, n := range nodes {
					v := n.fed.View()
					if v == nil || len(v.Services) != benchServices {
						return fmt.Errorf("%s: view not complete", n.name)
					}
					if got := len(v.Services[benchServices-1].Endpoints); got != 2*clusters {
						return fmt.Errorf("%s: %d endpoints of the last service, want %d", n.name, got, 2*clusters)
					}
				}
				return nil
			})
			views, unsubscribe := dst.fed.Subscribe()
			defer unsubscribe()

			runtime.GC()
			cpu0 := cpuTime()
			readyOff := map[int]bool{}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % benchServices
				readyOff[k] = !readyOff[k]
				exports := benchExports(0, readyOff)
				start := time.Now()
				src.setExports(b, exports)
				wantReady := !readyOff[k]
				deadline := time.After(time.Minute)
				for done := false; !done; {
					select {
					case v := <-views:
						done = endpointReady(v, fmt.Sprintf("svc-%04d", k), src.name, exports[k].Endpoints[0].Address) == wantReady
					case <-deadline:
						b.Fatalf("change %d not in %s's view after a minute", i, dst.name)
					}
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			slices.Sort(lat)
			b.ReportMetric(float64(percentile(lat, 50))/1e6, "p50-ms")
			b.ReportMetric(float64(percentile(lat, 99))/1e6, "p99-ms")
			b.ReportMetric(float64(cpu)/1e6/float64(b.N)/float64(clusters), "cpu-ms/op/cp")
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20)/float64(clusters), "heap-MiB/cp")
		})
	}
}

func endpointReady(v *catalog.View, name, cluster, addr string) bool {
	i := sort.Search(len(v.Services), func(i int) bool {
		s := v.Services[i]
		return s.Namespace > "demo" || (s.Namespace == "demo" && strings.Compare(s.Name, name) >= 0)
	})
	if i == len(v.Services) || v.Services[i].Name != name {
		return false
	}
	for _, ep := range v.Services[i].Endpoints {
		if ep.Locality.Cluster == cluster && ep.Address == addr {
			return ep.Ready
		}
	}
	return false
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
