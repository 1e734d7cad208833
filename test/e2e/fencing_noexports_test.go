package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// gatewayProbeOf is how c's probes of peer's gateway are doing.
func (m *mesh) gatewayProbeOf(c demo.Cluster, peer string) (self bool, lastResult string, err error) {
	var st struct {
		Members []struct {
			Name         string `json:"name"`
			GatewayProbe *struct {
				Self       bool   `json:"self"`
				LastResult string `json:"lastResult"`
			} `json:"gatewayProbe"`
		} `json:"members"`
	}
	if err := m.admin.Get(c.Admin(), "/federation/v1/status", &st); err != nil {
		return false, "", err
	}
	for _, mem := range st.Members {
		if mem.Name == peer {
			if mem.GatewayProbe == nil {
				return false, "", fmt.Errorf("%s does not probe %s's gateway", c.Name, peer)
			}
			return mem.GatewayProbe.Self, mem.GatewayProbe.LastResult, nil
		}
	}
	return false, "", fmt.Errorf("%s does not know %s", c.Name, peer)
}

// TestFencePeerWithoutExports: west-1's echo export loses every
// endpoint (its workloads leave its source and stop), so its peers have
// no service to probe its gateway through and probe the gateway itself.
// West-1's control plane killed: its peers keep it for its serving
// gateway (rule gateway_serves), never fencing it for the lost catalog.
// Its gateway killed too: its peers fence it on the probes.
func TestFencePeerWithoutExports(t *testing.T) {
	m := startMesh(t, meshSpec{})
	west1 := m.cluster("west-1")
	observers := []demo.Cluster{m.cluster("east-1"), m.cluster("east-2")}
	src := demo.Source{Cluster: west1.Name, Index: west1.Index, Zone: west1.Zone, ClientIP: clientIP(west1)}
	if err := demo.WriteSourceDir(m.path(west1.Name, "source"), src); err != nil {
		t.Fatal(err)
	}
	m.killEcho(west1)
	for _, c := range observers {
		poll.Until(t, 60*time.Second, c.Name+" probes west-1's gateway itself", func() error {
			self, result, err := m.gatewayProbeOf(c, west1.Name)
			if err != nil {
				return err
			}
			if !self || result != "ok" {
				return fmt.Errorf("self %v, last result %q", self, result)
			}
			return nil
		})
	}
	fenced := func(c demo.Cluster) float64 {
		return metric(scrape(t, c.Admin()+"/metrics"), "fedmesh_federation_fence_changes_total", `change="fenced"`)
	}
	before := map[string]float64{}
	for _, c := range observers {
		before[c.Name] = fenced(c)
	}

	m.kill(cpName(west1))
	m.waitGatewayServes(t, west1.Name, observers...)
	// Past the fence period of catalog loss, still kept.
	for _, c := range observers {
		poll.Until(t, 60*time.Second, c.Name+" has missed west-1's catalog for longer than the fence period", func() error {
			var st struct {
				Members []struct {
					Name      string `json:"name"`
					ImportLag string `json:"importLag"`
				} `json:"members"`
			}
			if err := m.admin.Get(c.Admin(), "/federation/v1/status", &st); err != nil {
				return err
			}
			for _, mem := range st.Members {
				if mem.Name != west1.Name {
					continue
				}
				lag, err := time.ParseDuration(mem.ImportLag)
				if err != nil || lag <= m.spec.fencePeriod+time.Second {
					return fmt.Errorf("import lag %q", mem.ImportLag)
				}
				return nil
			}
			return fmt.Errorf("%s does not know west-1", c.Name)
		})
		if f, err := m.fencingOf(c, west1.Name); err != nil || f.Fenced || f.Rule != "gateway_serves" {
			t.Errorf("%s on west-1 past the fence period: %+v, %v; want kept for its serving gateway", c.Name, f, err)
		}
	}
	for _, c := range observers {
		if n := fenced(c); n != before[c.Name] {
			t.Errorf("%s fenced a peer %v times while west-1's gateway served", c.Name, n-before[c.Name])
		}
	}

	m.kill(gatewayName(west1))
	killed := time.Now()
	for _, c := range observers {
		poll.Until(t, 60*time.Second, c.Name+" fences west-1 on its gateway probes", func() error {
			f, err := m.fencingOf(c, west1.Name)
			if err != nil {
				return err
			}
			if !f.Fenced || !slices.Contains([]string{"gateway_down", "control_plane_and_gateway_down"}, f.Rule) {
				return fmt.Errorf("fenced %v, rule %s: %s", f.Fenced, f.Rule, f.Decision)
			}
			return nil
		})
	}
	t.Logf("west-1 without exports fenced by every peer %v after its gateway died", time.Since(killed).Round(time.Millisecond))
}
