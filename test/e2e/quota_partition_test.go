package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// TestClusterSetQuotaPartition cuts the busy cluster, east-1, off from
// the other two (each cluster in its own network namespace). The majority
// side fences east-1 and splits the whole quota between east-2 and
// west-1; east-1, a minority, keeps at most the share it had, and its
// client is admitted no more than that share. The worst case of
// docs/quota.md holds: the quota plus the minority's share. Healed, the
// three split the quota again.
func TestClusterSetQuotaPartition(t *testing.T) {
	lab := newNetLab(t, 3)
	m := startMesh(t, meshSpec{lab: lab, controlPlaneArgs: []string{"--quota-period", "1s", "--quota-report-interval", "1s"}})
	east1, east2, west1 := m.cluster("east-1"), m.cluster("east-2"), m.cluster("west-1")
	for _, c := range m.clusters {
		if err := os.WriteFile(filepath.Join(m.path(c.Name, "source"), "ratelimit.yaml"), []byte(quotaTestPolicy), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 60*time.Second, "east-1 splits the quota among the three clusters", func() error {
		q, err := m.quotaPage(east1)
		if err != nil {
			return err
		}
		if len(q.Clusters) != 3 {
			return fmt.Errorf("east-1 splits among %+v", q.Clusters)
		}
		return nil
	})
	l := m.startLoad(3*quotaTestRequests, 150*time.Second)
	var had int64
	poll.Until(t, 30*time.Second, "east-1 holds most of the quota", func() error {
		q, err := m.quotaPage(east1)
		if err != nil {
			return err
		}
		if had, _ = shareOf(q, "east-1"); had < quotaTestRequests*3/4 {
			return fmt.Errorf("east-1's share %d", had)
		}
		return nil
	})

	cutAt := time.Now()
	lab.isolate(east1.Index)
	poll.Until(t, 60*time.Second, "east-2 and west-1 fence east-1 and split the whole quota between them", func() error {
		for _, c := range m.clusters[1:] {
			q, err := m.quotaPage(c)
			if err != nil {
				return err
			}
			var live int64
			for _, cs := range q.Clusters {
				if cs.Cluster == east1.Name && !cs.Fenced {
					return fmt.Errorf("%s: east-1 not fenced yet", c.Name)
				}
				if !cs.Fenced {
					live += cs.Share
				}
			}
			if live != quotaTestRequests || q.Minority {
				return fmt.Errorf("%s: live clusters hold %d (minority %v): %+v", c.Name, live, q.Minority, q.Clusters)
			}
		}
		return nil
	})
	var kept int64
	poll.Until(t, 60*time.Second, "east-1 knows it is in a minority and keeps at most its share", func() error {
		q, err := m.quotaPage(east1)
		if err != nil {
			return err
		}
		kept, _ = shareOf(q, east1.Name)
		if kept > had {
			t.Fatalf("east-1, cut off, raised its share from %d to %d", had, kept)
		}
		if !q.Minority {
			return fmt.Errorf("east-1 not in a minority: %+v", q.Clusters)
		}
		return nil
	})
	from := time.Now()
	time.Sleep(5 * time.Second) // a measurement window, not a wait for state
	to := time.Now()
	adm, ref := admittedIn(l, from, to)
	w := int(to.Sub(from).Round(time.Second) / time.Second)
	bound := (w + 2) * int(kept)
	t.Logf("partition: east-1 had %d, keeps %d; east-2 and west-1 hold %d; worst case of the clusterset %d per second (quota %d); east-1's client: %d admitted, %d refused in %ds",
		had, kept, quotaTestRequests, int64(quotaTestRequests)+kept, quotaTestRequests, adm, ref, w)
	if adm > bound {
		t.Errorf("while cut off, east-1 admitted %d in %ds, more than (w+2)·%d = %d", adm, w, kept, bound)
	}
	if ref == 0 {
		t.Errorf("while cut off, east-1 refused nothing")
	}

	lab.heal(east1.Index)
	poll.Until(t, 120*time.Second, "healed: every control plane splits the quota among three live clusters again", func() error {
		for _, c := range []string{east1.Name, east2.Name, west1.Name} {
			q, err := m.quotaPage(m.cluster(c))
			if err != nil {
				return err
			}
			var live int64
			for _, cs := range q.Clusters {
				if cs.Fenced {
					return fmt.Errorf("%s still fences %s", c, cs.Cluster)
				}
				live += cs.Share
			}
			if len(q.Clusters) != 3 || q.Minority || live != quotaTestRequests {
				return fmt.Errorf("%s: %d clusters holding %d (minority %v)", c, len(q.Clusters), live, q.Minority)
			}
		}
		return nil
	})
	t.Logf("healed %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	l.stop()
}
