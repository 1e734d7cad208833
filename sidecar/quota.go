package sidecar

import "github.com/fedmesh/fedmesh/internal/xdsclient"

// quotaLoad is the xDS client's LoadReports: what this sidecar's shares
// of clusterset quotas admitted and refused since it started, which the
// client sends to the control plane as LRS load reports so that the
// quota's split follows the demand (docs/xds.md, "Load reports").
func (s *Sidecar) quotaLoad() []xdsclient.LoadCount {
	ds := s.QuotaDemand()
	out := make([]xdsclient.LoadCount, len(ds))
	for i, d := range ds {
		out[i] = xdsclient.LoadCount{Quota: d.Quota, Admitted: d.Admitted, Refused: d.Refused}
	}
	return out
}
