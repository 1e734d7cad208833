package e2e

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// A replicated cluster (meshSpec.replicated) runs two control plane
// replicas as docs/replicas.md describes: replica "a" on the cluster's
// address, replica "b" on replicaIP, each with its own embedded etcd
// (its own store) and the cluster's CA directory and source. Its
// sidecars and gateway reach xDS through a front that stands for the
// Kubernetes Service fedmesh-controlplane: it forwards each new
// connection to the first replica that accepts it.

// replicaIP is the address of replica "b" of cluster c: 127.B.0.(10+N).
func replicaIP(m *mesh, c demo.Cluster) string {
	block, ok := loopbackBlock(c.IP)
	if !ok {
		m.t.Fatalf("replicas need the loopback block addresses, not %s", c.IP)
	}
	return fmt.Sprintf("127.%d.0.%d", block, 10+c.Index)
}

// replicaB is cluster c as seen at its second replica (its admin API).
func replicaB(m *mesh, c demo.Cluster) demo.Cluster {
	c.IP = replicaIP(m, c)
	return c
}

func cpNameB(c demo.Cluster) string { return cpName(c) + "-b" }

// startSecondReplica starts replica "b" of c, joins it to the federation
// with the join token in tokFile, and puts the xDS front before both.
func (m *mesh) startSecondReplica(c demo.Cluster, tokFile string) {
	t := m.t
	t.Helper()
	b := replicaB(m, c)
	args := append(m.controlPlaneArgs(c, b.IP, m.path(c.Name, "data-b")), "--replica", "b")
	waitReady(t, m.start(c, cpNameB(c), args...), b.Admin())
	m.cli("join", "--token-file", tokFile, "--admin", b.Admin(), "--operator-dir", m.path("operator"))
	block, _ := loopbackBlock(c.IP)
	front := startFront(t, fmt.Sprintf("127.%d.0.%d:15010", block, 20+c.Index),
		net.JoinHostPort(c.IP, "15010"), net.JoinHostPort(b.IP, "15010"))
	m.xdsFront[c.Name] = front
}

