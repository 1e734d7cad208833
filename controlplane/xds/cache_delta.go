package xds

import (
	"context"
	"sort"
	"strings"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// Delta (incremental) xDS. go-control-plane's delta stream server keeps,
// per stream and type, the subscription: wildcard or not, the names
// subscribed, and the version of every resource the client has (from
// initial_resource_versions on a new stream, then from every response's
// next version map). The cache compares the node's snapshot with it and
// sends what changed and what was removed.
//
// A push must cost what changed, not the size of the type: a thousand
// nodes holding a thousand assignments each would otherwise each get a
// new thousand-entry map per push and compare every entry. So:
//
//   - the next version map of a response is the stream's own map,
//     changed in place. The stream server hands the map to the cache
//     only while the watch is open, closes the watch (under the cache's
//     lock) before it changes the subscription, and sends every response
//     it takes from the channel before it reads the next request, so the
//     map is only ever touched by one side at a time and always says what
//     the client was sent;
//   - a wildcard map that is exactly a snapshot type's resources carries
//     that type's version under syncedKey. When the node's previous
//     snapshot had that version, the new one is compared with it part by
//     part and resource by resource by pointer (resources of unchanged
//     services are the same *resource), so a push to a node costs a
//     pointer comparison per resource and a map write per change; an
//     ACK of a type already in step costs one lookup.
//
// A NACK does not bring the same resources again (the server believes
// the client has them, as the protocol has it); the client keeps its last
// good ones and asks for them again with initial_resource_versions when
// it reconnects.

// syncedKey, in a delta stream's version map, holds the version of the
// snapshot type the map is exactly in step with (wildcard streams only).
// Real names never start with a NUL byte; deltaRespond skips such keys.
const syncedKey = "\x00synced"

// reserved reports whether name is one of the cache's own keys.
func reserved(name string) bool { return strings.HasPrefix(name, "\x00") }

// deltaRespond returns the response a delta watch gets from snap now, or
// nil when nothing changed for the stream. prev is the node's snapshot
// before snap, or nil.
func deltaRespond(prev, snap *Snapshot, req *cache.DeltaRequest, sub cache.Subscription) cache.DeltaResponse {
	ts := snap.set(req.GetTypeUrl())
	if ts == nil {
		return nil
	}
	returned := sub.ReturnedResources()
	if returned == nil {
		returned = map[string]string{}
	}
	resp := &deltaResponse{req: req, version: ts.version, next: returned}
	if sub.IsWildcard() {
		synced, ok := returned[syncedKey]
		switch {
		case ok && synced == ts.version:
			// In step: nothing to send.
		case ok && prev != nil && prev.set(req.GetTypeUrl()).version == synced &&
			diffParts(prev.set(req.GetTypeUrl()), ts, resp):
		default:
			resp.resources, resp.removed = nil, nil
			deltaCompare(ts, returned, resp)
		}
		returned[syncedKey] = ts.version
	} else {
		delete(returned, syncedKey)
		for name := range sub.SubscribedResources() {
			prevVersion, found := returned[name]
			if r := ts.lookup(name); r != nil {
				if !found || prevVersion != r.version {
					resp.add(r)
				}
			} else if found {
				resp.remove(name)
			}
		}
		// Names no longer subscribed are forgotten by the stream server;
		// any other entry is a resource the client announced
		// (initial_resource_versions) and no longer has a subscription
		// for: nothing to say about it.
	}
	sort.Strings(resp.removed)
	// The first wildcard request is answered even when empty, so that
	// the client completes its initialisation.
	if len(resp.resources) == 0 && len(resp.removed) == 0 && (!sub.IsWildcard() || req.GetResponseNonce() != "") {
		return nil
	}
	return resp
}

// deltaCompare brings a wildcard stream's map returned to ts by
// comparing every resource: what the client lacks or has at another
// version is sent, what ts lacks is removed.
func deltaCompare(ts *typeSet, returned map[string]string, resp *deltaResponse) {
	for _, p := range ts.parts {
		for _, r := range p.items {
			if v, ok := returned[r.name]; !ok || v != r.version {
				resp.add(r)
			}
		}
	}
	for name := range returned {
		if !reserved(name) && ts.lookup(name) == nil {
			resp.remove(name)
		}
	}
}

// diffParts brings a stream in step with old to cur by comparing the
// two positionally: parts and resources that are the same pointers are
// unchanged. It reports false, having changed nothing, when the shapes
// differ (a part or a resource added, removed or moved); the caller then
// compares by name.
func diffParts(old, cur *typeSet, resp *deltaResponse) bool {
	if len(old.parts) != len(cur.parts) {
		return false
	}
	var changed []*resource
	for i, pc := range cur.parts {
		po := old.parts[i]
		if po == pc {
			continue
		}
		if len(po.items) != len(pc.items) {
			return false
		}
		for j, rc := range pc.items {
			ro := po.items[j]
			switch {
			case ro == rc:
			case ro.name != rc.name:
				return false
			case ro.version != rc.version:
				changed = append(changed, rc)
			}
		}
	}
	for _, r := range changed {
		resp.add(r)
	}
	return true
}

// deltaResponse is a delta response made of shared, marshalled resources.
type deltaResponse struct {
	req       *cache.DeltaRequest
	version   string
	resources []*discoverygrpc.Resource
	removed   []string
	// next is the stream's version map, updated in place (see above).
	next map[string]string
}

// add sends r and records its version.
func (r *deltaResponse) add(res *resource) {
	r.resources = append(r.resources, &discoverygrpc.Resource{Name: res.name, Version: res.version, Resource: res.any})
	r.next[res.name] = res.version
}

// remove tells the client name is gone and forgets it.
func (r *deltaResponse) remove(name string) {
	r.removed = append(r.removed, name)
	delete(r.next, name)
}

var _ cache.DeltaResponse = (*deltaResponse)(nil)

// GetDeltaDiscoveryResponse returns a new message each time: the stream
// sets its nonce on it.
func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoverygrpc.DeltaDiscoveryResponse, error) {
	return &discoverygrpc.DeltaDiscoveryResponse{
		SystemVersionInfo: r.version,
		Resources:         r.resources,
		RemovedResources:  r.removed,
		TypeUrl:           r.req.GetTypeUrl(),
	}, nil
}

func (r *deltaResponse) GetDeltaRequest() *discoverygrpc.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)                     { return r.version, nil }
func (r *deltaResponse) GetResponseVersion() string                            { return r.version }
func (r *deltaResponse) GetNextVersionMap() map[string]string                  { return r.next }
func (r *deltaResponse) GetReturnedResources() map[string]string               { return r.next }
func (r *deltaResponse) GetContext() context.Context                           { return context.Background() }
