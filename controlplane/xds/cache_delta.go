package xds

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sort"
	"strings"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Delta (incremental) xDS. go-control-plane's delta stream server keeps,
// per stream and type, the subscription: wildcard or not, the names
// subscribed, and a map of the resources the client has (from
// initial_resource_versions on a new stream, then from every response's
// next version map). The cache compares the node's snapshot with it and
// sends what changed and what was removed.
//
// A push must cost what changed, not the size of the type, and a
// connected node must not cost a map of every resource it holds (a
// thousand nodes x a thousand assignments would be a million entries).
// So a wildcard stream's map, once the cache has answered it, holds one
// entry: syncedKey, the version of the node's typeSet the client is in
// step with. The node's last typeSets are kept (cacheNode.hist, the last
// maxHistory per type); a push compares the new typeSet with the one the
// stream is in step with, part by part and resource by resource by
// pointer (resources of unchanged services are the same *resource), and
// by name where the shapes differ. An ACK of a type already in step
// costs one lookup. A stream so far behind that its typeSet has left the
// history (more than maxHistory snapshots set while one response was
// unanswered) is ended: the client reconnects and announces what it has.
//
// Other entries in a wildcard stream's map are what the stream server
// put there: a name unsubscribed explicitly while wildcard is set to ""
// (the protocol wants it sent again, or reported removed). A stream that
// names its resources keeps a per-name map, changed in place: the stream
// server hands the map to the cache only while the watch is open, closes
// the watch (under the cache's lock) before it changes the subscription,
// and sends every response it takes from the channel before it reads the
// next request, so the map is touched by one side at a time and always
// says what the client was sent.
//
// A NACK does not bring the same resources again (the server believes
// the client has them, as the protocol has it); the client keeps its last
// good ones and asks for them again with initial_resource_versions when
// it reconnects.

// syncedKey, in a wildcard delta stream's version map, holds the version
// of the node's typeSet the client is in step with. Real names never
// start with a NUL byte (checkRequest refuses them); deltaRespond skips
// such keys.
const syncedKey = "\x00synced"

// maxHistory is how many typeSets per type a node keeps for its delta
// streams.
const maxHistory = 8

// reserved reports whether name is one of the cache's own keys.
func reserved(name string) bool { return strings.HasPrefix(name, "\x00") }

// remember adds snap's typeSets to the node's history.
func (n *cacheNode) remember(snap *Snapshot) {
	for i := range n.hist {
		ts := &snap.sets[i]
		h := n.hist[i]
		if len(h) > 0 && h[len(h)-1].version == ts.version {
			h[len(h)-1] = ts // the same content: the newest parts
			continue
		}
		if len(h) == maxHistory {
			h = append(h[:0:0], h[1:]...)
		}
		n.hist[i] = append(h, ts)
	}
}

// history is the node's history of typeURL (nil for a type not served).
func (n *cacheNode) history(typeURL string) []*typeSet {
	if i := typeIndex(typeURL); i >= 0 {
		return n.hist[i]
	}
	return nil
}

// errFallenBehind ends a delta stream whose typeSet left the history.
var errFallenBehind = errors.New("xds: delta stream fell too far behind its node's snapshots; reconnect and announce the resources held")

