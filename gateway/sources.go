package gateway

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// UnknownSource is the source_cluster of a connection from an address no
// federation member is known to use.
const UnknownSource = "unknown"

// sourceTable maps peer addresses to federation members by longest
// prefix match: one map lookup per distinct prefix length, so a table of
// thousands of endpoint addresses costs a connection a few lookups. It is
// immutable; the zero value matches nothing.
type sourceTable struct {
	bits     []int // distinct prefix lengths, longest first
	clusters map[netip.Prefix]string
}

// lookup returns the cluster of addr, "" when none.
func (t sourceTable) lookup(addr netip.Addr) string {
	if !addr.IsValid() {
		return ""
	}
	for _, b := range t.bits {
		p, err := addr.Prefix(b)
		if err != nil {
			continue // longer than addr's family
		}
		if c, ok := t.clusters[p]; ok {
			return c
		}
	}
	return ""
}

// parseSourceClusters reads the gateway listener's source clusters
// (xdsresource.WithGatewaySourceClusters): an address is a /32 or /128
// prefix. A prefix that two clusters claim is an error: it cannot say
// which one calls. A listener without them gives an empty table.
func parseSourceClusters(l *listenerv3.Listener) (sourceTable, error) {
	v := l.GetMetadata().GetFilterMetadata()[naming.MetadataNamespace].GetFields()[xdsresource.GatewaySourceClustersKey]
	if v == nil {
		return sourceTable{}, nil
	}
	s := v.GetStructValue()
	if s == nil {
		return sourceTable{}, fmt.Errorf("metadata %s.%s is not a struct", naming.MetadataNamespace, xdsresource.GatewaySourceClustersKey)
	}
	t := sourceTable{clusters: map[netip.Prefix]string{}}
	for _, cluster := range slices.Sorted(maps.Keys(s.GetFields())) {
		if !validClusterLabel(cluster) {
			return sourceTable{}, fmt.Errorf("source clusters: cluster name %q is not a DNS label", cluster)
		}
		lv := s.GetFields()[cluster].GetListValue()
		if lv == nil {
			return sourceTable{}, fmt.Errorf("source clusters: %s: not a list of addresses", cluster)
		}
		for _, a := range lv.GetValues() {
			p, err := parsePrefix(a.GetStringValue())
			if err != nil {
				return sourceTable{}, fmt.Errorf("source clusters: %s: %w", cluster, err)
			}
			if other, ok := t.clusters[p]; ok && other != cluster {
				return sourceTable{}, fmt.Errorf("source clusters: %s is claimed by both %s and %s", p, other, cluster)
			}
			t.clusters[p] = cluster
			if !slices.Contains(t.bits, p.Bits()) {
				t.bits = append(t.bits, p.Bits())
			}
		}
	}
	slices.SortFunc(t.bits, func(a, b int) int { return b - a })
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
