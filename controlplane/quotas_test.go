package controlplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

const quotaYAML = `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: limits, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  quotas:
  - {name: shared, requests: 600, interval: 1m}
`

const quotaID = "demo/limits/shared"

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestBalancer(t *testing.T) (*quotaBalancer, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg, err := QuotaConfig{Hold: time.Nanosecond}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	b := newQuotaBalancer("east-1", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), clk.now)
	b.setTraffic(parseTraffic(t, quotaYAML))
	return b, clk
}

func (b *quotaBalancer) report(clk *fakeClock, node string, admitted, refused uint64) {
	b.onLoad(xds.LoadReport{Node: node, Received: clk.t,
		Load: xdsresource.QuotaLoad{Quota: quotaID, Admitted: admitted, Refused: refused, Interval: 2 * time.Second}})
}

func viewWith(fenced bool, peers ...catalog.ClusterQuota) *catalog.View {
	return &catalog.View{Local: "east-1",
		Clusters: map[string]catalog.ClusterInfo{"east-1": {Name: "east-1"}, "west-1": {Name: "west-1", Fenced: fenced}},
		Services: []catalog.ImportedService{{Namespace: "demo", Name: "echo", Quotas: peers}}}
}

func westRecord(admitted, share int64) catalog.ClusterQuota {
	return catalog.ClusterQuota{Cluster: "west-1", QuotaRecord: catalog.QuotaRecord{
		Quota: quotaID, Requests: 600, Interval: time.Minute, Admitted: admitted, Share: share}}
}

func TestQuotaBalancerSplitsAndPublishes(t *testing.T) {
	b, clk := newTestBalancer(t)
	// Before any report, no share: the plan's default.
	if _, ok := b.shareOf(quotaID, "echo-1"); ok {
		t.Fatalf("share before any round")
	}
	// Two sidecars report 10 and 30 requests in 2s: 300 and 900 a minute.
	b.report(clk, "echo-1", 10, 0)
	b.report(clk, "echo-2", 20, 10)
	v := viewWith(false, westRecord(1200, 300))
	recs, shares := b.round(v)
	if !recs || !shares {
		t.Fatalf("first round: records changed %v, shares changed %v; want both", recs, shares)
	}
	clk.t = clk.t.Add(2 * time.Second)
	b.round(v) // the hold (1ns) has passed: the raise applies
	// east published 1200 a minute, west 1200: 300 each; east's 300
	// split 1:3 among its sidecars above a floor of 37.
	want := map[string]plan.QuotaShare{
		"echo-1": {Requests: 37 + 57, Interval: time.Minute},
		"echo-2": {Requests: 37 + 169, Interval: time.Minute},
	}
	for node, w := range want {
		got, ok := b.shareOf(quotaID, node)
		if !ok || got != w {
			t.Errorf("shareOf(%s) = %v %v, want %v", node, got, ok, w)
		}
	}
	if got, ok := b.shareOf(quotaID, "echo-3"); !ok || got.Requests != 25 {
		t.Errorf("a sidecar not reported yet gets %v %v, want the floor of a split among three, 25", got, ok)
	}
	if diff := cmp.Diff([]catalog.QuotaRecord{{Quota: quotaID, Requests: 600, Interval: time.Minute, Admitted: 900, Refused: 300, Share: 300}},
		b.recordsFor(catalog.ServiceKey{Namespace: "demo", Name: "echo"})); diff != "" {
		t.Errorf("records of demo/echo (-want +got):\n%s", diff)
	}
	if got := b.recordsFor(catalog.ServiceKey{Namespace: "demo", Name: "shop"}); got != nil {
		t.Errorf("demo/shop is not limited by the quota but carries %v", got)
	}
	if got := quotaMetric(t, b.m.share.WithLabelValues(quotaID, "west-1")); got != 300 {
		t.Errorf("share metric of west-1 = %v, want 300", got)
	}
	if got := quotaMetric(t, b.m.admitted.WithLabelValues(quotaID)); got != 30 {
		t.Errorf("admitted metric = %v, want 30", got)
	}

	// West is fenced: one live cluster of two is not a majority, so
	// east keeps what it had.
	clk.t = clk.t.Add(2 * time.Second)
	b.round(viewWith(true, westRecord(1200, 300)))
	if got, _ := b.shareOf(quotaID, "echo-2"); got.Requests != 206 {
		t.Errorf("in a minority, echo-2's share is %d, want 206 kept", got.Requests)
	}
	if got := quotaMetric(t, b.m.minority.WithLabelValues(quotaID)); got != 1 {
		t.Errorf("minority metric = %v, want 1", got)
	}
}