// deltaRespond returns the response a delta watch gets from snap now, or
// nil when nothing changed for the stream. hist is the node's history
// of the request's type.
func deltaRespond(hist []*typeSet, snap *Snapshot, req *cache.DeltaRequest, sub cache.Subscription) cache.DeltaResponse {
	ts := snap.set(req.GetTypeUrl())
	if ts == nil {
		return nil
	}
	returned := sub.ReturnedResources()
	if returned == nil {
		returned = map[string]string{}
	}
	var resp *deltaResponse
	if sub.IsWildcard() {
		resp = &deltaResponse{req: req, version: ts.version, next: map[string]string{syncedKey: ts.version}, compact: true}
		synced, inStep := returned[syncedKey]
		switch {
		case !inStep:
			// A new stream: returned is what the client announced.
			deltaCompare(ts, returned, resp)
		case synced == ts.version:
		default:
			old := findVersion(hist, synced)
			if old == nil {
				return failedResponse{req: req, err: errFallenBehind}
			}
			if !diffParts(old, ts, resp) {
				diffSets(old, ts, resp)
			}
		}
		if inStep && len(returned) > 1 {
			overrides(ts, returned, resp)
		}
	} else {
		resp = &deltaResponse{req: req, version: ts.version, next: returned}
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

// findVersion returns the typeSet of hist with version v, or nil.
func findVersion(hist []*typeSet, v string) *typeSet {
	for i := len(hist) - 1; i >= 0; i-- {
		if hist[i].version == v {
			return hist[i]
		}
	}
	return nil
}

// deltaCompare answers a new wildcard stream whose client announced
// returned (name to version, possibly nothing): what it lacks or has at
// another version is sent, what ts lacks is removed.
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
// differ (a part or a resource added, removed or moved); diffSets then
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

// diffSets brings a stream in step with old to cur by name.
func diffSets(old, cur *typeSet, resp *deltaResponse) {
	var changed []*resource
	for _, p := range cur.parts {
		changed = changed[:0]
		for _, r := range p.items {
			if o := old.lookup(r.name); o == nil || o.version != r.version {
				changed = append(changed, r)
			}
		}
		resp.addAll(p, changed)
	}
	for _, p := range old.parts {
		for _, r := range p.items {
			if cur.lookup(r.name) == nil {
				resp.remove(r.name)
			}
		}
	}
}

// overrides answers the names a wildcard stream's map holds besides
// syncedKey (put there by the stream server: a name unsubscribed while
// wildcard, at version ""): each is sent again when it exists and was
// not sent already, reported removed when it does not.
func overrides(ts *typeSet, returned map[string]string, resp *deltaResponse) {
	sent := map[string]bool{}
	for _, r := range resp.items {
		sent[r.name] = true
	}
	for _, p := range resp.parts {
		for _, r := range p.items {
			sent[r.name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(returned)) {
		if reserved(name) || sent[name] {
			continue
		}
		if r := ts.lookup(name); r == nil {
			if !slices.Contains(resp.removed, name) {
				resp.remove(name)
			}
		} else if returned[name] != r.version {
			resp.add(r)
		}
	}
}

// failedResponse ends a stream: the stream server ends it with err when
// it asks for the message to send.
type failedResponse struct {
	req *cache.DeltaRequest
	err error
}

var _ cache.DeltaResponse = failedResponse{}

func (f failedResponse) GetDeltaDiscoveryResponse() (*discoverygrpc.DeltaDiscoveryResponse, error) {
	return nil, f.err
}
func (f failedResponse) GetDeltaRequest() *discoverygrpc.DeltaDiscoveryRequest { return f.req }
func (f failedResponse) GetSystemVersion() (string, error)                     { return "", f.err }
func (f failedResponse) GetNextVersionMap() map[string]string                  { return nil }
func (f failedResponse) GetResponseVersion() string                            { return "" }
func (f failedResponse) GetReturnedResources() map[string]string               { return nil }
func (f failedResponse) GetContext() context.Context                           { return context.Background() }

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
	// next is the stream's next version map: a new one-entry map for a
	// wildcard stream (compact), the stream's own map, updated in place,
	// for a stream that names its resources (see above).
	next    map[string]string
	compact bool
}

// add sends r and records its version.
func (r *deltaResponse) add(res *resource) {
	r.items = append(r.items, res)
	r.count++
	if !r.compact {
		r.next[res.name] = res.version
	}
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
	if !r.compact {
		for _, res := range p.items {
			r.next[res.name] = res.version
		}
	}
}

// remove tells the client name is gone and forgets it.
func (r *deltaResponse) remove(name string) {
	r.removed = append(r.removed, name)
	if !r.compact {
		delete(r.next, name)
	}
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
