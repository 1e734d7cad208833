package fence

import (
	"fmt"
	"time"
)

// Defaults of Config.
const (
	// DefaultCatalogPeriod is how long a peer's catalog may be
	// unreachable before its control plane counts as gone.
	DefaultCatalogPeriod = 15 * time.Second
	// DefaultProbeFailures is how many gateway probes in a row must fail
	// before the gateway counts as down.
	DefaultProbeFailures = 3
	// DefaultProbeGrace is how long probing may go without a result
	// before the evidence it gave is no longer believed.
	DefaultProbeGrace = 4 * time.Second
	// DefaultStaleAfter bounds how old the last state confirmed by a
	// peer's catalog may be while its gateway alone keeps it trusted.
	DefaultStaleAfter = time.Hour
)

// Config holds the bounds of the decision. The zero value of a field
// takes its default (Defaults).
type Config struct {
	// CatalogPeriod is how long the catalog may be unreachable before the
	// control plane counts as gone (the federation's fence period).
	CatalogPeriod time.Duration
	// ProbeFailures is how many probes in a row must fail before the
	// gateway counts as down, whatever the control plane says.
	ProbeFailures int
	// ProbeGrace is how long a probe result counts as evidence, and how
	// long a peer being probed for the first time waits for a result
	// before the control plane's state decides alone.
	ProbeGrace time.Duration
	// StaleAfter is how old the peer's last confirmed state may grow
	// while its control plane is gone and its gateway serves.
	StaleAfter time.Duration
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.CatalogPeriod <= 0 {
		c.CatalogPeriod = DefaultCatalogPeriod
	}
	if c.ProbeFailures <= 0 {
		c.ProbeFailures = DefaultProbeFailures
	}
	if c.ProbeGrace <= 0 {
		c.ProbeGrace = DefaultProbeGrace
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = DefaultStaleAfter
	}
	return c
}

// Serf is the gossip status of the peer's control plane.
type Serf int

// Gossip statuses.
const (
	// SerfUnknown: gossip has not told (a peer known only from persisted
	// imports, or one that has not proved its identity in this run).
	SerfUnknown Serf = iota
	SerfAlive
	SerfFailed
	// SerfLeaving covers leaving and left: the peer goes on purpose.
	SerfLeaving
)

func (s Serf) String() string {
	switch s {
	case SerfAlive:
		return "alive"
	case SerfFailed:
		return "failed"
	case SerfLeaving:
		return "leaving"
	}
	return "unknown"
}

// Catalog is what replication from the peer's catalog (etcd) says.
type Catalog struct {
	// Reachable is true while the peer's catalog answers.
	Reachable bool
	// Since is when Reachable last changed (for a peer never reached,
	// when this control plane started looking).
	Since time.Time
	// LastState is when the peer's exports were last confirmed by its
	// catalog (persisted across restarts); zero when never.
	LastState time.Time
}

// Probe is what the probes of the peer's gateway say.
type Probe struct {
	// Probing is true while the peer's gateway is probed: probes are
	// enabled and the peer announces a gateway (probed through a service
	// with a ready endpoint, or at the gateway itself when it exports
	// none). False: no data-plane evidence.
	Probing bool
	// Since is when probing of this peer began.
	Since time.Time
	// Failures counts the probes that failed in a row since the last
	// success, for any reason.
	Failures int
	// Unanswered counts the probes in a row that the gateway itself did
	// not answer (no connection, or no answer in time): failures that a
	// live control plane cannot explain. A gateway that accepts but
	// finds no live endpoint for the probed services resets it.
	Unanswered int
	// Last is when the last probe ended; zero before the first.
	Last time.Time
	// LastOK is when a probe last succeeded; zero if none did.
	LastOK time.Time
}

// Input is everything the decision reads of one peer.
type Input struct {
	Now     time.Time
	Serf    Serf
	Catalog Catalog
	Probe   Probe
}

// Verdict is the state of a peer's endpoints.
type Verdict struct {
	// Fenced is true when the peer's endpoints are marked unhealthy.
	Fenced bool
	// Rule names the rule that decided, a stable label (Rule*).
	Rule string
	// Reason says why, for humans (`fedmesh status`, the endpoints'
	// health reason when fenced). It holds no counter or age, so that it
	// changes only when the decision does (a fenced peer's reason is in
	// the view; a new reason is a new view).
	Reason string
}

