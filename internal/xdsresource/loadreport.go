package xdsresource

import (
	"errors"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// QuotaLoadPrefix starts the cluster_name of a quota's load report
// (ClusterStats in LRS, envoy.service.load_stats.v3): "quota|" followed by
// the quota's ID, NAMESPACE/POLICY/QUOTA. It cannot clash with the name of
// an xDS cluster, which never contains '|'.
const QuotaLoadPrefix = "quota|"

// DropCategoryRateLimited is the dropped_requests category of the
// requests a quota refused.
const DropCategoryRateLimited = "rate_limited"

// ErrBadLoadReport is wrapped by every error of ParseQuotaLoad.
var ErrBadLoadReport = errors.New("bad load report")

// QuotaLoad is one sidecar's demand for one quota over one reporting
// interval, as a load report carries it (docs/xds.md, "Load reports").
type QuotaLoad struct {
	// Quota is the quota's ID, NAMESPACE/POLICY/QUOTA.
	Quota string
	// Admitted and Refused are the requests the sidecar admitted and
	// refused under the quota during Interval (deltas, as every LRS
	// count is).
	Admitted, Refused uint64
	// Interval is the period the counts cover.
	Interval time.Duration
}

// QuotaClusterStats is the ClusterStats of one quota's load: cluster_name
// "quota|ID"; one upstream_locality_stats entry (the sidecar's own
// locality, empty) whose total_successful_requests and
// total_issued_requests are the admitted requests; total_dropped_requests
// and a dropped_requests entry of category "rate_limited" are the refused
// ones; load_report_interval is Interval.
func QuotaClusterStats(l QuotaLoad) *endpointv3.ClusterStats {
	cs := &endpointv3.ClusterStats{
		ClusterName: QuotaLoadPrefix + l.Quota,
		UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{{
			Locality:                &corev3.Locality{},
			TotalSuccessfulRequests: l.Admitted,
			TotalIssuedRequests:     l.Admitted,
		}},
		TotalDroppedRequests: l.Refused,
		LoadReportInterval:   durationpb.New(l.Interval),
	}
	if l.Refused > 0 {
		cs.DroppedRequests = []*endpointv3.ClusterStats_DroppedRequests{{Category: DropCategoryRateLimited, DroppedCount: l.Refused}}
	}
	return cs
}

// IsQuotaLoad reports whether cs is a quota's load report (its
// cluster_name starts with QuotaLoadPrefix); others are load reports of
// ordinary clusters, which fedmesh does not use.
func IsQuotaLoad(cs *endpointv3.ClusterStats) bool {
	return strings.HasPrefix(cs.GetClusterName(), QuotaLoadPrefix)
}

// MaxLoadInterval bounds the interval of a load report: a report that
// claims a longer one is refused (a sidecar reports every few seconds).
const MaxLoadInterval = time.Hour

// ParseQuotaLoad reads a quota's load report written by
// QuotaClusterStats, or by any LRS client that follows docs/xds.md: the
// admitted requests are the sum of total_successful_requests over the
// localities, the refused ones total_dropped_requests. The quota ID must
// have three non-empty segments; the interval must be positive and at
// most MaxLoadInterval.
func ParseQuotaLoad(cs *endpointv3.ClusterStats) (QuotaLoad, error) {
	id, ok := strings.CutPrefix(cs.GetClusterName(), QuotaLoadPrefix)
	if !ok {
		return QuotaLoad{}, fmt.Errorf("%w: cluster_name %q does not start with %q", ErrBadLoadReport, cs.GetClusterName(), QuotaLoadPrefix)
	}
	if err := checkQuotaID(id); err != nil {
		return QuotaLoad{}, fmt.Errorf("%w: cluster_name %q: %w", ErrBadLoadReport, cs.GetClusterName(), err)
	}
	if err := cs.ValidateAll(); err != nil {
		return QuotaLoad{}, fmt.Errorf("%w: quota %s: %w", ErrBadLoadReport, id, err)
	}
	d := cs.GetLoadReportInterval()
	if d == nil {
		return QuotaLoad{}, fmt.Errorf("%w: quota %s: no load_report_interval", ErrBadLoadReport, id)
	}
	if err := d.CheckValid(); err != nil {
		return QuotaLoad{}, fmt.Errorf("%w: quota %s: load_report_interval: %w", ErrBadLoadReport, id, err)
	}
	iv := d.AsDuration()
	if iv <= 0 || iv > MaxLoadInterval {
		return QuotaLoad{}, fmt.Errorf("%w: quota %s: load_report_interval %v is not in (0, %v]", ErrBadLoadReport, id, iv, MaxLoadInterval)
	}
	l := QuotaLoad{Quota: id, Refused: cs.GetTotalDroppedRequests(), Interval: iv}
	for _, ls := range cs.GetUpstreamLocalityStats() {
		n := ls.GetTotalSuccessfulRequests()
		if l.Admitted+n < l.Admitted {
			return QuotaLoad{}, fmt.Errorf("%w: quota %s: total_successful_requests overflow", ErrBadLoadReport, id)
		}
		l.Admitted += n
	}
	return l, nil
}

// maxQuotaID bounds a quota ID: three DNS labels or names and two slashes.
const maxQuotaID = 253 + 253 + 63 + 2

// checkQuotaID checks the shape of NAMESPACE/POLICY/QUOTA: three
// non-empty segments of lower-case letters, digits, '-' and '.'.
func checkQuotaID(id string) error {
	if len(id) > maxQuotaID {
		return fmt.Errorf("quota ID is %d bytes long, more than %d", len(id), maxQuotaID)
	}
	segs := strings.Split(id, "/")
	if len(segs) != 3 {
		return fmt.Errorf("quota ID %q is not NAMESPACE/POLICY/QUOTA", id)
	}
	for _, s := range segs {
		if s == "" {
			return fmt.Errorf("quota ID %q has an empty segment", id)
		}
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				return fmt.Errorf("quota ID %q: %q is not a lower-case letter, digit, '-' or '.'", id, r)
			}
		}
	}
	return nil
}
