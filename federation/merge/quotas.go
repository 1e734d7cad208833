package merge

import (
	"cmp"
	"slices"

	"github.com/fedmesh/fedmesh/catalog"
)

// mergeQuotas gathers the clusterset-quota records of every merged export
// (a record is one cluster's demand and share, never in conflict with
// another's), sorted by quota, then cluster, so that every control plane
// splits the quotas from the same list.
func mergeQuotas(svc *catalog.ImportedService, merged []candidate) {
	for _, c := range merged {
		for _, r := range c.export.Quotas {
			svc.Quotas = append(svc.Quotas, catalog.ClusterQuota{Cluster: c.cluster, QuotaRecord: r})
		}
	}
	slices.SortFunc(svc.Quotas, func(a, b catalog.ClusterQuota) int {
		return cmp.Or(cmp.Compare(a.Quota, b.Quota), cmp.Compare(a.Cluster, b.Cluster))
	})
}
