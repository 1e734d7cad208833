package topology

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrBadPolicy is wrapped by every error of Policy.Validate.
var ErrBadPolicy = errors.New("bad failover policy")

// FailoverRule sends a client in region From to region To before any other
// region, as Istio's localityLbSetting.failover does. Several rules with the
// same From rank their To regions in the order given.
type FailoverRule struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Policy is the configurable failover order. The zero Policy gives the
// default order described in the package documentation.
type Policy struct {
	// Failover lists explicit region failover targets; they rank ahead of
	// every other remote region, in list order.
	Failover []FailoverRule `json:"failover,omitempty"`
	// FailoverPriority lists label keys, most significant first, as
	// Istio's failoverPriority: an endpoint whose labels equal the
	// client's on the first N keys ranks ahead of one matching on fewer.
	FailoverPriority []string `json:"failoverPriority,omitempty"`
	// RTT holds measured round trip times from the client, keyed by
	// cluster name or by region name. A remote region's RTT is the lowest
	// RTT of its endpoints' clusters, or else the region's own entry.
	RTT map[string]time.Duration `json:"rtt,omitempty"`
}

// Validate reports the first thing wrong with the policy, naming it.
func (p Policy) Validate() error {
	seen := make(map[FailoverRule]bool, len(p.Failover))
	for i, r := range p.Failover {
		switch {
		case r.From == "" || r.To == "":
			return fmt.Errorf("%w: failover rule %d: from and to must both be set", ErrBadPolicy, i)
		case r.From == r.To:
			return fmt.Errorf("%w: failover rule %d: from and to are both %q", ErrBadPolicy, i, r.From)
		case seen[r]:
			return fmt.Errorf("%w: failover rule %d: %s -> %s given twice", ErrBadPolicy, i, r.From, r.To)
		}
		seen[r] = true
	}
	keys := make(map[string]bool, len(p.FailoverPriority))
	for i, k := range p.FailoverPriority {
		switch {
		case k == "":
			return fmt.Errorf("%w: failoverPriority %d: empty label key", ErrBadPolicy, i)
		case keys[k]:
			return fmt.Errorf("%w: failoverPriority %d: label key %q given twice", ErrBadPolicy, i, k)
		}
		keys[k] = true
	}
	for name, d := range p.RTT {
		if d < 0 {
			return fmt.Errorf("%w: rtt of %q is negative (%v)", ErrBadPolicy, name, d)
		}
	}
	return nil
}

// Node is a client or an endpoint as topology sees it: where it runs and
// the labels FailoverPriority compares.
type Node struct {
	Locality Locality
	Labels   map[string]string
}

// Rank is one endpoint's place in the failover order.
type Rank struct {
	// Priority is the endpoint's level, 0 being the most preferred;
	// levels are dense (0, 1, 2, ... with no gaps).
	Priority int `json:"priority"`
	// Reason says in a few words why the endpoint has this priority.
	Reason string `json:"reason"`
}

// Locality tiers, most preferred first.
const (
	tierSameClusterZone = iota
	tierSameZone
	tierSameRegion
	tierOtherRegion
)

// rankKey orders endpoints; endpoints with equal keys share a level.
type rankKey struct {
	labelMiss int           // FailoverPriority keys not matched
	tier      int           // locality tier
	failover  int           // position among failover targets; len(rules) if none
	noRTT     int           // 1 when the region has no RTT measurement
	rtt       time.Duration // region's RTT
	region    string        // remote region name (other-region tier only)
}

func compareKeys(a, b *rankKey) int {
	if c := cmp.Compare(a.labelMiss, b.labelMiss); c != 0 {
		return c
	}
	if c := cmp.Compare(a.tier, b.tier); c != 0 {
		return c
	}
	if c := cmp.Compare(a.failover, b.failover); c != 0 {
		return c
	}
	if c := cmp.Compare(a.noRTT, b.noRTT); c != 0 {
		return c
	}
	if c := cmp.Compare(a.rtt, b.rtt); c != 0 {
		return c
	}
	return strings.Compare(a.region, b.region)
}

