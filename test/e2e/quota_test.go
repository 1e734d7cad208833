package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fedmesh/fedmesh/controlplane"
	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// The clusterset quota of the test: 20 requests a second for anyone
// calling demo/echo, across the three clusters.
const (
	quotaTestID       = "demo/echo-limits/shared"
	quotaTestRequests = 20
	quotaTestPolicy   = `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: echo-limits, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  quotas:
  - {name: shared, requests: 20, interval: 1s}
`
)

// quotaPage reads c's quota report.
func (m *mesh) quotaPage(c demo.Cluster) (controlplane.QuotaStatus, error) {
	var page controlplane.QuotaPage
	if err := m.admin.Get(c.Admin(), controlplane.QuotaPath, &page); err != nil {
		return controlplane.QuotaStatus{}, err
	}
	for _, q := range page.Quotas {
		if q.Quota == quotaTestID {
			return q, nil
		}
	}
	return controlplane.QuotaStatus{}, fmt.Errorf("%s reports no quota %s: %+v", c.Name, quotaTestID, page)
}

// shareOf is cluster's share in q's split and whether it takes part
// unfenced.
func shareOf(q controlplane.QuotaStatus, cluster string) (int64, bool) {
	for _, c := range q.Clusters {
		if c.Cluster == cluster {
			return c.Share, !c.Fenced
		}
	}
	return 0, false
}

// admittedIn counts the requests admitted (answered 200) that
// started in [from, to), and those refused by the quota (429).
func admittedIn(l *load, from, to time.Time) (admitted, refused int) {
	for _, s := range l.Between(from, to) {
		switch {
		case s.Err == nil:
			admitted++
		case strings.HasPrefix(s.Err.Error(), "HTTP 429"):
			refused++
		}
	}
	return admitted, refused
}

// quotaBound is the most the clusterset may admit in a window of w
// seconds (docs/quota.md): the shares add up to the quota, and each
// sidecar's token bucket may start the window full and be refilled once
// more, so (w + 1)·Q; plus one Q for the requests in flight at the
// window's edges and a share moving while the window runs.
func quotaBound(w int) int { return (w + 2) * quotaTestRequests }

