package controlplane

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/controlplane/source/filesource"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/federation"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/topology"
)

// routeBenchServices is how many services every cluster of
// BenchmarkRoutePropagation exports.
const routeBenchServices = 100

// routeBenchSource is cluster i's source directory file: every bench
// service with one workload and its ServiceExport.
func routeBenchSource(i int) string {
	var b strings.Builder
	for k := range routeBenchServices {
		fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: svc-%04[1]d, namespace: demo}
spec:
  selector: {app: svc-%04[1]d}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: svc-%04[1]d, namespace: demo, creationTimestamp: "2026-01-01T00:%02[2]d:00Z"}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: svc-%04[1]d-1, namespace: demo, labels: {app: svc-%04[1]d}}
spec: {address: 198.18.%[2]d.%[3]d, ports: {http: 15006}, serviceAccount: svc-%04[1]d}
---
`, k, i, k+1)
	}
	return b.String()
}

// canaryRouteYAML is the producer route of svc-0000 that
// BenchmarkRoutePropagation changes: weight percent of its requests to
// svc-0001 (a ServiceImport: the clusterset), the rest to svc-0000.
func canaryRouteYAML(weight int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: svc-0000-canary, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: svc-0000}]
  rules:
  - backendRefs:
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: svc-0000, port: 8080, weight: %d}
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: svc-0001, port: 8080, weight: %d}
`, 100-weight, weight)
}

// canaryHost and canaryBackend are the virtual host the canary route is
// in and the outbound cluster its weight is measured on.
var (
	canaryHost    = naming.ServicePort{Namespace: "demo", Name: "svc-0000", Port: 8080}
	canaryBackend = naming.ServicePort{Namespace: "demo", Name: "svc-0001", Port: 8080}.OutboundCluster()
)

// canaryWeight is the weight of svc-0001 in svc-0000's canary route in
// the route configurations rcs, 0 when the route is not there.
func canaryWeight(rcs map[string]*routev3.RouteConfiguration) uint32 {
	vhName := canaryHost.Host() + ":8080"
	for _, rc := range rcs {
		for _, vh := range rc.GetVirtualHosts() {
			if vh.GetName() != vhName {
				continue
			}
			for _, r := range vh.GetRoutes() {
				if r.GetName() != "demo/svc-0000-canary/rule-0" {
					continue
				}
				for _, c := range r.GetRoute().GetWeightedClusters().GetClusters() {
					if c.GetName() == canaryBackend {
						return c.GetWeight().GetValue()
					}
				}
			}
		}
	}
	return 0
}

// sidecarWatch is a sidecar node's xDS client (the sidecar's own,
// internal/xdsclient, on a delta ADS stream with every type) in one
// cluster, recording when each canary weight was first in its accepted
// routes.
type sidecarWatch struct {
	cluster string
	// changed is signalled (without blocking) on every new weight.
	changed chan struct{}

	mu sync.Mutex // guards the following
	// cur is the weight in force (0: no canary route), since when.
	cur   uint32
	since time.Time
}

func (w *sidecarWatch) OnUpdate(u xdsclient.Update) error {
	if u.TypeURL != xdsclient.RouteType {
		return nil
	}
	now := time.Now()
	rcs := map[string]*routev3.RouteConfiguration{}
	for name, m := range u.Resources {
		if rc, ok := m.(*routev3.RouteConfiguration); ok {
			rcs[name] = rc
		}
	}
	weight := canaryWeight(rcs)
	w.mu.Lock()
	changed := weight != w.cur
	if changed {
		w.cur, w.since = weight, now
	}
	w.mu.Unlock()
	if changed {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	return nil
}

// inForceSince returns since when weight is in force, and whether it
// is.
func (w *sidecarWatch) inForceSince(weight uint32) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since, w.cur == weight
}

// viewWatch polls a member's federation view (every viewPoll) and
// records since when svc-0000's producer policies have their digest:
// the stage before xDS.
type viewWatch struct {
	mu    sync.Mutex // guards the following
	cur   string
	since time.Time
}

// viewPoll is how often a viewWatch looks at its view.
const viewPoll = 2 * time.Millisecond

func startViewWatch(tb testing.TB, m *member) *viewWatch {
	w := &viewWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(viewPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				d := svc0000Digest(m.srv.view.get())
				w.mu.Lock()
				if d != w.cur {
					w.cur, w.since = d, now
				}
				w.mu.Unlock()
			}
		}
	}()
	tb.Cleanup(func() { cancel(); <-done })
	return w
}