func TestQuotaBalancerDropsUnknownQuotas(t *testing.T) {
	b, clk := newTestBalancer(t)
	b.onLoad(xds.LoadReport{Node: "echo-1", Received: clk.t,
		Load: xdsresource.QuotaLoad{Quota: "demo/limits/nope", Admitted: 5, Interval: time.Second}})
	if got := quotaMetric(t, b.m.unknown); got != 1 {
		t.Errorf("unknown reports = %v, want 1", got)
	}
	if recs, shares := b.round(viewWith(false)); recs || shares {
		t.Errorf("an unknown quota's report changed records %v or shares %v", recs, shares)
	}
	if got := seriesCount(b.m.admitted); got != 0 {
		t.Errorf("admitted has %d series, want none", got)
	}
}

func TestQuotaBalancerForgetsGoneQuotas(t *testing.T) {
	b, clk := newTestBalancer(t)
	b.report(clk, "echo-1", 10, 0)
	b.round(viewWith(false))
	if _, ok := b.shareOf(quotaID, "echo-1"); !ok {
		t.Fatal("no share after a round")
	}
	b.setTraffic(parseTraffic(t))
	if _, ok := b.shareOf(quotaID, "echo-1"); ok {
		t.Error("a share of a deleted quota")
	}
	if got := b.recordsFor(catalog.ServiceKey{Namespace: "demo", Name: "echo"}); got != nil {
		t.Errorf("records of a deleted quota: %v", got)
	}
}

// TestMemberPublishesQuotaDemand: sidecars' reports reach the cluster's
// export in etcd as its quota record, and the quota report shows the
// split.
func TestMemberPublishesQuotaDemand(t *testing.T) {
	m := startMember(t, memberOptions{files: map[string]string{"echo.yaml": echoYAML, "limits.yaml": quotaYAML},
		config: func(c *Config) {
			c.Mesh.Quota = QuotaConfig{Period: 50 * time.Millisecond, ReportInterval: 50 * time.Millisecond}
		}})
	ctx := context.Background()
	poll.Until(t, 30*time.Second, "the quota record in east-1's export of demo/echo", func() error {
		m.srv.quotas.onLoad(xds.LoadReport{Node: "echo-1", Received: time.Now(),
			Load: xdsresource.QuotaLoad{Quota: quotaID, Admitted: 1, Refused: 1, Interval: 50 * time.Millisecond}})
		st := m.srv.Store()
		if st == nil {
			return fmt.Errorf("store not open")
		}
		es, _, err := st.ListExports(ctx, "east-1")
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Service.Name == "echo" && len(e.Quotas) == 1 && e.Quotas[0].Quota == quotaID && e.Quotas[0].Share == 600 && e.Quotas[0].Refused > 0 {
				return nil
			}
			if e.Service.Name == "echo" {
				return fmt.Errorf("echo's quota records: %+v", e.Quotas)
			}
		}
		return fmt.Errorf("no export of echo")
	})
	var page QuotaPage
	poll.Until(t, 30*time.Second, "the quota report", func() error {
		if err := m.operatorGet(QuotaPath, &page); err != nil {
			return err
		}
		if len(page.Quotas) != 1 || len(page.Quotas[0].Sidecars) == 0 {
			return fmt.Errorf("page %+v", page)
		}
		return nil
	})
	q := page.Quotas[0]
	if q.Quota != quotaID || q.Total != 600 || len(q.Clusters) != 1 || q.Clusters[0].Share != 600 || q.Sidecars[0].Node != "echo-1" || q.Sidecars[0].Share != 600 {
		t.Errorf("quota report %+v: want east-1 and its sidecar echo-1 holding all 600", q)
	}
}

func quotaMetric(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if c := d.GetCounter(); c != nil {
		return c.GetValue()
	}
	return d.GetGauge().GetValue()
}

func seriesCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// TestQuotaBalancerResumes: a restarted control plane starts from the
// share its cluster published before (found in the view), not from zero.
func TestQuotaBalancerResumes(t *testing.T) {
	b, clk := newTestBalancer(t)
	b.cfg.Hold = time.Hour // a raise would wait: only the resumed share can be in force
	b.report(clk, "echo-1", 10, 0)
	own := catalog.ClusterQuota{Cluster: "east-1", QuotaRecord: catalog.QuotaRecord{
		Quota: quotaID, Requests: 600, Interval: time.Minute, Admitted: 300, Share: 300}}
	b.round(viewWith(false, own, westRecord(300, 300)))
	if got, ok := b.shareOf(quotaID, "echo-1"); !ok || got.Requests != 300 {
		t.Errorf("after a restart echo-1's share is %v %v, want the 300 east-1 published", got, ok)
	}
	// Without its old record a control plane starts from nothing and
	// waits for the hold.
	b2, clk2 := newTestBalancer(t)
	b2.cfg.Hold = time.Hour
	b2.report(clk2, "echo-1", 10, 0)
	b2.round(viewWith(false, westRecord(300, 300)))
	if got, _ := b2.shareOf(quotaID, "echo-1"); got.Requests != 1 || got.Interval != 10*time.Minute {
		t.Errorf("a first start gives echo-1 %v, want 1 request per 10 intervals until the hold passes", got)
	}
}
