package catalog

import (
	"fmt"
	"strings"
	"time"
)

// QuotaRecord is what one cluster publishes for one clusterset quota
// beside its exports (on the exports of the services the quota limits),
// so that every control plane can split the quota the same way: the
// cluster's recent demand and the share it holds (docs/quota.md).
type QuotaRecord struct {
	// Quota is the quota's ID, NAMESPACE/POLICY/QUOTA; NAMESPACE is the
	// namespace of the service whose export carries the record.
	Quota string `json:"quota"`
	// Requests per Interval is the quota as the cluster defines it.
	Requests int64         `json:"requests"`
	Interval time.Duration `json:"interval"`
	// Admitted and Refused are the cluster's recent requests admitted
	// and refused under the quota, per Interval.
	Admitted int64 `json:"admitted"`
	Refused  int64 `json:"refused"`
	// Share is the share of Requests the cluster's sidecars hold now.
	Share int64 `json:"share"`
}

// ClusterQuota is a QuotaRecord in the merged view, with the cluster
// that published it.
type ClusterQuota struct {
	Cluster string `json:"cluster"`
	QuotaRecord
}

// MaxQuotaRecords bounds the quota records of one export.
const MaxQuotaRecords = 64

// maxQuotaInterval is the longest quota interval (as the policy allows).
const maxQuotaInterval = 24 * time.Hour

// maxQuotaCount bounds every count of a record (about 10^12 per
// interval), as the split does.
const maxQuotaCount = 1 << 40

func validateQuotasInto(fe *fieldErrors, namespace string, rs []QuotaRecord) {
	if len(rs) > MaxQuotaRecords {
		fe.add("quotas", fmt.Sprint(len(rs)), fmt.Sprintf("must have at most %d records", MaxQuotaRecords))
		return
	}
	seen := make(map[string]bool, len(rs))
	for i, r := range rs {
		f := fmt.Sprintf("quotas[%d].", i)
		segs := strings.Split(r.Quota, "/")
		switch {
		case len(segs) != 3:
			fe.add(f+"quota", r.Quota, "must be NAMESPACE/POLICY/QUOTA")
		case segs[0] != namespace:
			fe.add(f+"quota", r.Quota, "must be in the service's namespace "+namespace)
		default:
			for _, s := range segs[1:] {
				if why := IsDNS1123Label(s); why != "" {
					fe.add(f+"quota", r.Quota, why)
					break
				}
			}
		}
		if seen[r.Quota] {
			fe.add(f+"quota", r.Quota, "is repeated")
		}
		seen[r.Quota] = true
		if r.Requests < 1 || r.Requests > maxQuotaCount {
			fe.add(f+"requests", fmt.Sprint(r.Requests), fmt.Sprintf("must be in [1, %d]", int64(maxQuotaCount)))
		}
		if r.Interval <= 0 || r.Interval > maxQuotaInterval {
			fe.add(f+"interval", r.Interval.String(), "must be in (0, 24h]")
		}
		for _, c := range []struct {
			name string
			v    int64
		}{{"admitted", r.Admitted}, {"refused", r.Refused}, {"share", r.Share}} {
			if c.v < 0 || c.v > maxQuotaCount {
				fe.add(f+c.name, fmt.Sprint(c.v), fmt.Sprintf("must be in [0, %d]", int64(maxQuotaCount)))
			}
		}
	}
}
