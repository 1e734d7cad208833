package membership

import (
	"fmt"

	"github.com/hashicorp/serf/serf"
)

// mergeDelegate refuses gossip state in which a second member claims a
// cluster name that a live member already holds. serf calls it for the
// state exchanged on join (push-pull, on both sides) and for every alive
// message, while memberlist holds its node lock: it only reads the
// membership's own identity table.
type mergeDelegate Membership

var _ serf.MergeDelegate = (*mergeDelegate)(nil)

// NotifyMerge implements serf.MergeDelegate.
func (d *mergeDelegate) NotifyMerge(members []*serf.Member) error {
	m := (*Membership)(d)
	for _, sm := range members {
		addr := memberAddr(*sm)
		iid := sm.Tags[TagInstanceID]
		if sm.Name == m.name {
			// A restart of this member on another address keeps neither
			// address nor instance id: only an impostor differs in both.
			if m.localAddr != "" && addr != m.localAddr && iid != m.local.InstanceID {
				return m.refuseDuplicate(sm.Name, addr, m.localAddr)
			}
			continue
		}
		m.mu.Lock()
		p, ok := m.peers[sm.Name]
		m.mu.Unlock()
		if !ok || (p.status != serf.StatusAlive && p.status != serf.StatusLeaving) {
			continue // a new member, or a restart of one that failed or left
		}
		if addr != p.addr && iid != p.iid {
			return m.refuseDuplicate(sm.Name, addr, p.addr)
		}
	}
	return nil
}

func (m *Membership) refuseDuplicate(name, claimant, holder string) error {
	m.dupRefusals.Add(1)
	m.met.joinRefused.WithLabelValues("duplicate_name").Inc()
	m.log.Warn("refusing gossip from a second member claiming an existing cluster name",
		"member", name, "claimant", claimant, "holder", holder)
	return fmt.Errorf("%w: %q is held by %s, claimed by %s", ErrDuplicateName, name, holder, claimant)
}
