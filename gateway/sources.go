package gateway

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// UnknownSource is the source_cluster of a connection from an address no
// federation member is known to use.
const UnknownSource = "unknown"

// sourcePrefix says that connections from prefix come from cluster.
type sourcePrefix struct {
	prefix  netip.Prefix
	cluster string
}

// sourceTable maps peer addresses to federation members, longest prefix
// first. It is immutable.
type sourceTable []sourcePrefix

// lookup returns the cluster of addr, "" when none.
func (t sourceTable) lookup(addr netip.Addr) string {
	for _, sp := range t {
		if sp.prefix.Contains(addr) {
			return sp.cluster
		}
	}
	return ""
}

// parseSourceClusters reads the gateway listener's source clusters
// (xdsresource.WithGatewaySourceClusters): an address is a /32 or /128
// prefix. A listener without them gives an empty table.
func parseSourceClusters(l *listenerv3.Listener) (sourceTable, error) {
	v := l.GetMetadata().GetFilterMetadata()[naming.MetadataNamespace].GetFields()[xdsresource.GatewaySourceClustersKey]
	if v == nil {
		return nil, nil
	}
	s := v.GetStructValue()
	if s == nil {
		return nil, fmt.Errorf("metadata %s.%s is not a struct", naming.MetadataNamespace, xdsresource.GatewaySourceClustersKey)
	}
	var t sourceTable
	for cluster, addrs := range s.GetFields() {
		if !validClusterLabel(cluster) {
			return nil, fmt.Errorf("source clusters: cluster name %q is not a DNS label", cluster)
		}
		lv := addrs.GetListValue()
		if lv == nil {
			return nil, fmt.Errorf("source clusters: %s: not a list of addresses", cluster)
		}
		for _, a := range lv.GetValues() {
			p, err := parsePrefix(a.GetStringValue())
			if err != nil {
				return nil, fmt.Errorf("source clusters: %s: %w", cluster, err)
			}
			t = append(t, sourcePrefix{prefix: p, cluster: cluster})
		}
	}
	sort.Slice(t, func(i, j int) bool {
		if t[i].prefix.Bits() != t[j].prefix.Bits() {
			return t[i].prefix.Bits() > t[j].prefix.Bits()
		}
		return t[i].prefix.String() < t[j].prefix.String()
	})
	return t, nil
}

// parsePrefix reads an address or a CIDR prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validClusterLabel reports whether a cluster name is a DNS label (RFC
// 1123), as cluster names are; it keeps the label values bounded and
// printable.
func validClusterLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
