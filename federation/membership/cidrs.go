package membership

import (
	"fmt"
	"net/netip"
	"strings"
)

// TagCIDRs carries the address ranges a cluster's workloads and nodes
// send from (its --cluster-cidrs): comma-separated CIDR prefixes, e.g.
// "10.244.0.0/16,192.168.10.0/24". Gateways of other clusters label
// connections from these ranges with the cluster's name. The tag is
// optional.
const TagCIDRs = "cidrs"

// Bounds of the cidrs tag: every member's tags share memberlist's
// 512-byte metadata limit, so a cluster declares a few ranges, not a list
// of hosts.
const (
	// MaxCIDRs is the most prefixes a cluster may declare.
	MaxCIDRs = 8
	// MaxCIDRTagLen is the longest encoded cidrs tag, in bytes.
	MaxCIDRTagLen = 200
)

// ReasonBadCIDRs is the reason label of
// fedmesh_federation_tags_ignored_total for a malformed cidrs tag.
const ReasonBadCIDRs = "bad_cidrs"

// ParseCIDRs reads a cluster's declared address ranges, as the
// --cluster-cidrs flag and the cidrs tag give them. Every prefix must be
// in canonical form (no host bits set: 10.1.0.0/16, not 10.1.2.3/16),
// distinct, at most MaxCIDRs of them, and their encoding at most
// MaxCIDRTagLen bytes. The result keeps the input's order.
func ParseCIDRs(vals []string) ([]netip.Prefix, error) {
	if len(vals) > MaxCIDRs {
		return nil, fmt.Errorf("%d CIDRs: at most %d are allowed", len(vals), MaxCIDRs)
	}
	out := make([]netip.Prefix, 0, len(vals))
	for _, v := range vals {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix (want ADDRESS/BITS, e.g. 10.244.0.0/16)", v)
		}
		if p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return nil, fmt.Errorf("%q: want a plain IPv4 or IPv6 prefix", v)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%q has host bits set: did you mean %s?", v, p.Masked())
		}
		for _, q := range out {
			if q == p {
				return nil, fmt.Errorf("%q is given twice", v)
			}
		}
		out = append(out, p)
	}
	if n := len(encodeCIDRs(out)); n > MaxCIDRTagLen {
		return nil, fmt.Errorf("CIDRs take %d bytes in the gossip tags: at most %d are allowed", n, MaxCIDRTagLen)
	}
	return out, nil
}

// encodeCIDRs is the value of the cidrs tag.
func encodeCIDRs(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// DecodeCIDRs reads the cidrs tag of a member: none when the tag is
// absent or empty, a *TagError (ReasonBadCIDRs) when it is malformed.
// DecodeTags ignores a malformed cidrs tag (the member stays valid, its
// ranges unknown); the event loop counts it.
func DecodeCIDRs(tags map[string]string) ([]netip.Prefix, error) {
	v := tags[TagCIDRs]
	if v == "" {
		return nil, nil
	}
	if len(v) > MaxCIDRTagLen {
		return nil, &TagError{Reason: ReasonBadCIDRs, Tag: TagCIDRs, Detail: fmt.Sprintf("%d bytes is longer than %d", len(v), MaxCIDRTagLen)}
	}
	ps, err := ParseCIDRs(strings.Split(v, ","))
	if err != nil {
		return nil, &TagError{Reason: ReasonBadCIDRs, Tag: TagCIDRs, Detail: err.Error()}
	}
	return ps, nil
}
