package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane"
	"github.com/fedmesh/fedmesh/federation"
	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// echoV2 is a canary of echo that runs only in east-1: a Service of its
// own, exported from there, as MCS has it.
func echoV2Source(ip string) string {
	return `apiVersion: v1
kind: Service
metadata: {name: echo-v2, namespace: demo}
spec:
  selector: {app: echo-v2}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: echo-v2, namespace: demo, creationTimestamp: "2026-01-05T10:00:00Z"}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-v2-1, namespace: demo, labels: {app: echo-v2}}
spec: {address: ` + ip + `, ports: {http: 15006}, serviceAccount: echo}
`
}

// canaryRoute is east-1's producer route of echo: requests with
// x-canary: yes go to echo-v2 wherever it runs (a ServiceImport: the
// clusterset), the others to echo across the clusterset.
const canaryRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-canary, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "yes"}]}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080}]
  - backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 8080}]
`

// westRoute is west-1's producer route of echo, different from east-1's.
const westRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-west, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 8080}]
`

// putFile writes a file into cluster c's source directory at once (a
// rename), or removes it when content is empty.
func (m *mesh) putFile(c demo.Cluster, name, content string) {
	m.t.Helper()
	path := filepath.Join(m.path(c.Name, "source"), name)
	if content == "" {
		if err := os.Remove(path); err != nil {
			m.t.Fatal(err)
		}
		return
	}
	tmp := m.path(c.Name, name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		m.t.Fatal(err)
	}
}

// servedBy sends one request for echo through proxy, with x-canary:
// yes when canary, and returns the cluster/workload that answered.
func servedBy(proxy string, canary bool) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxy})}}
	req, err := http.NewRequest(http.MethodGet, echoURL, nil)
	if err != nil {
		return "", err
	}
	if canary {
		req.Header.Set("x-canary", "yes")
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var rep struct{ Cluster, Workload string }
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d %s: %s", resp.StatusCode, resp.Header.Get("X-Fedmesh-Error"), body)
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return "", fmt.Errorf("reply is not the echo workload's: %w", err)
	}
	return rep.Cluster + "/" + rep.Workload, nil
}

// expectServed checks that n requests in a row are served as want says.
func expectServed(proxy string, canary bool, n int, want func(string) bool) error {
	for i := range n {
		got, err := servedBy(proxy, canary)
		if err != nil {
			return err
		}
		if !want(got) {
			return fmt.Errorf("request %d (x-canary %v) served by %s", i, canary, got)
		}
	}
	return nil
}