// Rules, the Verdict.Rule labels: what decided.
const (
	// RuleLeaving fences a peer whose control plane leaves on purpose.
	RuleLeaving = "leaving"
	// RuleStale fences a peer whose last confirmed state is older than
	// Config.StaleAfter while its control plane is gone.
	RuleStale = "stale"
	// RuleGatewayDown fences a peer whose gateway left
	// Config.ProbeFailures probes in a row unanswered.
	RuleGatewayDown = "gateway_down"
	// RuleControlPlaneAndGatewayDown fences a peer whose control plane is
	// gone and whose last gateway probe failed.
	RuleControlPlaneAndGatewayDown = "control_plane_and_gateway_down"
	// RuleControlPlaneDown fences a peer whose control plane is gone
	// while there is no data-plane evidence (no probing, or no recent
	// result).
	RuleControlPlaneDown = "control_plane_down"

	// RuleHealthy trusts a peer whose control plane is there.
	RuleHealthy = "healthy"
	// RuleGatewayServes trusts a peer whose control plane is gone but
	// whose gateway answers probes.
	RuleGatewayServes = "gateway_serves"
	// RuleAwaitingProbe trusts a peer whose control plane is gone while
	// its first probe result is awaited (at most Config.ProbeGrace).
	RuleAwaitingProbe = "awaiting_probe"
)

// Decide is the state machine: it decides from in alone whether the
// peer's endpoints are fenced, and why. It is pure: the same input gives
// the same verdict.
func Decide(cfg Config, in Input) Verdict {
	cfg = cfg.WithDefaults()
	if in.Serf == SerfLeaving {
		return Verdict{Fenced: true, Rule: RuleLeaving, Reason: "the control plane left the federation"}
	}
	cpGone, cpWhy := controlPlaneGone(cfg, in)
	p := in.Probe
	// Evidence is a probe result younger than the grace.
	evidence := p.Probing && !p.Last.IsZero() && in.Now.Sub(p.Last) <= cfg.ProbeGrace
	if evidence && p.Unanswered >= cfg.ProbeFailures {
		return Verdict{Fenced: true, Rule: RuleGatewayDown,
			Reason: fmt.Sprintf("gateway left %d probes in a row unanswered", cfg.ProbeFailures)}
	}
	if !cpGone {
		why := "control plane reachable"
		if !in.Catalog.Reachable {
			why = "catalog unreachable for less than " + cfg.CatalogPeriod.String()
		}
		if evidence && p.Failures == 0 {
			why += ", gateway answers probes"
		}
		return Verdict{Rule: RuleHealthy, Reason: why}
	}
	if evidence && p.Failures > 0 {
		return Verdict{Fenced: true, Rule: RuleControlPlaneAndGatewayDown,
			Reason: cpWhy + " and its gateway probe failed"}
	}
	if evidence {
		// The gateway serves: the peer keeps its priority, as long as
		// its last confirmed state is not too old.
		if age, ok := staleness(in); ok && age > cfg.StaleAfter {
			return Verdict{Fenced: true, Rule: RuleStale,
				Reason: fmt.Sprintf("%s and its last state is older than %s", cpWhy, cfg.StaleAfter)}
		}
		return Verdict{Rule: RuleGatewayServes, Reason: cpWhy + ", but its gateway answers probes"}
	}
	if p.Probing && p.Last.IsZero() && in.Now.Sub(p.Since) < cfg.ProbeGrace {
		return Verdict{Rule: RuleAwaitingProbe, Reason: cpWhy + "; awaiting the first gateway probe"}
	}
	why := cpWhy
	if p.Probing {
		why += ", and no recent gateway probe result"
	}
	return Verdict{Fenced: true, Rule: RuleControlPlaneDown, Reason: why}
}

// controlPlaneGone reports whether the peer's control plane counts as
// gone, and why: serf reports it failed, or its catalog has been
// unreachable for CatalogPeriod.
func controlPlaneGone(cfg Config, in Input) (bool, string) {
	if in.Serf == SerfFailed {
		return true, "serf reports the control plane failed"
	}
	if !in.Catalog.Reachable && in.Now.Sub(in.Catalog.Since) >= cfg.CatalogPeriod {
		return true, "catalog unreachable for more than " + cfg.CatalogPeriod.String()
	}
	return false, ""
}

// staleness is the age of the last confirmed state; false when never
// confirmed (a peer with no state has no endpoints to keep).
func staleness(in Input) (time.Duration, bool) {
	if in.Catalog.LastState.IsZero() {
		return 0, false
	}
	return in.Now.Sub(in.Catalog.LastState), true
}
