package merge

import (
	"maps"
	"slices"

	"github.com/fedmesh/fedmesh/catalog"
)

// Merger computes the same view as Merge, but incrementally: it remembers
// every cluster's exports and the merged services, and recomputes only the
// services whose exports, or whose clusters' info, changed. It is pure (no
// I/O, no goroutines) and not safe for concurrent use.
//
//	m := merge.NewMerger("east-1")
//	m.SetClusters(clusters)
//	m.SetExports("west-1", snapshot.Exports, snapshot.Changed)
//	view := m.View() // equal to Merge("east-1", clusters, allExports)
type Merger struct {
	local    string
	clusters map[string]catalog.ClusterInfo
	// exports point into the slices SetExports was given (one copy of
	// every import, shared with the replicators', not one more here).
	exports map[string]map[catalog.ServiceKey]*catalog.Export
	merged  map[catalog.ServiceKey]catalog.ImportedService
	keys    []catalog.ServiceKey // sorted keys of merged; nil when stale
	dirty   map[catalog.ServiceKey]struct{}
}

// NewMerger returns an empty Merger for the view of cluster local.
func NewMerger(local string) *Merger {
	return &Merger{
		local:    local,
		clusters: make(map[string]catalog.ClusterInfo),
		exports:  make(map[string]map[catalog.ServiceKey]*catalog.Export),
		merged:   make(map[catalog.ServiceKey]catalog.ImportedService),
		dirty:    make(map[catalog.ServiceKey]struct{}),
	}
}

// SetClusters replaces the cluster infos. The services exported by a
// cluster whose info changed are merged again.
func (m *Merger) SetClusters(clusters map[string]catalog.ClusterInfo) {
	next := make(map[string]catalog.ClusterInfo, len(clusters))
	for name, ci := range clusters {
		ci.Name = name
		next[name] = ci
	}
	for name := range m.exports {
		// Only fencing changes how a cluster's endpoints merge.
		if old, ok := m.clusters[name]; !ok || old.Fenced != next[name].Fenced || old.FenceReason != next[name].FenceReason {
			m.markCluster(name)
		}
	}
	m.clusters = next
}

// SetExports replaces cluster's exports. changed names the services that
// may differ from the last call (puts and deletes); nil means any may
// have. When a service key repeats in exports, the last one counts, as in
// Merge. The Merger keeps pointers into exports: the caller must not
// modify the slice afterwards (a replicate.Snapshot's is never modified).
func (m *Merger) SetExports(cluster string, exports []catalog.Export, changed []catalog.ServiceKey) {
	next := make(map[catalog.ServiceKey]*catalog.Export, len(exports))
	for i := range exports {
		next[exports[i].Service.Key()] = &exports[i]
	}
	if changed == nil {
		m.markCluster(cluster)
		for k := range next {
			m.dirty[k] = struct{}{}
		}
	} else {
		for _, k := range changed {
			m.dirty[k] = struct{}{}
		}
	}
	if len(next) == 0 {
		delete(m.exports, cluster)
	} else {
		m.exports[cluster] = next
	}
}

// markCluster marks every service cluster exports as dirty.
func (m *Merger) markCluster(cluster string) {
	for k := range m.exports[cluster] {
		m.dirty[k] = struct{}{}
	}
}

// View merges the dirty services and returns the whole view. The view
// shares the merged services' slices with later views: treat it as
// immutable, as catalog.View says.
func (m *Merger) View() catalog.View {
	view := catalog.View{Local: m.local, Clusters: make(map[string]catalog.ClusterInfo, len(m.clusters))}
	maps.Copy(view.Clusters, m.clusters)
	for cluster := range m.exports {
		if _, ok := view.Clusters[cluster]; !ok {
			view.Clusters[cluster] = catalog.ClusterInfo{Name: cluster}
		}
	}
	if len(m.dirty) > 0 {
		// Sorted once per view, not once per dirty service: a peer's
		// first sync dirties all its services.
		clusters := slices.Sorted(maps.Keys(m.exports))
		for k := range m.dirty {
			var cands []candidate
			for _, cluster := range clusters {
				if e, ok := m.exports[cluster][k]; ok {
					cands = append(cands, candidate{cluster: cluster, export: e})
				}
			}
			_, existed := m.merged[k]
			if len(cands) == 0 {
				delete(m.merged, k)
				if existed {
					m.keys = nil
				}
				continue
			}
			m.merged[k] = mergeService(m.local, k, cands, view.Clusters)
			if !existed {
				m.keys = nil
			}
		}
		clear(m.dirty)
	}
	if m.keys == nil {
		m.keys = slices.SortedFunc(maps.Keys(m.merged), compareKeys)
	}
	view.Services = make([]catalog.ImportedService, len(m.keys))
	for i, k := range m.keys {
		view.Services[i] = m.merged[k]
	}
	return view
}
