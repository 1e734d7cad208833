package federation

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
)

// canary encodes a producer HTTPRoute whose parent is demo/parent,
// sending weight percent to echo-v2.
func canary(t *testing.T, parent string, weight int) *catalog.Policies {
	t.Helper()
	obj, err := policy.ParseObject(fmt.Appendf(nil, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: %s}]
  rules:
  - backendRefs: [{name: echo, port: 8080, weight: %d}, {name: echo-v2, port: 8080, weight: %d}]
`, parent, 100-weight, weight))
	if err != nil {
		t.Fatal(err)
	}
	var tr policy.Traffic
	if err := tr.Add(obj); err != nil {
		t.Fatal(err)
	}
	p, err := policy.EncodePolicies(tr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func carrying(e catalog.Export, p *catalog.Policies) catalog.Export {
	e.Policies = p
	return e
}

// policiesInForce checks what n's view holds for echo.
func policiesInForce(n *node, want *catalog.Policies, from string) error {
	echo := service(n.fed.View(), "echo")
	if echo == nil {
		return fmt.Errorf("%s: no echo in the view", n.name)
	}
	if echo.Policies == nil || echo.Policies.Digest != want.Digest || echo.PoliciesCluster != from {
		return fmt.Errorf("%s: echo's policies %+v from %q, want digest %s from %s", n.name, echo.Policies, echo.PoliciesCluster, want.Digest, from)
	}
	return nil
}

// TestProducerPolicies publishes different producer policies for echo
// from two clusters: every view holds the oldest export's, both clusters
// report the PolicyConflict, and agreeing again clears it. Policies that
// are not the service's own are refused on every cluster (counted,
// listed), the export merged without them. A control plane restarted
// while its peer is away serves the peer's policies from its persisted
// imports.
func TestProducerPolicies(t *testing.T) {
	nodes := startCluster(t, 2, testOptions{fence: time.Hour})
	p10, p50 := canary(t, "echo", 10), canary(t, "echo", 50)
	stolen := canary(t, "echo", 100) // echo's route, in the export of other
	nodes[0].setExports(t, []catalog.Export{carrying(export("c00", "echo", t0, 8080, "127.0.1.1"), p10)})
	nodes[1].setExports(t, []catalog.Export{
		carrying(export("c01", "echo", t0.Add(time.Minute), 8080, "127.0.2.1"), p50),
		carrying(export("c01", "other", t0, 9090, "127.0.2.2"), stolen),
	})

	wantConflicts := []Conflict{
		{Service: "demo/echo", Cluster: "c00", Reason: catalog.ReasonPolicyConflict,
			Message: "producer policies of the oldest export that carries any, from c00, are in force; conflicting producer policies: c01"},
		{Service: "demo/echo", Cluster: "c01", Reason: catalog.ReasonPolicyConflict,
			Message: fmt.Sprintf("producer policies from c01 (digest %s) differ from those in force, from c00 (digest %s), the oldest export that carries any", p50.Digest, p10.Digest)},
	}
	for _, n := range nodes {
		poll.Until(t, 2*time.Minute, n.name+" reports the policy conflict", func() error {
			if err := policiesInForce(n, p10, "c00"); err != nil {
				return err
			}
			st := statusOf(t, n)
			if diff := cmp.Diff(wantConflicts, st.Conflicts); diff != "" {
				return fmt.Errorf("conflicts (-want +got):\n%s", diff)
			}
			if len(st.RefusedPolicies) != 1 {
				return fmt.Errorf("refused policies %+v, want other's", st.RefusedPolicies)
			}
			return nil
		})
		r := statusOf(t, n).RefusedPolicies[0]
		if r.Service != "demo/other" || r.Cluster != "c01" || r.Digest != stolen.Digest {
			t.Errorf("%s: refused %+v, want demo/other of c01 with digest %s", n.name, r, stolen.Digest)
		}
		if other := service(n.fed.View(), "other"); other == nil || other.Policies != nil || len(other.Endpoints) != 1 {
			t.Errorf("%s: other in the view: %+v, want merged with its endpoint and without policies", n.name, other)
		}
		if got := value(t, n.fed.met.policiesRefused); got != 1 {
			t.Errorf("%s: policies refused counter = %v, want 1 (once per cluster, service and digest)", n.name, got)
		}
	}

	// A change of c01's echo alone keeps other refused (the replicator's
	// set still carries other's policies as c01 wrote them), also when
	// other is merged again: c00 exports it too.
	nodes[1].setExports(t, []catalog.Export{
		carrying(export("c01", "echo", t0.Add(time.Minute), 8080, "127.0.2.3"), p50),
		carrying(export("c01", "other", t0, 9090, "127.0.2.2"), stolen),
	})
	for _, n := range nodes {
		poll.Until(t, time.Minute, n.name+" merges c01's new echo endpoint", func() error {
			for _, ep := range service(n.fed.View(), "echo").Endpoints {
				if ep.Address == "127.0.2.3" {
					return nil
				}
			}
			return fmt.Errorf("echo: %+v, want c01's endpoint 127.0.2.3", service(n.fed.View(), "echo"))
		})
	}
	nodes[0].setExports(t, []catalog.Export{
		carrying(export("c00", "echo", t0, 8080, "127.0.1.1"), p10),
		export("c00", "other", t0.Add(time.Hour), 9090, "127.0.1.2"),
	})
	for _, n := range nodes {
		poll.Until(t, time.Minute, n.name+" merges other from both clusters", func() error {
			if other := service(n.fed.View(), "other"); other == nil || len(other.Endpoints) != 2 {
				return fmt.Errorf("other: %+v, want an endpoint from each cluster", other)
			}
			return nil
		})
		if other := service(n.fed.View(), "other"); other == nil || other.Policies != nil {
			t.Errorf("%s: other after an unrelated change: %+v, want merged without policies", n.name, other)
		}
		if st := statusOf(t, n); len(st.RefusedPolicies) != 1 {
			t.Errorf("%s: refused policies %+v after an unrelated change, want other's", n.name, st.RefusedPolicies)
		}
	}
	nodes[0].setExports(t, []catalog.Export{carrying(export("c00", "echo", t0, 8080, "127.0.1.1"), p10)})

	// c01 agrees: no conflict any more.
	nodes[1].setExports(t, []catalog.Export{carrying(export("c01", "echo", t0.Add(time.Minute), 8080, "127.0.2.1"), p10)})
	for _, n := range nodes {
		poll.Until(t, time.Minute, n.name+" agrees", func() error {
			if st := statusOf(t, n); len(st.Conflicts) != 0 || len(st.RefusedPolicies) != 0 {
				return fmt.Errorf("conflicts %+v, refused %+v", st.Conflicts, st.RefusedPolicies)
			}
			return policiesInForce(n, p10, "c00")
		})
	}

	// c00 goes away; c01 restarts meanwhile and serves c00's policies
	// from what it persisted.
	poll.Until(t, time.Minute, "c01 persisted c00's policies", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		imports, err := nodes[1].st.ListImports(ctx)
		if err != nil {
			return err
		}
		es := imports["c00"].Exports
		if len(es) != 1 || es[0].Policies == nil || es[0].Policies.Digest != p10.Digest {
			return fmt.Errorf("persisted exports of c00: %+v", es)
		}
		return nil
	})
	nodes[0].kill(t)
	victim := nodes[1]
	victim.kill(t)
	_, port, err := net.SplitHostPort(victim.mem.Local().Addr)
	if err != nil {
		t.Fatal(err)
	}
	bindPort, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	restarted := startNode(t, victim.i, victim.scfg, testOptions{fence: time.Hour, bindPort: bindPort})
	var first *catalog.View
	select {
	case first = <-restarted.views:
	case <-time.After(30 * time.Second):
		t.Fatal("restarted node published no view")
	}
	echo := service(first, "echo")
	if echo == nil || echo.Policies == nil || echo.Policies.Digest != p10.Digest || echo.PoliciesCluster != "c00" {
		t.Fatalf("echo in the first view after the restart: %+v, want c00's policies (digest %s)", echo, p10.Digest)
	}
}
