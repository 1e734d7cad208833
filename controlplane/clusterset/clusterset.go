package clusterset

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/fedmesh/fedmesh/catalog"
)

// DefaultPrefix is the clusterset prefix when none is configured: an
// RFC 1918 block outside the usual Service (10.96.0.0/12) and pod
// (10.244.0.0/16) ranges of kubeadm and kind.
var DefaultPrefix = netip.MustParsePrefix("10.254.0.0/16")

// ErrPrefix is returned for a prefix that cannot hold ClusterSetIPs.
var ErrPrefix = errors.New("clusterset prefix")

// CheckPrefix reports whether p can hold ClusterSetIPs: a valid prefix
// in canonical form (no host bits set) with at least two usable
// addresses.
func CheckPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("%w: %q is not a CIDR", ErrPrefix, p)
	}
	if p.Addr().Is4In6() {
		return fmt.Errorf("%w: %s is an IPv4-mapped IPv6 prefix; write it as IPv4", ErrPrefix, p)
	}
	if p.Masked() != p {
		return fmt.Errorf("%w: %s has host bits set (did you mean %s?)", ErrPrefix, p, p.Masked())
	}
	if usable(p) < 2 {
		return fmt.Errorf("%w: %s has fewer than two usable addresses", ErrPrefix, p)
	}
	return nil
}

// ParsePrefix parses and checks a clusterset CIDR.
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %w", ErrPrefix, err)
	}
	if err := CheckPrefix(p); err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

// maxHostBits caps the slots of an IPv6 prefix at 2^63.
const maxHostBits = 63

// usable is the number of addresses of p that are handed out.
func usable(p netip.Prefix) uint64 {
	host := p.Addr().BitLen() - p.Bits()
	if host > maxHostBits {
		host = maxHostBits
	}
	n := uint64(1) << uint(host)
	if p.Addr().Is4() {
		if n < 4 {
			return 0 // a /31 or /32 has no network and broadcast to skip
		}
		return n - 2 // network and broadcast
	}
	return n - 1 // subnet-router anycast
}

// Home returns the home slot of key among n slots (n > 0).
func Home(key catalog.ServiceKey, n uint64) uint64 {
	sum := sha256.Sum256([]byte(key.Namespace + "/" + key.Name))
	return binary.BigEndian.Uint64(sum[:8]) % n
}

// addr returns the address of slot i of p: the network address plus
// i+1.
func addr(p netip.Prefix, i uint64) netip.Addr {
	b := p.Addr().As16()
	lo := binary.BigEndian.Uint64(b[8:]) + i + 1 // host bits of p are zero and i+1 < 2^63
	binary.BigEndian.PutUint64(b[8:], lo)
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// Allocate returns the ClusterSetIP of every service in keys (duplicates
// count once) within p, as the package documentation describes. It is
// pure: the same prefix and the same set of keys, in any order, give the
// same map. When p is full, the keys that found no slot are missing from
// the map. p must pass CheckPrefix; Allocate returns nil otherwise.
func Allocate(p netip.Prefix, keys []catalog.ServiceKey) map[catalog.ServiceKey]netip.Addr {
	if CheckPrefix(p) != nil {
		return nil
	}
	n := usable(p)
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, func(a, b catalog.ServiceKey) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	sorted = slices.Compact(sorted)
	out := make(map[catalog.ServiceKey]netip.Addr, len(sorted))
	taken := make(map[uint64]bool, len(sorted))
	for _, k := range sorted {
		if uint64(len(taken)) == n {
			break // full
		}
		slot := Home(k, n)
		for taken[slot] {
			slot++
			if slot == n {
				slot = 0
			}
		}
		taken[slot] = true
		out[k] = addr(p, slot)
	}
	return out
}

// FromView allocates the ClusterSetIPs of the services of v. Headless
// services get none (MCS: a headless ServiceImport has no ips) and take
// no slot.
func FromView(p netip.Prefix, v *catalog.View) map[catalog.ServiceKey]netip.Addr {
	if v == nil {
		return nil
	}
	keys := make([]catalog.ServiceKey, 0, len(v.Services))
	for i := range v.Services {
		if v.Services[i].Type != catalog.Headless {
			keys = append(keys, v.Services[i].Key())
		}
	}
	return Allocate(p, keys)
}
