package xds

import (
	"context"
	"errors"
	"sort"
	"sync"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// pushCache is what the xDS streams are served from: every connected
// node's current Snapshot and the streams' open watches. It implements
// go-control-plane's cache.Cache so that its stream servers (state of the
// world and delta, ADS and per type) drive it.
//
// Unlike go-control-plane's snapshot cache it never marshals: resources
// carry their wire form from the moment their part is built, and a
// response is a list of pointers to those shared bytes. A push to a
// thousand nodes of one locality therefore marshals each resource once.
//
// State of the world: a watch is answered when the request's version
// differs from the snapshot's version of that type, or when it names a
// resource the snapshot has and the stream has not received. A wildcard
// response carries the whole type (every type, not only clusters and
// listeners: a wildcard client may take every response as the full set).
// A named subscription to clusters or listeners gets every name asked
// for that exists (the protocol makes those two types full state); to
// endpoints, routes or secrets only the named resources whose version
// differs from what the stream last received (per-resource EDS: one
// service's change sends its assignments alone; the client keeps the
// others, as the protocol says for these types). Delta (cache_delta.go):
// per-resource versions, only changed and removed resources are sent.
type pushCache struct {
	mu    sync.Mutex // guards the following
	nodes map[string]*cacheNode
}

// cacheNode is one node key's snapshot and open watches.
type cacheNode struct {
	snap *Snapshot
	// hist holds, per type, the node's last typeSets (the current one
	// last): a wildcard delta stream knows only which of them it is in
	// step with (cache_delta.go).
	hist  [numTypes][]*typeSet
	sotw  map[*sotwWatch]struct{}
	delta map[*deltaWatch]struct{}
}

type sotwWatch struct {
	req *cache.Request
	sub cache.Subscription
	ch  chan cache.Response
}

type deltaWatch struct {
	req *cache.DeltaRequest
	sub cache.Subscription
	ch  chan cache.DeltaResponse
}

var _ cache.Cache = (*pushCache)(nil)

// errFetch is Fetch's answer: REST/unary Fetch is not served.
var errFetch = errors.New("xds: fetch is not served; use a stream")

// fullSetKey marks, in a state-of-the-world stream's returned resources,
// that the stream received a type's whole set at the version it maps to.
// Real names never start with a NUL byte. The stream server stores the
// map we give it and hands it back; one short map per stream keeps a
// thousand nodes from each holding a thousand names per type.
const fullSetKey = "\x00all"

func newPushCache() *pushCache {
	return &pushCache{nodes: make(map[string]*cacheNode)}
}

// nodeLocked returns key's entry, making it.
func (c *pushCache) nodeLocked(key string) *cacheNode {
	n := c.nodes[key]
	if n == nil {
		n = &cacheNode{sotw: make(map[*sotwWatch]struct{}), delta: make(map[*deltaWatch]struct{})}
		c.nodes[key] = n
	}
	return n
}

// SetSnapshot makes snap node key's current snapshot and answers the
// node's open watches that it changes.
func (c *pushCache) SetSnapshot(key string, snap *Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeLocked(key)
	n.snap = snap
	n.remember(snap)
	for w := range n.sotw {
		if resp := sotwRespond(snap, w.req, w.sub); resp != nil {
			w.ch <- resp // buffered, one response per watch
			delete(n.sotw, w)
		}
	}
	for w := range n.delta {
		if resp := deltaRespond(n.history(w.req.GetTypeUrl()), snap, w.req, w.sub); resp != nil {
			w.ch <- resp // buffered per type; one response per watch
			delete(n.delta, w)
		}
	}
}

// ClearSnapshot forgets node key and its watches (its last stream ended).
func (c *pushCache) ClearSnapshot(key string) {
	c.mu.Lock()
	delete(c.nodes, key)
	c.mu.Unlock()
}

// CreateWatch implements cache.ConfigWatcher for state-of-the-world
// streams.
func (c *pushCache) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	key := nodeHash{}.ID(req.GetNode())
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeLocked(key)
	if n.snap != nil {
		if resp := sotwRespond(n.snap, req, sub); resp != nil {
			ch <- resp
			return func() {}, nil
		}
	}
	w := &sotwWatch{req: req, sub: sub, ch: ch}
	n.sotw[w] = struct{}{}
	return func() {
		c.mu.Lock()
		delete(n.sotw, w)
		c.mu.Unlock()
	}, nil
}

// CreateDeltaWatch implements cache.ConfigWatcher for delta streams.
func (c *pushCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	key := nodeHash{}.ID(req.GetNode())
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeLocked(key)
	if n.snap != nil {
		if resp := deltaRespond(n.history(req.GetTypeUrl()), n.snap, req, sub); resp != nil {
			ch <- resp
			return func() {}, nil
		}
	}
	w := &deltaWatch{req: req, sub: sub, ch: ch}
	n.delta[w] = struct{}{}
	return func() {
		c.mu.Lock()
		delete(n.delta, w)
		c.mu.Unlock()
	}, nil
}