// TestClusterSetQuota: one quota over three clusters. The client's load
// (three times the quota) lands on east-1's echo replicas, then on
// east-2's when east-1's die; the split follows the demand, the admitted
// rate stays within the quota plus the documented tolerance, every
// admitted request is counted once by the sidecars, and a killed
// cluster's share goes to the others once it is fenced.
func TestClusterSetQuota(t *testing.T) {
	m := startMesh(t, meshSpec{controlPlaneArgs: []string{"--quota-period", "1s", "--quota-report-interval", "1s"}})
	east1, east2, west1 := m.cluster("east-1"), m.cluster("east-2"), m.cluster("west-1")
	for _, c := range m.clusters {
		if err := os.WriteFile(filepath.Join(m.path(c.Name, "source"), "ratelimit.yaml"), []byte(quotaTestPolicy), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Every echo sidecar reports the quota, so every cluster takes part
	// and every control plane sees the three.
	poll.Until(t, 60*time.Second, "every control plane splits the quota among the three clusters", func() error {
		for _, c := range m.clusters {
			q, err := m.quotaPage(c)
			if err != nil {
				return err
			}
			if len(q.Clusters) != 3 || len(q.Sidecars) != m.spec.replicas {
				return fmt.Errorf("%s: %d clusters, %d sidecars: %+v", c.Name, len(q.Clusters), len(q.Sidecars), q)
			}
		}
		return nil
	})

	const rate = 3 * quotaTestRequests
	l := m.startLoad(rate, 90*time.Second)
	// Phase 1: the load lands on east-1, whose share grows to most of the
	// quota.
	poll.Until(t, 30*time.Second, "east-1 holds most of the quota", func() error {
		q, err := m.quotaPage(east1)
		if err != nil {
			return err
		}
		if s, _ := shareOf(q, "east-1"); s < quotaTestRequests*3/4 {
			return fmt.Errorf("east-1's share %d: %+v", s, q.Clusters)
		}
		return nil
	})
	from := time.Now()
	// The report, the metrics and the web view tell the same story.
	out := m.cli("get", "quotas", "-o", "wide", "--admin", east1.Admin(), "--operator-dir", m.path("operator"))
	for _, w := range []string{quotaTestID, "east-1", "east-2", "west-1", "local", "echo-1", "echo-2"} {
		if !strings.Contains(out, w) {
			t.Errorf("fedmesh get quotas -o wide lacks %q:\n%s", w, out)
		}
	}
	page := scrape(t, east1.Admin()+"/metrics")
	if n := metric(page, "fedmesh_quota_share", `quota="`+quotaTestID+`"`, `cluster="east-1"`); n < quotaTestRequests*3/4 {
		t.Errorf("fedmesh_quota_share{cluster=east-1} = %v, want most of %d", n, quotaTestRequests)
	}
	if n := metric(page, "fedmesh_quota_refused_total", `quota="`+quotaTestID+`"`); n == 0 {
		t.Errorf("fedmesh_quota_refused_total = 0 while east-1 refuses")
	}
	m.checkQuotaWebView(t)
	if d := time.Until(from.Add(6 * time.Second)); d > 0 {
		time.Sleep(d) // the rest of a measurement window, not a wait for state
	}
	to := time.Now()
	adm, ref := admittedIn(l, from, to)
	w := int(to.Sub(from).Round(time.Second) / time.Second)
	t.Logf("phase 1 (load on east-1): %d admitted, %d refused in %ds; quota %d/s", adm, ref, w, quotaTestRequests)
	if q, err := m.quotaPage(east1); err == nil {
		t.Logf("east-1's split: clusters %+v, sidecars %+v", q.Clusters, q.Sidecars)
	}
	if adm > quotaBound(w) {
		t.Errorf("phase 1: %d admitted in %ds, more than the bound %d", adm, w, quotaBound(w))
	}
	if ref == 0 || adm < (w-2)*quotaTestRequests/2 {
		t.Errorf("phase 1: %d admitted, %d refused in %ds: the quota does not bind or starves east-1", adm, ref, w)
	}

	// Phase 2: east-1's replicas die; the load fails over to east-2, and
	// the split follows it.
	m.killEcho(east1)
	poll.Until(t, 60*time.Second, "east-2 holds most of the quota, as seen from east-2 and west-1", func() error {
		for _, c := range []demo.Cluster{east2, west1} {
			q, err := m.quotaPage(c)
			if err != nil {
				return err
			}
			if s, _ := shareOf(q, "east-2"); s < quotaTestRequests*3/4 {
				return fmt.Errorf("%s: east-2's share %d: %+v", c.Name, s, q.Clusters)
			}
		}
		return nil
	})
	from = time.Now()
	time.Sleep(6 * time.Second) // a measurement window
	to = time.Now()
	adm, ref = admittedIn(l, from, to)
	w = int(to.Sub(from).Round(time.Second) / time.Second)
	t.Logf("phase 2 (load on east-2): %d admitted, %d refused in %ds", adm, ref, w)
	if q, err := m.quotaPage(east2); err == nil {
		t.Logf("east-2's split: clusters %+v, sidecars %+v", q.Clusters, q.Sidecars)
	}
	if adm > quotaBound(w) || ref == 0 || adm < (w-2)*quotaTestRequests/2 {
		t.Errorf("phase 2: %d admitted, %d refused in %ds; want at most %d admitted, some refused, not starved", adm, ref, w, quotaBound(w))
	}
	l.stop()

	// Nothing admitted twice: the live echo sidecars (east-2's and
	// west-1's) counted, as admitted under the quota, exactly the
	// requests answered 200 that they served.
	served := 0
	for _, s := range l.Since(time.Time{}) {
		if s.Err == nil && s.Cluster != "east-1" {
			served++
		}
	}
	counted := 0.0
	for _, c := range []demo.Cluster{east2, west1} {
		for r := 1; r <= m.spec.replicas; r++ {
			page := scrape(t, net.JoinHostPort(workloadIP(c, r), "15000")+"/stats/prometheus")
			counted += metric(page, "fedmesh_ratelimit_requests_total", `limit="`+quotaTestID+`"`, `decision="admitted"`)
		}
	}
	if int(counted) != served {
		t.Errorf("east-2's and west-1's sidecars admitted %v requests under the quota; the client got %d answers from them", counted, served)
	}

	// east-1's replicas come back, so that three clusters take part
	// again.
	for r := 1; r <= m.spec.replicas; r++ {
		m.restart(echoApp(east1, r))
		m.restart(sidecarName(east1, fmt.Sprintf("echo-%d", r)))
	}
	poll.Until(t, 60*time.Second, "east-1 takes part again", func() error {
		q, err := m.quotaPage(east1)
		if err != nil {
			return err
		}
		if len(q.Clusters) != 3 {
			return fmt.Errorf("east-1 splits among %+v", q.Clusters)
		}
		return nil
	})

	// A cluster killed: west-1's processes die; once fenced, its share
	// goes to east-1 and east-2 (two of three live: a majority).
	for name := range m.procs {
		if strings.Contains(name, "west-1") {
			m.kill(name)
		}
	}
	poll.Until(t, 60*time.Second, "west-1 fenced and its share redistributed", func() error {
		for _, c := range []demo.Cluster{east1, east2} {
			q, err := m.quotaPage(c)
			if err != nil {
				return err
			}
			if q.Minority {
				return fmt.Errorf("%s thinks it is in a minority", c.Name)
			}
			var live int64
			for _, cs := range q.Clusters {
				if cs.Cluster == "west-1" && !cs.Fenced {
					return fmt.Errorf("%s: west-1 not fenced yet", c.Name)
				}
				if !cs.Fenced {
					live += cs.Share
				}
			}
			if live != quotaTestRequests {
				return fmt.Errorf("%s: live clusters hold %d of %d: %+v", c.Name, live, quotaTestRequests, q.Clusters)
			}
		}
		return nil
	})
}

// checkQuotaWebView opens east-1's web view through `fedmesh dashboard`
// in headless chromium, when there is one, and waits until its quota
// table shows east-1 holding most of the quota.
func (m *mesh) checkQuotaWebView(t *testing.T) {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Log("chromium is not installed: the web view's quota table is not checked")
		return
	}
	url := m.startDashboard()
	b := newBrowser(t, exe)
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	err = chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`)))
	cancel()
	if err != nil {
		t.Fatalf("open %s: %v (console: %v)", url, err, b.consoleErrors())
	}
	poll.Until(t, 30*time.Second, "the web view's quota table shows east-1 holding most of the quota", func() error {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#quotas tr[data-quota]")).map(e => e.dataset.quota)`))
		if err != nil {
			return err
		}
		for _, r := range rows {
			f := strings.Split(r, "|")
			if len(f) >= 3 && f[0] == quotaTestID && f[1] == "east-1" {
				if n, err := strconv.Atoi(f[2]); err == nil && n >= quotaTestRequests*3/4 {
					return nil
				}
			}
		}
		return fmt.Errorf("quota rows %v", rows)
	})
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %v", errs)
	}
}
