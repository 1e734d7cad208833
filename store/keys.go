package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fedmesh/fedmesh/catalog"
)

// Root is the prefix of every key fedmesh writes. The version segment
// changes only with an incompatible change of the layout or of the values.
const Root = "/fedmesh/v1/"

// The kinds of key under a cluster's prefix.
const (
	kindExports     = "exports"
	kindImports     = "imports"
	kindImportState = "importstate"
	kindImportGen   = "importgen"
	kindMembers     = "members"
)

// ErrBadKey is wrapped by every key parsing error.
var ErrBadKey = errors.New("bad key")

// ClusterPrefix is /fedmesh/v1/clusters/<cluster>/: everything one cluster's
// control plane writes.
func ClusterPrefix(cluster string) string {
	return Root + "clusters/" + cluster + "/"
}

// ExportsPrefix is /fedmesh/v1/clusters/<cluster>/exports/: the cluster's
// own exports, written under its control plane's lease. It is the only
// prefix a peer may read.
func ExportsPrefix(cluster string) string {
	return ClusterPrefix(cluster) + kindExports + "/"
}

// ExportKey is /fedmesh/v1/clusters/<cluster>/exports/<namespace>/<name>.
func ExportKey(cluster string, key catalog.ServiceKey) string {
	return ExportsPrefix(cluster) + key.Namespace + "/" + key.Name
}

// ImportsPrefix is /fedmesh/v1/clusters/<cluster>/imports/: what the
// cluster imported from all its peers.
func ImportsPrefix(cluster string) string {
	return ClusterPrefix(cluster) + kindImports + "/"
}

// PeerImportsPrefix is /fedmesh/v1/clusters/<cluster>/imports/<peer>/: what
// the cluster imported from one peer.
func PeerImportsPrefix(cluster, peer string) string {
	return ImportsPrefix(cluster) + peer + "/"
}

// ImportKey is
// /fedmesh/v1/clusters/<cluster>/imports/<peer>/<namespace>/<name>.
func ImportKey(cluster, peer string, key catalog.ServiceKey) string {
	return PeerImportsPrefix(cluster, peer) + key.Namespace + "/" + key.Name
}

// ImportGenerationsPrefix is /fedmesh/v1/clusters/<cluster>/importgen/:
// the imports written as numbered generations, for sets too large for one
// transaction (see SetImports).
func ImportGenerationsPrefix(cluster string) string {
	return ClusterPrefix(cluster) + kindImportGen + "/"
}

// PeerImportGenerationsPrefix is
// /fedmesh/v1/clusters/<cluster>/importgen/<peer>/: every generation of
// one peer's imports.
func PeerImportGenerationsPrefix(cluster, peer string) string {
	return ImportGenerationsPrefix(cluster) + peer + "/"
}

// ImportGenerationPrefix is
// /fedmesh/v1/clusters/<cluster>/importgen/<peer>/<generation>/, the
// generation a decimal number from 1.
func ImportGenerationPrefix(cluster, peer string, gen uint64) string {
	return PeerImportGenerationsPrefix(cluster, peer) + strconv.FormatUint(gen, 10) + "/"
}

// ImportGenerationKey is
// /fedmesh/v1/clusters/<cluster>/importgen/<peer>/<generation>/<namespace>/<name>.
func ImportGenerationKey(cluster, peer string, gen uint64, key catalog.ServiceKey) string {
	return ImportGenerationPrefix(cluster, peer, gen) + key.Namespace + "/" + key.Name
}

// ImportStatePrefix is /fedmesh/v1/clusters/<cluster>/importstate/.
func ImportStatePrefix(cluster string) string {
	return ClusterPrefix(cluster) + kindImportState + "/"
}

// ImportStateKey is /fedmesh/v1/clusters/<cluster>/importstate/<peer>.
func ImportStateKey(cluster, peer string) string {
	return ImportStatePrefix(cluster) + peer
}

// MembersPrefix is /fedmesh/v1/clusters/<cluster>/members/.
func MembersPrefix(cluster string) string {
	return ClusterPrefix(cluster) + kindMembers + "/"
}

// MemberKey is /fedmesh/v1/clusters/<cluster>/members/<member>.
func MemberKey(cluster, member string) string {
	return MembersPrefix(cluster) + member
}

// ParseExportKey reads a key built by ExportKey.
func ParseExportKey(k string) (cluster string, key catalog.ServiceKey, err error) {
	parts, err := splitKey(k, kindExports, 2)
	if err != nil {
		return "", catalog.ServiceKey{}, err
	}
	key = catalog.ServiceKey{Namespace: parts[1], Name: parts[2]}
	if err := checkServiceKey(k, key); err != nil {
		return "", catalog.ServiceKey{}, err
	}
	return parts[0], key, nil
}