// Fetch implements cache.ConfigFetcher; the server refuses Fetch before
// it gets here.
func (c *pushCache) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errFetch
}

// sotwRespond returns the response a state-of-the-world watch gets from
// snap now, or nil when the stream is up to date.
func sotwRespond(snap *Snapshot, req *cache.Request, sub cache.Subscription) cache.Response {
	ts := snap.set(req.GetTypeUrl())
	if ts == nil {
		return nil // a type fedmesh does not serve: never answered
	}
	if !sub.IsWildcard() && !fullState(req.GetTypeUrl()) {
		return sotwRespondChanged(ts, req, sub)
	}
	if req.GetVersionInfo() == ts.version {
		returned := sub.ReturnedResources()
		if sub.IsWildcard() {
			if returned[fullSetKey] == ts.version {
				return nil
			}
		} else if !newlySubscribed(ts, sub.SubscribedResources(), returned) {
			return nil
		}
	}
	if sub.IsWildcard() {
		small, raw := ts.split()
		return &sotwResponse{req: req, version: ts.version, resources: small, raw: raw,
			returned: map[string]string{fullSetKey: ts.version}}
	}
	names := make([]string, 0, len(sub.SubscribedResources()))
	for name := range sub.SubscribedResources() {
		names = append(names, name)
	}
	sort.Strings(names)
	resp := &sotwResponse{req: req, version: ts.version, returned: make(map[string]string, len(names))}
	for _, name := range names {
		if r := ts.lookup(name); r != nil {
			resp.resources = append(resp.resources, r.any)
			resp.returned[name] = ts.version
		}
	}
	return resp
}

// fullState reports whether every state-of-the-world response of
// typeURL must carry every resource the client subscribes to: listeners
// and clusters (xDS protocol, "Resource types": absence from a response
// removes them). For the other types a response carries what changed.
func fullState(typeURL string) bool {
	return typeURL == resourcev3.ClusterType || typeURL == resourcev3.ListenerType
}

// sotwRespondChanged answers a named subscription to a type that is not
// full state: the subscribed resources whose version differs from the
// one the stream last received (returned holds per-resource versions
// for these types), nil when there are none. A NACK does not bring the
// same resources again; the next change does.
func sotwRespondChanged(ts *typeSet, req *cache.Request, sub cache.Subscription) cache.Response {
	subscribed, returned := sub.SubscribedResources(), sub.ReturnedResources()
	var changed []*resource
	for name := range subscribed {
		if r := ts.lookup(name); r != nil && returned[name] != r.version {
			changed = append(changed, r)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i].name < changed[j].name })
	resp := &sotwResponse{req: req, version: ts.version, returned: make(map[string]string, len(subscribed))}
	for name := range subscribed {
		if v, ok := returned[name]; ok {
			resp.returned[name] = v
		}
	}
	for _, r := range changed {
		resp.resources = append(resp.resources, r.any)
		resp.returned[r.name] = r.version
	}
	return resp
}

// newlySubscribed reports whether a subscribed resource exists in ts and
// was not returned to the stream yet.
func newlySubscribed(ts *typeSet, subscribed map[string]struct{}, returned map[string]string) bool {
	for name := range subscribed {
		if _, ok := returned[name]; !ok && ts.lookup(name) != nil {
			return true
		}
	}
	return false
}

// sotwResponse is a state-of-the-world response made of shared,
// marshalled resources.
type sotwResponse struct {
	req       *cache.Request
	version   string
	resources []*anypb.Any // shared: never changed
	// raw, when set, is more resources already encoded as the message's
	// field 2 (a shared part's bytes, never changed). They go out as
	// unknown fields, which the marshaller copies as they are; on the
	// wire they are entries of the same repeated field, so a client
	// decodes them as resources like the others. This skips encoding a
	// thousand Any messages per node; nothing on the server reads the
	// response's Resources after it is made (no OnStreamResponse).
	raw      []byte
	returned map[string]string
}

var _ cache.Response = (*sotwResponse)(nil)

// GetDiscoveryResponse returns a new message each time: the stream sets
// its nonce on it; the resources are shared.
func (r *sotwResponse) GetDiscoveryResponse() (*discoverygrpc.DiscoveryResponse, error) {
	out := &discoverygrpc.DiscoveryResponse{
		VersionInfo: r.version,
		Resources:   r.resources,
		TypeUrl:     r.req.GetTypeUrl(),
	}
	if len(r.raw) > 0 {
		out.ProtoReflect().SetUnknown(protoreflect.RawFields(r.raw))
	}
	return out, nil
}

func (r *sotwResponse) GetRequest() *discoverygrpc.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)                 { return r.version, nil }
func (r *sotwResponse) GetResponseVersion() string                  { return r.version }
func (r *sotwResponse) GetReturnedResources() map[string]string     { return r.returned }
func (r *sotwResponse) GetContext() context.Context                 { return context.Background() }