// TestProducerRouteEveryCluster writes a producer route of echo in
// east-1's source directory and checks that a caller in west-1 obeys it
// once it has replicated; that a different producer route of echo in
// west-1 is a PolicyConflict reported by both clusters (east-1's older
// export wins, its route stays in force); and that with the routes gone
// the default behaviour is back.
func TestProducerRouteEveryCluster(t *testing.T) {
	m := startMesh(t, meshSpec{})
	east1, west1 := m.cluster("east-1"), m.cluster("west-1")
	v2IP := workloadIP(east1, 50)
	m.putFile(east1, "echo-v2.yaml", echoV2Source(v2IP))
	m.start(east1, "east-1-echo-v2-app", "echo", "--listen", v2IP+":8080", "--cluster", east1.Name, "--workload", "echo-v2-1")
	m.startSidecar(east1, "echo-v2-1", "echo", v2IP, "--service-ip", "none")
	m.startSidecar(west1, "client", "client", clientIP(west1))
	westProxy := net.JoinHostPort(clientIP(west1), "15001")
	poll.Until(t, 60*time.Second, "west-1's client sidecar ready", func() error {
		return wantOK(net.JoinHostPort(clientIP(west1), "15000") + "/ready")
	})
	local := func(s string) bool { return strings.HasPrefix(s, "west-1/echo-") }
	isV2 := func(s string) bool { return s == "east-1/echo-v2-1" }
	// Before any route: west-1's caller is served in west-1, header or not.
	poll.Until(t, 60*time.Second, "west-1 served locally without a route", func() error {
		return expectServed(westProxy, true, 5, local)
	})

	// The route, written in east-1 only.
	m.putFile(east1, "route.yaml", canaryRoute)
	poll.Until(t, 60*time.Second, "west-1's caller obeys east-1's producer route", func() error {
		if err := expectServed(westProxy, true, 10, isV2); err != nil {
			return err
		}
		return expectServed(westProxy, false, 10, func(s string) bool { return !isV2(s) })
	})
	// fedmesh get routes in west-1 says where the route came from.
	var page controlplane.TrafficPage
	out := m.cli("get", "routes", "-o", "json", "--admin", west1.Admin(), "--operator-dir", m.path("operator"))
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("get routes -o json: %v\n%s", err, out)
	}
	if len(page.Objects) != 1 || page.Objects[0].Name != "echo-canary" || page.Objects[0].Origin != controlplane.OriginExport ||
		page.Objects[0].Cluster != "east-1" || page.Objects[0].Service != "demo/echo" {
		t.Errorf("routes in force in west-1: %+v, want echo-canary from east-1 via demo/echo", page.Objects)
	}
	table := m.cli("get", "routes", "--admin", west1.Admin(), "--operator-dir", m.path("operator"))
	if !strings.Contains(table, "echo-canary") || !strings.Contains(table, "east-1 via demo/echo") {
		t.Errorf("get routes table in west-1 lacks the route's origin:\n%s", table)
	}

	// west-1 publishes a different producer route of echo: a conflict on
	// both sides; east-1's (the older export) stays in force everywhere.
	m.putFile(west1, "route.yaml", westRoute)
	for _, c := range []demo.Cluster{east1, west1} {
		poll.Until(t, 60*time.Second, c.Name+" reports the policy conflict", func() error {
			var st federation.Status
			if err := m.admin.Get(c.Admin(), federation.StatusPath, &st); err != nil {
				return err
			}
			byCluster := map[string]federation.Conflict{}
			for _, cf := range st.Conflicts {
				if cf.Service == "demo/echo" && cf.Reason == catalog.ReasonPolicyConflict {
					byCluster[cf.Cluster] = cf
				}
			}
			if w, l := byCluster["east-1"], byCluster["west-1"]; !strings.Contains(w.Message, "from east-1, are in force") ||
				!strings.Contains(l.Message, "producer policies from west-1") || !strings.Contains(l.Message, "in force, from east-1") {
				return fmt.Errorf("conflicts of demo/echo: %+v", st.Conflicts)
			}
			return nil
		})
	}
	statusOut := m.cli("status", "--admin", west1.Admin(), "--operator-dir", m.path("operator"))
	if !strings.Contains(statusOut, "PolicyConflict") {
		t.Errorf("fedmesh status in west-1 does not show the PolicyConflict:\n%s", statusOut)
	}
	if err := expectServed(westProxy, true, 10, isV2); err != nil {
		t.Errorf("east-1's route not in force during the conflict: %v", err)
	}

	// Both routes removed: the conflict clears, the default is back.
	m.putFile(west1, "route.yaml", "")
	m.putFile(east1, "route.yaml", "")
	poll.Until(t, 60*time.Second, "default routing back in west-1", func() error {
		return expectServed(westProxy, true, 10, local)
	})
	for _, c := range []demo.Cluster{east1, west1} {
		poll.Until(t, 60*time.Second, c.Name+" has no conflict", func() error {
			var st federation.Status
			if err := m.admin.Get(c.Admin(), federation.StatusPath, &st); err != nil {
				return err
			}
			if len(st.Conflicts) != 0 {
				return fmt.Errorf("conflicts: %+v", st.Conflicts)
			}
			return nil
		})
	}
}
