package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// TestGatewaySourceCluster: when east-1's and east-2's echo replicas are
// gone, the client in east-1 is served by west-1 through west-1's gateway,
// and that gateway counts the connections and their bytes under
// source_cluster="east-1" and the echo service: the client's sidecar sends
// from its own workload address, which east-1 declares with
// --cluster-cidrs and west-1's control plane puts in its gateway's table.
// No connection is counted as unknown.
func TestGatewaySourceCluster(t *testing.T) {
	m := startMesh(t, meshSpec{})
	east1, east2, west1 := m.cluster("east-1"), m.cluster("east-2"), m.cluster("west-1")
	m.killEcho(east1)
	m.killEcho(east2)
	poll.Until(t, 60*time.Second, "the client's requests served by west-1", func() error {
		if code, rep, body := m.get(t, "/"); code != http.StatusOK || rep.Cluster != west1.Name {
			return fmt.Errorf("GET /: %d from %q: %s", code, rep.Cluster, body)
		}
		return nil
	})

	gw := west1.IP + ":15021/stats/prometheus"
	const dest = `destination_service="echo.demo.svc.clusterset.local"`
	page := scrape(t, gw)
	if n := metric(page, "fedmesh_gateway_connections_total", dest, `source_cluster="east-1"`); n == 0 {
		t.Errorf("west-1's gateway counted no connection to echo from east-1; its connections:\n%s", seriesOf(page, "fedmesh_gateway_connections_total"))
	}
	if n := metric(page, "fedmesh_gateway_connections_total", `source_cluster="unknown"`); n != 0 {
		t.Errorf("west-1's gateway counted %v connections from an unknown cluster:\n%s", n, seriesOf(page, "fedmesh_gateway_connections_total"))
	}

	// Bytes are counted when a connection ends: the client's sidecar
	// keeps its connection open until it stops.
	m.kill(sidecarName(east1, "client"))
	poll.Until(t, 60*time.Second, "west-1's gateway counts east-1's bytes to echo", func() error {
		page := scrape(t, gw)
		for _, dir := range []string{`direction="in"`, `direction="out"`} {
			if n := metric(page, "fedmesh_gateway_bytes_total", dest, dir, `source_cluster="east-1"`); n == 0 {
				return fmt.Errorf("no bytes %s from east-1:\n%s", dir, seriesOf(page, "fedmesh_gateway_bytes_total"))
			}
		}
		if n := metric(page, "fedmesh_gateway_bytes_total", `source_cluster="unknown"`); n != 0 {
			t.Fatalf("bytes from an unknown cluster: %v", n)
		}
		return nil
	})
}

// seriesOf returns the lines of a metrics page that are samples of name.
func seriesOf(page, name string) string {
	var out []string
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
