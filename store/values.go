package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/topology"
)

// MaxValueBytes is the largest value DecodeExport and the other decoders
// accept. A value larger than this came from a broken or hostile writer.
const MaxValueBytes = 1 << 20

// ErrBadValue is wrapped by every value decoding error.
var ErrBadValue = errors.New("bad value")

// ImportState is what a control plane remembers of its replication from one
// peer, stored at ImportStateKey (no lease).
type ImportState struct {
	// Revision is the peer's etcd revision up to which its exports were
	// seen and persisted; the replicator resumes its watch after it.
	Revision int64 `json:"revision"`
	// LastSync is when the peer last answered (a list or a watch update).
	LastSync time.Time `json:"lastSync"`
	// Locality is the peer's locality as last seen in gossip.
	Locality topology.Locality `json:"locality"`
	// GatewayAddress is host:port of the peer's east-west gateway as last
	// seen.
	GatewayAddress string `json:"gatewayAddress,omitempty"`
	// Catalog is the catalog address Revision was read from. A peer
	// whose control plane runs several replicas serves one store per
	// replica: a revision of one means nothing to another.
	Catalog string `json:"catalog,omitempty"`
}

// PeerImports is what a control plane persisted of one peer.
type PeerImports struct {
	State ImportState `json:"state"`
	// Exports are sorted by namespace, then name.
	Exports []catalog.Export `json:"exports"`
}

// Member is a known member of the federation, stored at MemberKey (no
// lease), so that a control plane can rejoin it after a long partition.
type Member struct {
	// Name is the member's cluster name.
	Name string `json:"name"`
	// SerfAddress is host:port of the member's gossip listener.
	SerfAddress string `json:"serfAddress"`
	// EtcdAddress is the URL of the member's etcd client endpoint.
	EtcdAddress string `json:"etcdAddress"`
	// LastSeen is when the member was last alive in gossip.
	LastSeen time.Time `json:"lastSeen"`
}

// EncodeExport renders an export as stored: a sorted copy as JSON, so that
// equal exports encode to equal bytes. It does not change e.
func EncodeExport(e catalog.Export) ([]byte, error) {
	c := e
	c.Service.Ports = append([]catalog.Port(nil), e.Service.Ports...)
	c.Endpoints = append([]catalog.Endpoint(nil), e.Endpoints...)
	c.Sort()
	return json.Marshal(&c)
}

// DecodeExport reads an export value stored at an export or import key and
// checks it: valid JSON, at most MaxValueBytes, catalog-valid, and naming
// the service its key names. cluster is the cluster the export must come
// from (the exporting cluster, not the importing one). Errors wrap
// ErrBadValue and, for catalog validation, catalog.ErrInvalid.
func DecodeExport(cluster string, key catalog.ServiceKey, value []byte) (catalog.Export, error) {
	if len(value) > MaxValueBytes {
		return catalog.Export{}, fmt.Errorf("%w: export %s of cluster %s: %d bytes, more than %d", ErrBadValue, key, cluster, len(value), MaxValueBytes)
	}
	var e catalog.Export
	if err := json.Unmarshal(value, &e); err != nil {
		return catalog.Export{}, fmt.Errorf("%w: export %s of cluster %s: %w", ErrBadValue, key, cluster, err)
	}
	if err := e.Validate(); err != nil {
		return catalog.Export{}, fmt.Errorf("%w: export %s of cluster %s: %w", ErrBadValue, key, cluster, err)
	}
	if got := e.Service.Key(); got != key {
		return catalog.Export{}, fmt.Errorf("%w: export stored at %s of cluster %s names service %s", ErrBadValue, key, cluster, got)
	}
	if e.Service.Cluster != cluster {
		return catalog.Export{}, fmt.Errorf("%w: export %s stored for cluster %s names cluster %q", ErrBadValue, key, cluster, e.Service.Cluster)
	}
	return e, nil
}

// DecodeExportKV reads an export stored at an export key (the form a peer's
// watch delivers): it parses the key, then decodes the value for the
// cluster the key names.
func DecodeExportKV(k string, value []byte) (catalog.Export, error) {
	cluster, key, err := ParseExportKey(k)
	if err != nil {
		return catalog.Export{}, err
	}
	return DecodeExport(cluster, key, value)
}

// decodeJSON reads a small JSON value, refusing oversized ones.
func decodeJSON(what string, value []byte, v any) error {
	if len(value) > MaxValueBytes {
		return fmt.Errorf("%w: %s: %d bytes, more than %d", ErrBadValue, what, len(value), MaxValueBytes)
	}
	if err := json.Unmarshal(value, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadValue, what, err)
	}
	return nil
}
