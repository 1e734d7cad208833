package balancer

import (
	"time"
)

// Snapshot is a balancer's state for the admin /endpoints page.
type Snapshot struct {
	// Name is the balancer's Config.Name.
	Name string `json:"name"`
	// Policy is the policy within a priority.
	Policy string `json:"policy"`
	// ActiveRequests and ActiveRetries are outstanding now.
	ActiveRequests int64 `json:"activeRequests"`
	ActiveRetries  int64 `json:"activeRetries"`
	// Levels are the priorities in order, with their traffic shares.
	Levels []LevelState `json:"levels"`
	// Hosts are in the order of the last Update.
	Hosts []HostState `json:"hosts"`
}

// LevelState is one priority level.
type LevelState struct {
	// Priority is the control plane's priority value.
	Priority int `json:"priority"`
	// Hosts and Available count the level's hosts and those healthy and
	// not ejected.
	Hosts     int `json:"hosts"`
	Available int `json:"available"`
	// Percent is the share of new requests sent to the level.
	Percent uint32 `json:"percent"`
	// Panic is true when the level uses all its hosts regardless of
	// health (Envoy's panic threshold).
	Panic bool `json:"panic"`
}

// HostState is one host.
type HostState struct {
	Endpoint Endpoint `json:"endpoint"`
	// Level is the index of the host's priority in Snapshot.Levels.
	Level int `json:"level"`
	// Active is the number of outstanding requests.
	Active int64 `json:"active"`
	// Latency is the current peak EWMA estimate (0 before any sample,
	// and always 0 with the LeastRequest policy).
	Latency time.Duration `json:"latency"`
	// Available is true when the host is healthy and not ejected.
	Available bool `json:"available"`
	// EjectedUntil is the end of the current ejection (zero if none).
	EjectedUntil time.Time `json:"ejectedUntil,omitzero"`
	// Ejections is the ejection-time multiplier: ejections so far, minus
	// one per outlier interval spent un-ejected.
	Ejections int `json:"ejections"`
	// Why says in words why the host is or is not available.
	Why string `json:"why"`
}

// Snapshot returns the balancer's current state. It takes the balancer's
// lock briefly; it is meant for admin pages, not the data path.
func (b *Balancer) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	s := b.state.Load()
	if now >= s.nextExpiry {
		s = b.publishLocked(now)
	}
	snap := Snapshot{
		Name:           b.cfg.Name,
		Policy:         b.cfg.Policy.String(),
		ActiveRequests: b.active.Load(),
		ActiveRetries:  b.retries.Load(),
		Levels:         make([]LevelState, len(s.levels)),
	}
	levelOf := map[*Host]int{}
	for i, lv := range s.levels {
		snap.Levels[i] = LevelState{
			Priority:  lv.priority,
			Hosts:     len(lv.hosts),
			Available: len(lv.avail),
			Percent:   s.load.Healthy[i] + s.load.Degraded[i],
			Panic:     s.load.Panic[i],
		}
		for _, h := range lv.hosts {
			levelOf[h] = i
		}
	}
	for _, h := range s.hosts {
		ep := h.Endpoint()
		hs := HostState{
			Endpoint:  ep,
			Level:     levelOf[h],
			Active:    h.active.Load(),
			Ejections: h.ejections,
		}
		if h.ewmaBits.Load() != 0 {
			hs.Latency = time.Duration(h.latency(now))
		}
		ejected := h.ejected(now)
		if ejected {
			hs.EjectedUntil = time.Unix(0, h.ejectedUntil.Load())
		}
		hs.Available = ep.Healthy && !ejected
		switch {
		case !ep.Healthy && ep.HealthReason != "":
			hs.Why = "unhealthy from control plane: " + ep.HealthReason
		case !ep.Healthy:
			hs.Why = "unhealthy from control plane"
		case ejected:
			hs.Why = "ejected until " + hs.EjectedUntil.UTC().Format(time.RFC3339) + " after " + h.ejectReason
		default:
			hs.Why = "healthy"
		}
		if ejected && !ep.Healthy {
			hs.Why += "; also ejected after " + h.ejectReason
		}
		snap.Hosts = append(snap.Hosts, hs)
	}
	return snap
}
