package xds

import (
	"encoding/binary"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// typeURLs are the resource types a Snapshot holds, in the order of
// typeCluster, typeEndpoint ...
var typeURLs = [...]string{
	resourcev3.ClusterType,
	resourcev3.EndpointType,
	resourcev3.ListenerType,
	resourcev3.RouteType,
	resourcev3.SecretType,
}

const (
	typeCluster = iota
	typeEndpoint
	typeListener
	typeRoute
	typeSecret
	numTypes
)

// typeIndex returns the index of typeURL in typeURLs, or -1.
func typeIndex(typeURL string) int {
	for i, u := range typeURLs {
		if u == typeURL {
			return i
		}
	}
	return -1
}

// resource is one generated resource together with its wire form. It is
// marshalled once, when built, and every response to every node that
// receives it shares the same bytes; nothing changes it afterwards.
type resource struct {
	name string
	msg  types.Resource
	// any is the resource as sent: type URL and deterministic bytes.
	any *anypb.Any
	// sum hashes the bytes; version is its hex form (the delta protocol's
	// per-resource version).
	sum     uint64
	version string
}

var marshalOptions = proto.MarshalOptions{Deterministic: true}

// newResource validates and marshals r. The error is a ValidationError;
// the resource is returned either way.
func newResource(r types.Resource) (*resource, error) {
	name := cache.GetResourceName(r)
	var err error
	if v, ok := r.(interface{ ValidateAll() error }); ok {
		if verr := v.ValidateAll(); verr != nil {
			err = &ValidationError{Reason: "resource", Resource: name, Err: verr}
		}
	}
	b, merr := marshalOptions.Marshal(r)
	if merr != nil && err == nil {
		err = &ValidationError{Reason: "resource", Resource: name, Err: merr}
	}
	h := fnv.New64a()
	h.Write(b)
	sum := h.Sum64()
	return &resource{
		name:    name,
		msg:     r,
		any:     &anypb.Any{TypeUrl: "type.googleapis.com/" + string(r.ProtoReflect().Descriptor().FullName()), Value: b},
		sum:     sum,
		version: strconv.FormatUint(sum, 16),
	}, err
}

// part is a group of resources of one type with a version: what one
// build step makes (the outbound clusters, one locality's endpoints, a
// node's inbound listeners). Parts are immutable once made and shared by
// every node whose snapshot contains them.
type part struct {
	items  []*resource
	byName map[string]*resource
	// anys are the items' wire forms in order: a response made of this
	// part alone sends this very slice.
	anys    []*anypb.Any
	version string
	// names hashes the items' names alone: what the snapshot's
	// consistency check depends on for endpoints (checkConsistent).
	names uint64
	err   error

	// wire is anys encoded as DiscoveryResponse field 2, made on first
	// use (see encodedResources).
	wire func() []byte
	// deltaWire is the items encoded as DeltaDiscoveryResponse field 2
	// (appendDeltaResource), made on first use.
	deltaWire func() []byte
}

// newPart builds, validates and marshals items. A part that failed
// validation carries the first error.
func newPart(items []types.Resource) *part {
	rs := make([]*resource, 0, len(items))
	var first error
	for _, r := range items {
		res, err := newResource(r)
		if err != nil && first == nil {
			first = err
		}
		rs = append(rs, res)
	}
	p := partOf(rs)
	p.err = first
	return p
}

// partOf groups already built resources; its version hashes theirs.
func partOf(rs []*resource) *part {
	p := &part{
		items:  rs,
		byName: make(map[string]*resource, len(rs)),
		anys:   make([]*anypb.Any, len(rs)),
	}
	h, hn := fnv.New64a(), fnv.New64a()
	var buf [8]byte
	for i, r := range rs {
		p.byName[r.name] = r
		p.anys[i] = r.any
		binary.LittleEndian.PutUint64(buf[:], r.sum)
		h.Write(buf[:])
		h.Write([]byte(r.name))
		hn.Write([]byte(r.name))
		hn.Write([]byte{0})
	}
	p.version = strconv.FormatUint(h.Sum64(), 16)
	p.names = hn.Sum64()
	p.wire = sync.OnceValue(func() []byte { return encodeResources(p.anys) })
	p.deltaWire = sync.OnceValue(func() []byte {
		var b []byte
		for _, r := range p.items {
			b = appendDeltaResource(b, r)
		}
		return b
	})
	return p
}

// discoveryResourcesField is the field number of resources in
// envoy.service.discovery.v3.DiscoveryResponse.
const discoveryResourcesField protowire.Number = 2

// encodeResources encodes anys as the repeated resources field of a
// DiscoveryResponse: what the proto marshaller would write for them.
func encodeResources(anys []*anypb.Any) []byte {
	var out []byte
	for _, a := range anys {
		n := protowire.SizeTag(1) + protowire.SizeBytes(len(a.TypeUrl)) + protowire.SizeTag(2) + protowire.SizeBytes(len(a.Value))
		out = protowire.AppendTag(out, discoveryResourcesField, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(n))
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendString(out, a.TypeUrl)
		out = protowire.AppendTag(out, 2, protowire.BytesType)
		out = protowire.AppendBytes(out, a.Value)
	}
	return out
}

// Snapshot is one node's resources: per type, a version and the shared
// parts that make it. It is immutable once built.
type Snapshot struct {
	sets [numTypes]typeSet
}

// typeSet is one type of a snapshot.
type typeSet struct {
	version string
	parts   []*part
}

func newTypeSet(ps []*part) typeSet {
	switch len(ps) {
	case 0:
		return typeSet{version: "empty"}
	case 1:
		return typeSet{version: ps[0].version, parts: ps}
	}
	vs := make([]string, len(ps))
	for i, p := range ps {
		vs[i] = p.version
	}
	return typeSet{version: strings.Join(vs, "."), parts: ps}
}

func (s *Snapshot) set(typeURL string) *typeSet {
	i := typeIndex(typeURL)
	if s == nil || i < 0 {
		return nil
	}
	return &s.sets[i]
}

// GetVersion returns the version of one type's resources: a hash of
// them, so equal resources have equal versions.
func (s *Snapshot) GetVersion(typeURL string) string {
	if ts := s.set(typeURL); ts != nil {
		return ts.version
	}
	return ""
}

// GetResources returns one type's resources by name. The messages are
// shared: callers must not change them.
func (s *Snapshot) GetResources(typeURL string) map[string]types.Resource {
	ts := s.set(typeURL)
	if ts == nil {
		return nil
	}
	out := make(map[string]types.Resource, ts.len())
	for _, p := range ts.parts {
		for _, r := range p.items {
			out[r.name] = r.msg
		}
	}
	return out
}

// Consistent checks that every EDS cluster has its endpoints and every
// RDS listener its route configuration, and nothing more (the snapshot
// cache's rule).
func (s *Snapshot) Consistent() error {
	cs := &cache.Snapshot{}
	for i, u := range typeURLs {
		rt := cache.GetResponseType(u)
		items := make(map[string]types.ResourceWithTTL)
		for _, p := range s.sets[i].parts {
			for _, r := range p.items {
				items[r.name] = types.ResourceWithTTL{Resource: r.msg}
			}
		}
		cs.Resources[rt] = cache.Resources{Version: s.sets[i].version, Items: items}
	}
	return cs.Consistent()
}

func (ts *typeSet) len() int {
	n := 0
	for _, p := range ts.parts {
		n += len(p.items)
	}
	return n
}

// lookup finds one resource by name.
func (ts *typeSet) lookup(name string) *resource {
	for _, p := range ts.parts {
		if r, ok := p.byName[name]; ok {
			return r
		}
	}
	return nil
}

// split returns every resource of the type for a whole-type response:
// the largest part as its shared encoded bytes, the others (a node's
// own inbound resources, say) as a few pointers, so that no response
// copies a shared part. The order of resources in a response carries
// no meaning.
func (ts *typeSet) split() (small []*anypb.Any, raw []byte) {
	big := -1
	for i, p := range ts.parts {
		if big < 0 || len(p.items) > len(ts.parts[big].items) {
			big = i
		}
	}
	for i, p := range ts.parts {
		if i == big {
			raw = p.wire()
		} else {
			small = append(small, p.anys...)
		}
	}
	return small, raw
}