// Prioritize ranks each endpoint relative to client; the result is aligned
// with endpoints. It does not check the policy: call Validate on policies
// from outside input first (an invalid policy still ranks deterministically).
func (p Policy) Prioritize(client Node, endpoints []Node) []Rank {
	if len(endpoints) == 0 {
		return nil
	}
	// Failover targets of the client's region, in rule order.
	var targets []string
	for _, r := range p.Failover {
		if r.From == client.Locality.Region && !slices.Contains(targets, r.To) {
			targets = append(targets, r.To)
		}
	}
	// RTT of each remote region: lowest of its clusters, else its own.
	var regionRTT map[string]time.Duration
	if len(p.RTT) > 0 {
		regionRTT = make(map[string]time.Duration)
		for _, e := range endpoints {
			if d, ok := p.RTT[e.Locality.Cluster]; ok {
				if old, seen := regionRTT[e.Locality.Region]; !seen || d < old {
					regionRTT[e.Locality.Region] = d
				}
			}
		}
		for _, e := range endpoints {
			if _, ok := regionRTT[e.Locality.Region]; !ok {
				if d, ok := p.RTT[e.Locality.Region]; ok {
					regionRTT[e.Locality.Region] = d
				}
			}
		}
	}

	keys := make([]rankKey, len(endpoints))
	order := make([]int, len(endpoints))
	for i, e := range endpoints {
		keys[i] = p.key(client, e, targets, regionRTT)
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return compareKeys(&keys[a], &keys[b]) })
	ranks := make([]Rank, len(endpoints))
	level := -1
	var reason string
	for n, i := range order {
		if n == 0 || compareKeys(&keys[order[n-1]], &keys[i]) != 0 {
			level++
			reason = p.reason(client, keys[i], len(targets))
		}
		ranks[i] = Rank{Priority: level, Reason: reason}
	}
	return ranks
}

func (p Policy) key(client, e Node, targets []string, regionRTT map[string]time.Duration) rankKey {
	var k rankKey
	matched := 0
	for _, label := range p.FailoverPriority {
		cv, cok := client.Labels[label]
		ev, eok := e.Labels[label]
		if !cok || !eok || cv != ev {
			break
		}
		matched++
	}
	k.labelMiss = len(p.FailoverPriority) - matched
	c, l := client.Locality, e.Locality
	switch {
	case l.Region == c.Region && l.Zone == c.Zone && l.Cluster == c.Cluster:
		k.tier = tierSameClusterZone
	case l.Region == c.Region && l.Zone == c.Zone && l.Zone != "":
		k.tier = tierSameZone
	case l.Region == c.Region:
		k.tier = tierSameRegion
	default:
		k.tier = tierOtherRegion
		k.region = l.Region
		k.failover = len(targets)
		if i := slices.Index(targets, l.Region); i >= 0 {
			k.failover = i
		}
		k.noRTT = 1
		if d, ok := regionRTT[l.Region]; ok {
			k.noRTT, k.rtt = 0, d
		}
	}
	return k
}

func (p Policy) reason(client Node, k rankKey, targets int) string {
	var b strings.Builder
	if n := len(p.FailoverPriority); n > 0 {
		if k.labelMiss == n {
			b.WriteString("labels match none of " + strings.Join(p.FailoverPriority, ","))
		} else {
			b.WriteString("labels match " + strings.Join(p.FailoverPriority[:n-k.labelMiss], ","))
		}
		b.WriteString("; ")
	}
	c := client.Locality
	switch k.tier {
	case tierSameClusterZone:
		b.WriteString("same cluster and zone")
	case tierSameZone:
		b.WriteString("same zone " + c.Zone + " in another cluster")
	case tierSameRegion:
		b.WriteString("same region " + orUnset(c.Region))
	default:
		if k.failover < targets {
			b.WriteString("failover region " + orUnset(k.region) + " from " + orUnset(c.Region))
		} else {
			b.WriteString("other region " + orUnset(k.region))
		}
		if k.noRTT == 0 {
			b.WriteString(", rtt " + k.rtt.Round(time.Microsecond).String())
		}
	}
	return b.String()
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}
