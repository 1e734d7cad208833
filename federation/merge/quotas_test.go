package merge

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
)

// TestMergeQuotas: every merged export's quota records reach the view with
// their cluster, sorted by quota then cluster, whatever order the exports
// come in; an export not merged (a type conflict) brings none.
func TestMergeQuotas(t *testing.T) {
	rec := func(q string, share int64) catalog.QuotaRecord {
		return catalog.QuotaRecord{Quota: q, Requests: 600, Interval: time.Minute, Admitted: 10, Share: share}
	}
	west := export("west-1", 0, catalog.ClusterSetIP, []catalog.Port{httpPort(80)}, ep("10.0.0.2", "http", true))
	west.Quotas = []catalog.QuotaRecord{rec("demo/rl/b", 1), rec("demo/rl/a", 2)}
	east := export("east-1", time.Hour, catalog.ClusterSetIP, []catalog.Port{httpPort(80)}, ep("10.0.0.1", "http", true))
	east.Quotas = []catalog.QuotaRecord{rec("demo/rl/a", 3)}
	odd := export("north-1", 2*time.Hour, catalog.Headless, []catalog.Port{httpPort(80)})
	odd.Quotas = []catalog.QuotaRecord{rec("demo/rl/a", 4)}
	v := Merge("east-1", nil, map[string][]catalog.Export{"east-1": {east}, "west-1": {west}, "north-1": {odd}})
	want := []catalog.ClusterQuota{
		{Cluster: "east-1", QuotaRecord: rec("demo/rl/a", 3)},
		{Cluster: "west-1", QuotaRecord: rec("demo/rl/a", 2)},
		{Cluster: "west-1", QuotaRecord: rec("demo/rl/b", 1)},
	}
	if diff := cmp.Diff(want, v.Services[0].Quotas); diff != "" {
		t.Errorf("view quotas (-want +got):\n%s", diff)
	}
}
