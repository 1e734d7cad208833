package federation

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
)

// canaryPolicies are the producer policies of a canary of service name
// sending weight percent to NAME-v2: one HTTPRoute, encoded as the
// control plane publishes it with the export.
func canaryPolicies(tb testing.TB, name string, weight int32) *catalog.Policies {
	tb.Helper()
	kind := gatewayv1.Kind(policy.KindServiceImport)
	group := gatewayv1.Group(policy.MCSGroup)
	port := gatewayv1.PortNumber(8080)
	backend := func(n string, w int32) gatewayv1.HTTPBackendRef {
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{Group: &group, Kind: &kind, Name: gatewayv1.ObjectName(n), Port: &port},
			Weight:                 &w,
		}}
	}
	r := gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name + "-canary"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Group: &group, Kind: &kind, Name: gatewayv1.ObjectName(name)}}},
			Rules:           []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{backend(name, 100-weight), backend(name+"-v2", weight)}}},
		},
	}
	p, err := policy.EncodePolicies(policy.Traffic{HTTPRoutes: []gatewayv1.HTTPRoute{r}})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkPolicyPropagation measures how long a producer route change
// takes from SetExports in cluster c00's store (the route travels with
// the export of its service) to the merged view of every other cluster,
// with every cluster exporting benchServices services. It reports p50
// and p99 of the time until the last cluster has it.
func BenchmarkPolicyPropagation(b *testing.B) {
	for _, clusters := range []int{3, 10} {
		b.Run(fmt.Sprintf("clusters=%d", clusters), func(b *testing.B) {
			nodes := startCluster(b, clusters, testOptions{fence: time.Minute})
			for i, n := range nodes {
				n.setExports(b, benchExports(i, nil))
			}
			poll.Until(b, 5*time.Minute, "federated", func() error {
				for _, n := range nodes {
					v := n.fed.View()
					if v == nil || len(v.Services) != benchServices {
						return fmt.Errorf("%s: view not complete", n.name)
					}
				}
				return nil
			})
			src := nodes[0]
			var subs []<-chan *catalog.View
			for _, n := range nodes[1:] {
				views, unsubscribe := n.fed.Subscribe()
				defer unsubscribe()
				subs = append(subs, views)
			}
			runtime.GC()
			lat := make([]time.Duration, 0, b.N)
			exports := benchExports(0, nil)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % benchServices
				name := fmt.Sprintf("svc-%04d", k)
				want := canaryPolicies(b, name, int32(1+i%99))
				exports[k].Policies = want
				start := time.Now()
				src.setExports(b, exports)
				deadline := time.After(time.Minute)
				for j, views := range subs {
					for done := false; !done; {
						select {
						case v := <-views:
							done = policiesDigest(v, name) == want.Digest
						case <-deadline:
							b.Fatalf("change %d not in %s's view after a minute", i, nodes[j+1].name)
						}
					}
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(percentile(lat, 50))/1e6, "p50-ms")
			b.ReportMetric(float64(percentile(lat, 99))/1e6, "p99-ms")
		})
	}
}

// policiesDigest is the digest of service demo/name's producer policies
// in v, "" when it has none.
func policiesDigest(v *catalog.View, name string) string {
	i := sort.Search(len(v.Services), func(i int) bool {
		s := v.Services[i]
		return s.Namespace > "demo" || (s.Namespace == "demo" && s.Name >= name)
	})
	if i == len(v.Services) || v.Services[i].Name != name || v.Services[i].Policies == nil {
		return ""
	}
	return v.Services[i].Policies.Digest
}
