package federation

import (
	"maps"
	"slices"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation/merge"
)

// RefusedPolicies is an export whose producer policies were refused:
// the export is merged as if it carried none.
type RefusedPolicies struct {
	Service string `json:"service"`
	Cluster string `json:"cluster"`
	Digest  string `json:"digest"`
	Error   string `json:"error"`
}

// checkPolicies refuses the producer policies that fail
// merge.CheckPolicies among cluster's exports (those named by changed, or
// all when changed is nil): it returns exports with each such export's
// Policies set to nil, so that a bad set from a peer is treated as absent
// and never reaches the view. exports is shared with its replicator and
// never modified: the first refusal works on a copy. A refusal is
// counted and logged once per cluster, service and digest. It runs on
// Run's goroutine.
func (f *Federation) checkPolicies(cluster string, exports []catalog.Export, changed []catalog.ServiceKey) []catalog.Export {
	old := f.refused[cluster]
	refused := make(map[catalog.ServiceKey]RefusedPolicies)
	if changed != nil {
		maps.Copy(refused, old)
	}
	var want map[catalog.ServiceKey]bool
	if changed != nil {
		want = make(map[catalog.ServiceKey]bool, len(changed))
		for _, k := range changed {
			want[k] = true
			delete(refused, k)
		}
	}
	copied := false
	for i := range exports {
		e := &exports[i]
		k := e.Service.Key()
		if want != nil && !want[k] {
			// Unchanged, refused before: still refused (the replicator's
			// set carries the policies as the peer wrote them).
			if _, still := refused[k]; still && e.Policies != nil {
				if !copied {
					exports, copied = slices.Clone(exports), true
				}
				exports[i].Policies = nil
			}
			continue
		}
		err := merge.CheckPolicies(e)
		if err == nil {
			continue
		}
		r := RefusedPolicies{Service: k.String(), Cluster: cluster, Digest: e.Policies.Digest, Error: err.Error()}
		if was, ok := old[k]; !ok || was.Digest != r.Digest || was.Error != r.Error {
			f.met.policiesRefused.Inc()
			f.log.Warn("producer policies of an export refused: merged as if it carried none", "peer", cluster, "service", r.Service, "digest", r.Digest, "err", err)
		}
		refused[k] = r
		if !copied {
			exports, copied = slices.Clone(exports), true
		}
		exports[i].Policies = nil
	}
	if len(refused) == 0 {
		delete(f.refused, cluster)
		return exports
	}
	f.refused[cluster] = refused
	return exports
}

// refusedPolicies lists the refused policies by cluster, then service.
func (f *Federation) refusedPolicies() []RefusedPolicies {
	var out []RefusedPolicies
	for _, cluster := range slices.Sorted(maps.Keys(f.refused)) {
		byKey := f.refused[cluster]
		for _, k := range slices.SortedFunc(maps.Keys(byKey), func(a, b catalog.ServiceKey) int {
			if a.Less(b) {
				return -1
			}
			if b.Less(a) {
				return 1
			}
			return 0
		}) {
			out = append(out, byKey[k])
		}
	}
	return out
}
