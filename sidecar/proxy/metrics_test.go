package proxy_test

import (
	"sort"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// familiesOf returns the sorted, distinct metric families that have a
// series whose labels include want.
func familiesOf(t *testing.T, reg prometheus.Gatherer, want map[string]string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			out = append(out, mf.GetName())
			break
		}
	}
	sort.Strings(out)
	return out
}

// TestRemovedServiceSeriesAreDeleted sends traffic to two services, then
// removes one from the client's configuration and its inbound port from
// its server's: every series of the removed service goes, on both sides,
// and the other service's stay.
func TestRemovedServiceSeriesAreDeleted(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	gone, kept := sp("gone", 8080), sp("kept", 8080)
	goneSrv := startWorkload(t, ca, "gone", gone, startApp(t, "gone", nil))
	keptSrv := startWorkload(t, ca, "kept", kept, startApp(t, "kept", nil))
	svcOf := func(s string, w *workload) service {
		return service{sp: sp(s, 8080), opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{w.id}}, retries: 1,
			eps: []meshtest.Endpoint{{Addr: w.addr, Cluster: "east-1", Identity: w.id, Healthy: true}}}
	}
	c := startClient(t, ca, svcOf("gone", goneSrv), svcOf("kept", keptSrv))
	hc := c.http(t)
	for _, s := range []string{svcURL(gone), svcURL(kept)} {
		if r := get(t, hc, s); r.Code != 200 {
			t.Fatalf("GET %s: %+v", s, r)
		}
	}
	// The balancer's families (fedmesh_sidecar_lb_*) have series only
	// for what happened to an upstream; these requests all succeeded.
	outbound := []string{
		"fedmesh_sidecar_request_duration_seconds",
		"fedmesh_sidecar_requests_total",
	}
	inbound := []string{"fedmesh_sidecar_request_duration_seconds", "fedmesh_sidecar_requests_total"}
	clientSeries := func(name string) []string {
		return append(familiesOf(t, c.reg, map[string]string{"service": name}), familiesOf(t, c.reg, map[string]string{"upstream": name})...)
	}
	sorted := func(s []string) []string { sort.Strings(s); return s }

	// Before: both services have series on the client, and the server
	// of the service to remove has its inbound series.
	if got := familiesOf(t, goneSrv.reg, map[string]string{"reporter": "destination", "destination_service": gone.Host()}); len(got) != 4 {
		t.Fatalf("server mesh families before the removal: %v", got)
	}
	before := map[string][]string{
		"client " + gone.String(): sorted(clientSeries(gone.String())),
		"client " + kept.String(): sorted(clientSeries(kept.String())),
		"server " + gone.String(): familiesOf(t, goneSrv.reg, map[string]string{"direction": "inbound", "service": gone.String()}),
	}
	if diff := cmp.Diff(map[string][]string{
		"client " + gone.String(): outbound,
		"client " + kept.String(): outbound,
		"server " + gone.String(): inbound,
	}, before); diff != "" {
		t.Fatalf("series before the removal (-want +got):\n%s", diff)
	}

	c.configure(t, ca, svcOf("kept", keptSrv))
	_, certPEM, keyPEM := ca.Issue(t, meshtest.SVID{URIs: []string{goneSrv.id}})
	configure(t, ca, goneSrv.p, map[string][]types.Resource{xdsclient.SecretType: meshtest.Secrets(certPEM, keyPEM, ca.PEM())})
	// A request for the removed service after the removal is no_route,
	// not a series of that service.
	if r := get(t, hc, svcURL(gone)); r.Code != 404 {
		t.Errorf("GET removed service: %+v, want 404", r)
	}

	// The mesh families (fedmesh_requests_total, ...) go too, on both
	// sides, and the kept service's stay.
	mesh := func(reg prometheus.Gatherer, reporter string, s naming.ServicePort) []string {
		return familiesOf(t, reg, map[string]string{"reporter": reporter, "destination_service": s.Host()})
	}
	meshFamilies := []string{"fedmesh_request_bytes", "fedmesh_request_duration_seconds", "fedmesh_requests_total", "fedmesh_response_bytes"}
	if diff := cmp.Diff(map[string][]string{"client gone": nil, "client kept": meshFamilies, "server gone": nil}, map[string][]string{
		"client gone": mesh(c.reg, "source", gone), "client kept": mesh(c.reg, "source", kept), "server gone": mesh(goneSrv.reg, "destination", gone),
	}); diff != "" {
		t.Errorf("mesh series after the removal (-want +got):\n%s", diff)
	}

	after := map[string][]string{
		"client " + gone.String(): sorted(clientSeries(gone.String())),
		"client " + kept.String(): sorted(clientSeries(kept.String())),
		"server " + gone.String(): familiesOf(t, goneSrv.reg, map[string]string{"direction": "inbound", "service": gone.String()}),
	}
	if diff := cmp.Diff(map[string][]string{
		"client " + gone.String(): nil,
		"client " + kept.String(): outbound,
		"server " + gone.String(): nil,
	}, after); diff != "" {
		t.Errorf("series after the removal (-want +got):\n%s", diff)
	}
}
