package xds

import (
	"context"
	"sort"
	"strings"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
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
	if resp.count == 0 && len(resp.removed) == 0 && (!sub.IsWildcard() || req.GetResponseNonce() != "") {
		return nil
	}
	return resp
}

// deltaCompare brings a wildcard stream's map returned to ts by
// comparing every resource: what the client lacks or has at another
// version is sent, what ts lacks is removed.
func deltaCompare(ts *typeSet, returned map[string]string, resp *deltaResponse) {
	var changed []*resource
	for _, p := range ts.parts {
		changed = changed[:0]
		for _, r := range p.items {
			if v, ok := returned[r.name]; !ok || v != r.version {
				changed = append(changed, r)
			}
		}
		resp.addAll(p, changed)
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
	changed := make([][]*resource, len(cur.parts))
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
				changed[i] = append(changed[i], rc)
			}
		}
	}
	for i, p := range cur.parts {
		resp.addAll(p, changed[i])
	}
	return true
}

// deltaResponse is a delta response made of shared, marshalled resources.
type deltaResponse struct {
	req     *cache.DeltaRequest
	version string
	// parts are sent whole, items one by one: both are encoded into
	// the response as they are (see GetDeltaDiscoveryResponse).
	parts   []*part
	items   []*resource
	count   int // resources sent
	removed []string
	// next is the stream's version map, updated in place (see above).
	next map[string]string
}

// add sends r and records its version.
func (r *deltaResponse) add(res *resource) {
	r.items = append(r.items, res)
	r.count++
	r.next[res.name] = res.version
}

// addAll sends changed, resources of p: p's shared encoding when they
// are all of p.
func (r *deltaResponse) addAll(p *part, changed []*resource) {
	if len(changed) < len(p.items) || len(changed) == 0 {
		for _, res := range changed {
			r.add(res)
		}
		return
	}
	r.parts = append(r.parts, p)
	r.count += len(p.items)
	for _, res := range p.items {
		r.next[res.name] = res.version
	}
}

// remove tells the client name is gone and forgets it.
func (r *deltaResponse) remove(name string) {
	r.removed = append(r.removed, name)
	delete(r.next, name)
}

var _ cache.DeltaResponse = (*deltaResponse)(nil)

// GetDeltaDiscoveryResponse returns a new message each time: the stream
// sets its nonce on it. The resources go out as unknown fields, already
// encoded as the message's field 2 (a whole part's shared bytes, or each
// resource's wire form with its name and version around it), as in a
// state-of-the-world response (sotwResponse): on the wire they are the
// resources field, and nothing on the server reads the message's
// Resources after it is made (no OnStreamDeltaResponse).
func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoverygrpc.DeltaDiscoveryResponse, error) {
	out := &discoverygrpc.DeltaDiscoveryResponse{
		SystemVersionInfo: r.version,
		RemovedResources:  r.removed,
		TypeUrl:           r.req.GetTypeUrl(),
	}
	if len(r.parts) == 1 && len(r.items) == 0 {
		out.ProtoReflect().SetUnknown(protoreflect.RawFields(r.parts[0].deltaWire()))
	} else if len(r.parts) > 0 || len(r.items) > 0 {
		var b []byte
		for _, p := range r.parts {
			b = append(b, p.deltaWire()...)
		}
		for _, res := range r.items {
			b = appendDeltaResource(b, res)
		}
		out.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
	}
	return out, nil
}

func (r *deltaResponse) GetDeltaRequest() *discoverygrpc.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)                     { return r.version, nil }
func (r *deltaResponse) GetResponseVersion() string                            { return r.version }
func (r *deltaResponse) GetNextVersionMap() map[string]string                  { return r.next }
func (r *deltaResponse) GetReturnedResources() map[string]string               { return r.next }
func (r *deltaResponse) GetContext() context.Context                           { return context.Background() }

// Field numbers of envoy.service.discovery.v3.Resource.
const (
	resourceVersionField protowire.Number = 1
	resourceBodyField    protowire.Number = 2
	resourceNameField    protowire.Number = 3
)

// appendDeltaResource appends r as an entry of DeltaDiscoveryResponse's
// resources (field 2): a Resource with r's version, body and name, what
// the proto marshaller would write for it.
func appendDeltaResource(b []byte, r *resource) []byte {
	anyLen := protowire.SizeTag(1) + protowire.SizeBytes(len(r.any.TypeUrl)) + protowire.SizeTag(2) + protowire.SizeBytes(len(r.any.Value))
	n := protowire.SizeTag(resourceVersionField) + protowire.SizeBytes(len(r.version)) +
		protowire.SizeTag(resourceBodyField) + protowire.SizeBytes(anyLen) +
		protowire.SizeTag(resourceNameField) + protowire.SizeBytes(len(r.name))
	b = protowire.AppendTag(b, discoveryResourcesField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, resourceVersionField, protowire.BytesType)
	b = protowire.AppendString(b, r.version)
	b = protowire.AppendTag(b, resourceBodyField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(anyLen))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, r.any.TypeUrl)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, r.any.Value)
	b = protowire.AppendTag(b, resourceNameField, protowire.BytesType)
	b = protowire.AppendString(b, r.name)
	return b
}