// svc0000Digest is the digest of demo/svc-0000's producer policies in
// v, "" when it has none.
func svc0000Digest(v *catalog.View) string {
	if v == nil {
		return ""
	}
	for i := range v.Services {
		if s := &v.Services[i]; s.Namespace == "demo" && s.Name == "svc-0000" && s.Policies != nil {
			return s.Policies.Digest
		}
	}
	return ""
}

// inViewSince returns since when digest is svc-0000's, and whether it
// is.
func (w *viewWatch) inViewSince(digest string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since, w.cur == digest
}

// startSidecarWatch connects a sidecar node of workload demo/client-1
// to m's xDS server, as the sidecar does (bootstrap token of m's CA,
// TLS checked against the control plane's SPIFFE ID).
func startSidecarWatch(tb testing.TB, m *member, cluster string, loc topology.Locality) *sidecarWatch {
	tb.Helper()
	w := &sidecarWatch{cluster: cluster, changed: make(chan struct{}, 1)}
	var addr string
	poll.Until(tb, time.Minute, cluster+" xDS listening", func() error {
		if addr = m.srv.XDSAddr(); addr == "" {
			return errors.New("not yet")
		}
		return nil
	})
	tok, err := m.auth.IssueBootstrapToken("demo", "client", "client-1", 0)
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	for _, c := range m.auth.Bundle().X509Authorities() {
		roots.AddCert(c)
	}
	cpID, err := spiffeid.FromString("spiffe://" + m.auth.TrustDomain().Name() + "/fedmesh/cluster/" + cluster)
	if err != nil {
		tb.Fatal(err)
	}
	node := xds.Node{ID: "sidecar~198.18.200.1~client-1.demo", Role: naming.RoleSidecar, Cluster: cluster,
		Namespace: "demo", ServiceAccount: "client", Workload: "client-1", Token: tok, Locality: loc}
	c, err := xdsclient.New(xdsclient.Config{
		Target:      addr,
		Credentials: credentials.NewTLS(xdsclient.ServerTLSConfig(roots, cpID, nil)),
		Node: &corev3.Node{Id: node.ID, Metadata: xds.NodeMetadata(node),
			Locality: &corev3.Locality{Region: loc.Region, Zone: loc.Zone, SubZone: cluster}},
		Handler: w,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return w
}

// routeBenchLocality is cluster i's locality: two regions.
func routeBenchLocality(i int) topology.Locality {
	return topology.Locality{Region: []string{"us-east", "us-west"}[i%2], Zone: "a"}
}

// startRouteBenchMesh runs n control planes (c00 .. c(n-1)), each a
// whole controlplane.Server with a file source of its own holding the
// bench services, joined into one federation with a join token of c00,
// and one sidecar node connected to each, and a watch of each one's
// view. It returns once every cluster's federation has every member and
// service.
func startRouteBenchMesh(tb testing.TB, n int) ([]*member, []*sidecarWatch, []*viewWatch) {
	tb.Helper()
	root := filepath.Join(tb.TempDir(), "root")
	if err := ca.InitRoot("fedmesh.test", root); err != nil {
		tb.Fatal(err)
	}
	members := make([]*member, n)
	watches := make([]*sidecarWatch, n)
	views := make([]*viewWatch, n)
	for i := range n {
		name := fmt.Sprintf("c%02d", i)
		members[i] = startMember(tb, memberOptions{
			cluster: name, locality: routeBenchLocality(i), rootDir: root,
			files:          map[string]string{"services.yaml": routeBenchSource(i)},
			sourceDebounce: filesource.DefaultDebounce,
			config: func(c *Config) {
				c.Mesh.GatewayProbes.Interval = -1 // no gateways run here
			},
		})
	}
	var token string
	poll.Until(tb, time.Minute, "c00 issues a join token", func() error {
		resp, err := members[0].srv.JoinToken(time.Hour)
		token = resp.Token
		return err
	})
	for i, m := range members[1:] {
		poll.Until(tb, time.Minute, fmt.Sprintf("c%02d joins", i+1), func() error {
			_, err := m.srv.Join(token)
			return err
		})
	}
	for i, m := range members {
		watches[i] = startSidecarWatch(tb, m, fmt.Sprintf("c%02d", i), routeBenchLocality(i))
		views[i] = startViewWatch(tb, m)
	}
	poll.Until(tb, 5*time.Minute, "federated", func() error {
		var hash string
		for i, m := range members {
			var st federation.Status
			if err := m.operatorGet(federation.StatusPath, &st); err != nil {
				return err
			}
			alive := 0
			for _, ms := range st.Members {
				if ms.State == "alive" {
					alive++
				}
			}
			if alive != n || st.Services != routeBenchServices || len(st.Fenced) > 0 {
				return fmt.Errorf("c%02d: %d of %d members alive, %d services, %d fenced", i, alive, n, st.Services, len(st.Fenced))
			}
			if i > 0 && st.ViewHash != hash {
				return fmt.Errorf("c%02d's view differs from c00's", i)
			}
			hash = st.ViewHash
		}
		return nil
	})
	return members, watches, views
}

// routeInForce writes svc-0000's canary route with weight into src's
// source directory and waits until every sidecar watch has it in force;
// it returns the times from the write until the last sidecar had it,
// until the last cluster's view had it, and until src's own view had it
// (its source read, its export written to its etcd and merged).
func routeInForce(tb testing.TB, src *member, watches []*sidecarWatch, views []*viewWatch, weight int, timeout time.Duration) (sidecars, inViews, srcView time.Duration) {
	tb.Helper()
	digest := encodeProducer(tb, parseTraffic(tb, canaryRouteYAML(weight)), "svc-0000").Digest
	start := time.Now()
	src.writeAtomic(tb, "route.yaml", canaryRouteYAML(weight))
	deadline := time.After(timeout)
	var last time.Time
	for _, w := range watches {
		for {
			if t, ok := w.inForceSince(uint32(weight)); ok && !t.Before(start) {
				if t.After(last) {
					last = t
				}
				break
			}
			select {
			case <-w.changed:
			case <-deadline:
				tb.Fatalf("weight %d not in force in %s's sidecar after %s", weight, w.cluster, timeout)
			}
		}
	}
	var lastView, firstView time.Time
	for i, v := range views {
		poll.True(tb, 10*time.Second, fmt.Sprintf("weight %d in c%02d's view", weight, i), func() bool {
			t, ok := v.inViewSince(digest)
			if ok && t.After(lastView) {
				lastView = t
			}
			if ok && i == 0 {
				firstView = t
			}
			return ok
		})
	}
	return last.Sub(start), lastView.Sub(start), firstView.Sub(start)
}

// writeAtomic puts a file into the member's source directory at once
// (a rename), as an editor or a config manager does.
func (m *member) writeAtomic(tb testing.TB, name, content string) {
	tb.Helper()
	f, err := os.CreateTemp(filepath.Dir(m.srcDir), name+"-*.tmp")
	if err != nil {
		tb.Fatal(err)
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(m.srcDir, name))
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkRoutePropagation measures policy propagation end to end: a
// producer route (svc-0000's canary weight) written into cluster c00's
// source directory, until a sidecar node of every cluster (c00's
// included) has the new weight in its accepted RDS, with every cluster
// a whole control plane (file source, embedded etcd, serf, federation,
// xDS server with its default 100 ms debounce) exporting
// routeBenchServices services. Each op is one change; it reports the p50
// and p99 over the changes of the run, the slowest change, and the p50
// and p99 until the last cluster's federation view had the route (the
// stage before xDS; views polled every viewPoll) and until c00's own
// view had it.
func BenchmarkRoutePropagation(b *testing.B) {
	for _, clusters := range []int{3, 10} {
		b.Run(fmt.Sprintf("clusters=%d", clusters), func(b *testing.B) {
			members, watches, views := startRouteBenchMesh(b, clusters)
			// The route's first version, before timing: the object is
			// created in every cluster.
			_, _, _ = routeInForce(b, members[0], watches, views, 50, 2*time.Minute)
			runtime.GC()
			lat := make([]time.Duration, 0, b.N)
			viewLat := make([]time.Duration, 0, b.N)
			srcLat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				weight := 1 + i%98
				if weight >= 50 {
					weight++ // never the weight in force
				}
				sc, vw, sv := routeInForce(b, members[0], watches, views, weight, time.Minute)
				lat, viewLat, srcLat = append(lat, sc), append(viewLat, vw), append(srcLat, sv)
			}
			b.StopTimer()
			slices.Sort(lat)
			slices.Sort(viewLat)
			slices.Sort(srcLat)
			b.ReportMetric(float64(percentileOf(lat, 50))/1e6, "p50-ms")
			b.ReportMetric(float64(percentileOf(lat, 99))/1e6, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
			b.ReportMetric(float64(percentileOf(viewLat, 50))/1e6, "view-p50-ms")
			b.ReportMetric(float64(percentileOf(viewLat, 99))/1e6, "view-p99-ms")
			b.ReportMetric(float64(percentileOf(srcLat, 50))/1e6, "src-p50-ms")
			b.ReportMetric(float64(percentileOf(srcLat, 99))/1e6, "src-p99-ms")
		})
	}
}

func percentileOf(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}