// ParseImportKey reads a key built by ImportKey.
func ParseImportKey(k string) (cluster, peer string, key catalog.ServiceKey, err error) {
	parts, err := splitKey(k, kindImports, 3)
	if err != nil {
		return "", "", catalog.ServiceKey{}, err
	}
	if why := catalog.IsDNS1123Label(parts[1]); why != "" {
		return "", "", catalog.ServiceKey{}, fmt.Errorf("%w %q: peer %q %s", ErrBadKey, k, parts[1], why)
	}
	key = catalog.ServiceKey{Namespace: parts[2], Name: parts[3]}
	if err := checkServiceKey(k, key); err != nil {
		return "", "", catalog.ServiceKey{}, err
	}
	return parts[0], parts[1], key, nil
}

// ParseImportGenerationKey reads a key built by ImportGenerationKey.
func ParseImportGenerationKey(k string) (cluster, peer string, gen uint64, key catalog.ServiceKey, err error) {
	parts, err := splitKey(k, kindImportGen, 4)
	if err != nil {
		return "", "", 0, catalog.ServiceKey{}, err
	}
	if why := catalog.IsDNS1123Label(parts[1]); why != "" {
		return "", "", 0, catalog.ServiceKey{}, fmt.Errorf("%w %q: peer %q %s", ErrBadKey, k, parts[1], why)
	}
	gen, perr := strconv.ParseUint(parts[2], 10, 64)
	if perr != nil || gen == 0 || strconv.FormatUint(gen, 10) != parts[2] {
		return "", "", 0, catalog.ServiceKey{}, fmt.Errorf("%w %q: generation %q is not a decimal number from 1", ErrBadKey, k, parts[2])
	}
	key = catalog.ServiceKey{Namespace: parts[3], Name: parts[4]}
	if err := checkServiceKey(k, key); err != nil {
		return "", "", 0, catalog.ServiceKey{}, err
	}
	return parts[0], parts[1], gen, key, nil
}

// ParseImportStateKey reads a key built by ImportStateKey.
func ParseImportStateKey(k string) (cluster, peer string, err error) {
	parts, err := splitKey(k, kindImportState, 1)
	if err != nil {
		return "", "", err
	}
	if why := catalog.IsDNS1123Label(parts[1]); why != "" {
		return "", "", fmt.Errorf("%w %q: peer %q %s", ErrBadKey, k, parts[1], why)
	}
	return parts[0], parts[1], nil
}

// ParseMemberKey reads a key built by MemberKey.
func ParseMemberKey(k string) (cluster, member string, err error) {
	parts, err := splitKey(k, kindMembers, 1)
	if err != nil {
		return "", "", err
	}
	if why := catalog.IsDNS1123Label(parts[1]); why != "" {
		return "", "", fmt.Errorf("%w %q: member %q %s", ErrBadKey, k, parts[1], why)
	}
	return parts[0], parts[1], nil
}

// splitKey checks Root, "clusters", a valid cluster name and the kind, and
// returns the cluster followed by exactly n further non-empty segments.
func splitKey(k, kind string, n int) ([]string, error) {
	rest, ok := strings.CutPrefix(k, Root+"clusters/")
	if !ok {
		return nil, fmt.Errorf("%w %q: does not start with %sclusters/", ErrBadKey, k, Root)
	}
	segs := strings.Split(rest, "/")
	if len(segs) != n+2 {
		return nil, fmt.Errorf("%w %q: want %d segments after %sclusters/, have %d", ErrBadKey, k, n+2, Root, len(segs))
	}
	if why := catalog.IsDNS1123Label(segs[0]); why != "" {
		return nil, fmt.Errorf("%w %q: cluster %q %s", ErrBadKey, k, segs[0], why)
	}
	if segs[1] != kind {
		return nil, fmt.Errorf("%w %q: kind %q is not %q", ErrBadKey, k, segs[1], kind)
	}
	return append(segs[:1:1], segs[2:]...), nil
}

func checkServiceKey(k string, key catalog.ServiceKey) error {
	if why := catalog.IsDNS1123Label(key.Namespace); why != "" {
		return fmt.Errorf("%w %q: namespace %q %s", ErrBadKey, k, key.Namespace, why)
	}
	if why := catalog.IsServiceName(key.Name); why != "" {
		return fmt.Errorf("%w %q: name %q %s", ErrBadKey, k, key.Name, why)
	}
	return nil
}