// startFront forwards every connection to addr to the first of backends
// that accepts it, as a Service's virtual IP does with its ready pods,
// until the test ends.
func startFront(t *testing.T, addr string, backends ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("xDS front: %v", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards conns
		conns = map[net.Conn]struct{}{}
	)
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			return false
		}
		conns[c] = struct{}{}
		return true
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !track(c) {
				c.Close()
				return
			}
			wg.Go(func() {
				defer c.Close()
				var up net.Conn
				for _, b := range backends {
					if up, err = net.DialTimeout("tcp", b, time.Second); err == nil {
						break
					}
				}
				if up == nil || !track(up) {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, _ = io.Copy(up, c)
					up.Close()
				}()
				_, _ = io.Copy(c, up)
				c.Close()
				<-done
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// xdsConn is what a proxy's metrics page says of its xDS stream.
type xdsConn struct {
	connected  bool
	reconnects float64
}

func xdsConnOf(page string) xdsConn {
	return xdsConn{connected: metric(page, "fedmesh_xds_connected") == 1, reconnects: metric(page, "fedmesh_xds_stream_reconnects_total")}
}

// TestReplicaKilledUnderLoad: east-2 runs two control plane replicas;
// the client in east-1 sends steady requests through its sidecar to
// east-2's echo replicas (east-1's are gone), through east-2's gateway.
// Replica a, which every east-2 proxy is connected to and which peers
// replicate from, is killed, restarted, and then replica b is killed: no
// request fails, east-2's sidecars and gateway reconnect to the
// surviving replica each time, no peer ever fences east-2, and the
// surviving replica keeps answering the admin API (its status lists
// every peer alive).
func TestReplicaKilledUnderLoad(t *testing.T) {
	m := startMesh(t, meshSpec{replicated: "east-2"})
	east1, east2, west1 := m.cluster("east-1"), m.cluster("east-2"), m.cluster("west-1")
	b := replicaB(m, east2)
	// east-2's proxies, by admin address.
	proxies := map[string]string{"gateway": net.JoinHostPort(east2.IP, "15021") + "/stats/prometheus"}
	for r := 1; r <= m.spec.replicas; r++ {
		proxies[fmt.Sprintf("echo-%d", r)] = net.JoinHostPort(workloadIP(east2, r), "15000") + "/stats/prometheus"
	}
	fenced := func(c demo.Cluster) float64 {
		return metric(scrape(t, c.Admin()+"/metrics"), "fedmesh_federation_fence_changes_total", `change="fenced"`)
	}
	peers := []demo.Cluster{east1, west1}
	fencedBefore := map[string]float64{}
	for _, c := range peers {
		fencedBefore[c.Name] = fenced(c)
	}
	poll.Until(t, 60*time.Second, "peers see east-2's two replicas", func() error {
		for _, c := range peers {
			if got := replicasOf(m, c, east2.Name); got != "a,b" {
				return fmt.Errorf("%s sees east-2's replicas %q", c.Name, got)
			}
		}
		return nil
	})

	// Replica a is the one peers follow first (alive, first by name).
	poll.Until(t, 60*time.Second, "peers replicate east-2 from replica a", func() error {
		for _, c := range peers {
			if catalog, ok := catalogOf(m, c, east2.Name); !ok || !strings.Contains(catalog, east2.IP+":") {
				return fmt.Errorf("%s replicates east-2 from %q (connected %v)", c.Name, catalog, ok)
			}
		}
		return nil
	})

	m.killEcho(east1)
	l := m.startLoad(20, 150*time.Second)
	start := time.Now()
	l.waitServedBy(t, east2.Name, start, 30*time.Second)

	// killed kills one replica; the proxies reconnect through the front
	// to the other, which serves the admin API meanwhile.
	killed := func(name string, survivor demo.Cluster) {
		t.Helper()
		before := map[string]xdsConn{}
		for p, page := range proxies {
			before[p] = xdsConnOf(scrape(t, page))
		}
		m.kill(name)
		at := time.Now()
		poll.Until(t, 60*time.Second, "east-2's proxies reconnect after "+name+" died", func() error {
			for p, page := range proxies {
				now := xdsConnOf(scrape(t, page))
				if !now.connected || now.reconnects <= before[p].reconnects {
					return fmt.Errorf("%s: connected %v, %v reconnects", p, now.connected, now.reconnects)
				}
			}
			return nil
		})
		t.Logf("east-2's proxies reconnected %v after %s was killed", time.Since(at).Round(time.Millisecond), name)
		poll.Until(t, 60*time.Second, "peers replicate east-2 from the surviving replica", func() error {
			for _, c := range peers {
				catalog, connected := catalogOf(m, c, east2.Name)
				if !connected || !strings.Contains(catalog, survivor.IP+":") {
					return fmt.Errorf("%s replicates east-2 from %q (connected %v), want %s", c.Name, catalog, connected, survivor.IP)
				}
			}
			return nil
		})
		s, err := m.status(survivor)
		if err != nil {
			t.Fatalf("the surviving replica's status: %v", err)
		}
		for _, mem := range s.Members {
			if mem.Fenced {
				t.Errorf("the surviving replica fences %s: %s", mem.Name, mem.FenceReason)
			}
		}
		// A few seconds of traffic with one replica.
		since := time.Now()
		poll.Until(t, 30*time.Second, "3 s of traffic with one replica", func() error {
			if n := len(l.Since(since)); n < 60 {
				return fmt.Errorf("%d requests", n)
			}
			return nil
		})
	}
	killed(cpName(east2), b)
	waitReady(t, m.restart(cpName(east2)), east2.Admin())
	poll.Until(t, 60*time.Second, "peers see replica a back", func() error {
		for _, c := range peers {
			if got := replicasOf(m, c, east2.Name); got != "a,b" {
				return fmt.Errorf("%s sees east-2's replicas %q", c.Name, got)
			}
		}
		return nil
	})
	killed(cpNameB(east2), east2)

	l.stop()
	samples := l.Since(start)
	if f := failures(samples); len(f) > 0 {
		t.Errorf("%d of %d requests failed while east-2's replicas were killed: %s", len(f), len(samples), summarize(f))
	}
	if r := demo.Evaluate(demo.Phase{Expect: east2.Name, MinShare: 100}, start, samples); !r.OK {
		t.Errorf("traffic left east-2: %s", r.Reason)
	}
	for _, c := range peers {
		if n := fenced(c); n != fencedBefore[c.Name] {
			t.Errorf("%s fenced a peer %v times while east-2's replicas were killed", c.Name, n-fencedBefore[c.Name])
		}
	}
	t.Logf("replicas killed under load: %d requests over %v, %d failed", len(samples), time.Since(start).Round(time.Millisecond), len(failures(samples)))
}

// peerStatus is what c's status says of peer; false when c does not
// answer or does not list it.
type peerStatus struct {
	Name           string   `json:"name"`
	Replicas       []string `json:"replicas"`
	CatalogAddress string   `json:"catalogAddress"`
	Connected      bool     `json:"connected"`
}

func statusOf(m *mesh, c demo.Cluster, peer string) (peerStatus, bool) {
	var s struct {
		Members []peerStatus `json:"members"`
	}
	if err := m.admin.Get(c.Admin(), "/federation/v1/status", &s); err != nil {
		return peerStatus{}, false
	}
	for _, mem := range s.Members {
		if mem.Name == peer {
			return mem, true
		}
	}
	return peerStatus{}, false
}

// replicasOf is the replicas of peer that c's status lists, joined by
// commas ("" when none or on error).
func replicasOf(m *mesh, c demo.Cluster, peer string) string {
	p, _ := statusOf(m, c, peer)
	var short []string
	for _, r := range p.Replicas {
		short = append(short, strings.TrimPrefix(r, peer+"."))
	}
	return strings.Join(short, ",")
}

// catalogOf is the catalog address c replicates peer from, and whether
// it answers.
func catalogOf(m *mesh, c demo.Cluster, peer string) (string, bool) {
	p, _ := statusOf(m, c, peer)
	return p.CatalogAddress, p.Connected
}
