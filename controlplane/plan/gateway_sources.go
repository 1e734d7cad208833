package plan

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/fedmesh/fedmesh/internal/hostport"
)

// GatewaySourceClusters is the table a gateway of the local cluster
// labels connections with (the source_cluster of its metrics): for every
// cluster of the view, the addresses its traffic comes from, as CIDR
// prefixes or single addresses. A cluster's entries are
//
//   - the CIDRs it declares (ClusterInfo.CIDRs, its --cluster-cidrs),
//   - its gateway's address, when that is an IP address,
//   - the addresses of its endpoints in the view, except those one of its
//     own CIDRs already covers (the longest declared prefix holding them
//     is its own).
//
// A prefix that two clusters claim says nothing about either and is left
// out of both, so connections from it count as unknown rather than as
// the wrong cluster. Overlapping prefixes of different lengths stay: the
// gateway takes the longest match. Clusters with no entry are absent;
// each list is sorted. The result is nil when nothing is known.
func (p *Plan) GatewaySourceClusters() map[string][]string {
	claims := map[netip.Prefix][]string{}
	claim := func(pfx netip.Prefix, cluster string) {
		if !slices.Contains(claims[pfx], cluster) {
			claims[pfx] = append(claims[pfx], cluster)
		}
	}
	hosts := map[netip.Prefix][]string{} // host prefixes, checked against the declared ones below
	host := func(addr, cluster string) {
		a, err := netip.ParseAddr(addr)
		if err != nil || cluster == "" {
			return
		}
		a = a.Unmap()
		pfx := netip.PrefixFrom(a, a.BitLen())
		if !slices.Contains(hosts[pfx], cluster) {
			hosts[pfx] = append(hosts[pfx], cluster)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.view.Clusters)) {
		ci := p.view.Clusters[name]
		for _, pfx := range ci.CIDRs {
			if pfx.IsValid() {
				claim(pfx.Masked(), name)
			}
		}
		if h, _, err := hostport.Split(ci.GatewayAddress); err == nil {
			host(h, name)
		}
	}
	for i := range p.view.Services {
		for _, ep := range p.view.Services[i].Endpoints {
			host(ep.Address, ep.Locality.Cluster)
		}
	}
	declared := slices.Collect(maps.Keys(claims))
	// Longest first, so that the first declared prefix holding an
	// address is the one the gateway would match.
	slices.SortFunc(declared, func(a, b netip.Prefix) int { return b.Bits() - a.Bits() })
	for pfx, cs := range hosts {
		if len(cs) == 1 && pfx.Bits() > 0 {
			if owner := longestClaim(declared, claims, pfx.Addr()); len(owner) == 1 && owner[0] == cs[0] {
				continue // the cluster's own range says it already
			}
		}
		for _, c := range cs {
			claim(pfx, c)
		}
	}

	var out map[string][]string
	for pfx, cs := range claims {
		if len(cs) != 1 {
			continue
		}
		if out == nil {
			out = map[string][]string{}
		}
		s := pfx.String()
		if pfx.IsSingleIP() {
			s = pfx.Addr().String()
		}
		out[cs[0]] = append(out[cs[0]], s)
	}
	for _, l := range out {
		slices.Sort(l)
	}
	return out
}

// longestClaim returns the claimants of the longest of declared (sorted
// longest first) that holds a, nil when none does.
func longestClaim(declared []netip.Prefix, claims map[netip.Prefix][]string, a netip.Addr) []string {
	for _, pfx := range declared {
		// Two distinct prefixes of one length never both hold a: the
		// first that does is the longest match.
		if pfx.Contains(a) {
			return claims[pfx]
		}
	}
	return nil
}
