package federation

// This file holds the fencing of peers: the evidence the federation
// gathers (catalog reachability, its last confirmed state, probes of the
// peers' gateways) and the decisions of package fence applied to them.

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation/fence"
	"github.com/fedmesh/fedmesh/federation/gwprobe"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// evaluateFencing fences and unfences peers (see package fence).
func (f *Federation) evaluateFencing() {
	now := f.cfg.Now()
	fcfg := f.cfg.fenceConfig()
	n := 0
	for _, p := range f.peers {
		f.refreshLastSync(p)
		v := fence.Decide(fcfg, f.fenceInput(p, now))
		if v.Rule != p.verdict.Rule {
			f.log.Debug("fencing decision", "peer", p.name, "fenced", v.Fenced, "rule", v.Rule, "reason", v.Reason)
		}
		p.verdict = v
		reason := ""
		if v.Fenced {
			reason = v.Reason
		}
		if v.Fenced != p.fenced || reason != p.reason {
			switch {
			case v.Fenced && !p.fenced:
				f.met.fenceChanges.WithLabelValues("fenced").Inc()
				f.log.Warn("peer fenced: its endpoints are marked unhealthy", "peer", p.name, "rule", v.Rule, "reason", reason)
			case !v.Fenced:
				f.met.fenceChanges.WithLabelValues("unfenced").Inc()
				f.log.Info("peer trusted again: its endpoints are healthy", "peer", p.name, "rule", v.Rule, "reason", v.Reason)
			}
			p.fenced, p.reason = v.Fenced, reason
			f.markDirty(time.Time{})
		}
		if p.fenced {
			n++
		}
	}
	f.met.fencedPeers.Set(float64(n))
}

// Fence reasons of the control plane's evidence alone.
const (
	ReasonFailed = "serf reports the control plane failed"
	// ReasonLeft fences a peer while it is leaving; once it has left, it
	// is removed.
	ReasonLeft = "the control plane left the federation"
)

// refreshLastSync persists that p's catalog still confirms its exports
// when the persisted confirmation is a quarter of the staleness bound
// old, so that a control plane restarted while p's is down does not
// take quiet exports for stale ones (at most one small write per peer
// per StaleAfter/4).
func (f *Federation) refreshLastSync(p *peer) {
	if p.rep == nil {
		return
	}
	st := p.rep.r.State()
	if !st.Connected || st.LastContact.Sub(p.lastSync) < f.cfg.StaleAfter/4 {
		return
	}
	p.lastSync = st.LastContact
	f.io.persist(p.name, p.exports, []catalog.ServiceKey{}, f.importState(p))
}

// fenceInput gathers what the fencing decision reads of p.
func (f *Federation) fenceInput(p *peer, now time.Time) fence.Input {
	in := fence.Input{Now: now}
	if p.member != nil {
		switch p.member.Status {
		case membership.StatusAlive:
			in.Serf = fence.SerfAlive
		case membership.StatusFailed:
			in.Serf = fence.SerfFailed
		case membership.StatusLeaving, membership.StatusLeft:
			in.Serf = fence.SerfLeaving
		}
	}
	in.Catalog = fence.Catalog{Since: p.downSince, LastState: p.lastSync}
	if p.rep != nil {
		st := p.rep.r.State()
		in.Catalog.Reachable, in.Catalog.Since = st.Connected, st.Since
		if st.LastContact.After(in.Catalog.LastState) {
			in.Catalog.LastState = st.LastContact
		}
	}
	if f.prober != nil {
		if r, ok := f.prober.Result(p.name); ok {
			in.Probe = fence.Probe{Probing: true, Since: r.Since, Failures: r.Failures, Unanswered: r.Unanswered, Last: r.Last, LastOK: r.LastOK}
		}
	}
	return in
}

// probeDialer dials peers' gateways. When this cluster's own gateway
// address is a loopback address of its own (local mode: the control
// plane and the gateway share the cluster's address), probes are sent
// from it, so that peers' gateways, which know that address as this
// cluster's, label them with this cluster rather than "unknown".
func probeDialer(gateway string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{}
	if ap, err := netip.ParseAddrPort(gateway); err == nil {
		if a := ap.Addr(); a.IsLoopback() && a != netip.MustParseAddr("127.0.0.1") && a != netip.IPv6Loopback() {
			d.LocalAddr = &net.TCPAddr{IP: a.AsSlice()}
		}
	}
	return d.DialContext
}

// probeTargets are the peers' gateways with the services to probe them
// with: every exported service port with a ready endpoint, and the
// identities of those endpoints. A peer with none is probed at its
// gateway itself when this control plane has a certificate to present.
func (f *Federation) probeTargets() map[string]gwprobe.Target {
	td := f.cfg.ProbeBundle.Bundle().TrustDomain()
	out := make(map[string]gwprobe.Target, len(f.peers))
	for name, p := range f.peers {
		gw := f.gatewayOf(p)
		if gw == "" {
			continue
		}
		t := gwprobe.Target{Gateway: gw}
		for _, e := range p.exports {
			for _, port := range e.Service.Ports {
				s := gwprobe.Service{SNI: naming.ServicePort{Namespace: e.Service.Namespace, Name: e.Service.Name, Port: port.Port}.SNI()}
				for _, ep := range e.Endpoints {
					if !ep.Ready || (ep.PortName != "" && ep.PortName != port.Name) {
						continue
					}
					if id, err := identity.WorkloadID(td, e.Service.Namespace, ep.ServiceAccount); err == nil && !slices.Contains(s.IDs, id) {
						s.IDs = append(s.IDs, id)
					}
				}
				if len(s.IDs) > 0 {
					t.Services = append(t.Services, s)
				}
			}
		}
		if len(t.Services) > 0 || f.cfg.ProbeCertificate != nil {
			out[name] = t
		}
	}
	return out
}

// updateProbeTargets gives the prober new targets after a change.
func (f *Federation) updateProbeTargets() {
	if f.prober == nil || !f.targetsDirty {
		return
	}
	f.targetsDirty = false
	f.prober.SetTargets(f.probeTargets())
}
