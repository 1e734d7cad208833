// Package fence decides whether a peer cluster's endpoints are fenced
// (kept in the view, marked unhealthy, so that traffic leaves them) on
// evidence from both planes: the peer's control plane (serf gossip and
// its catalog) and its data plane (probes of its east-west gateway
// through the real mTLS path). It is a pure state machine: Decide takes
// one peer's Input and returns a Verdict with the rule that decided and
// a reason for `fedmesh status`. The federation feeds it and applies the
// verdict; it keeps no state, does no I/O and reads no clock.
//
// # Inputs
//
//   - Serf: alive, failed, leaving/left, or unknown (not yet told).
//   - Catalog: whether the peer's etcd answers, since when, and when the
//     peer's exports were last confirmed (LastState, persisted across
//     restarts).
//   - Probe: whether the peer's gateway is probed, how many probes
//     failed in a row, when the last probe ended and last succeeded.
//
// The control plane counts as gone when serf reports it failed or its
// catalog has been unreachable for Config.CatalogPeriod (the federation's
// fence period). A probe result is evidence for Config.ProbeGrace after
// it ended.
//
// Two kinds of probe failure weigh differently. A probe the gateway does
// not answer (no connection, no answer in time) shows the peer's data
// plane is out of reach, which no control plane can route around: enough
// of them in a row fence the peer whatever its control plane says. A
// probe the gateway answers but cannot serve (it finds no live endpoint
// of the probed services, or the sidecar's identity is wrong) says the
// endpoints the catalog calls ready do not answer: while the control
// plane is there it stays the authority on its endpoints (and the
// sidecars' outlier detection ejects the dead ones), so this fences only
// a peer whose control plane is gone.
//
// # Rules, in order
//
//	leaving                         serf: leaving or left           fenced
//	gateway_down                    >= ProbeFailures probes in a row
//	                                unanswered by the gateway       fenced
//	healthy                         control plane there             trusted
//	control_plane_and_gateway_down  control plane gone, last probe failed   fenced
//	stale                           control plane gone, gateway serves,
//	                                last state older than StaleAfter        fenced
//	gateway_serves                  control plane gone, gateway serves      trusted
//	awaiting_probe                  control plane gone, probing began less
//	                                than ProbeGrace ago, no result yet      trusted
//	control_plane_down              control plane gone, no evidence         fenced
//
// So a peer whose control plane is down (killed, upgraded, restarted)
// while its gateway and workloads serve keeps its endpoints and its
// priority; a dead peer (control plane and gateway) is fenced as soon as
// either its gateway leaves ProbeFailures probes unanswered or its
// control plane is gone and one probe failed. A peer that exports
// nothing with a ready endpoint is probed at its gateway itself (package
// gwprobe), so the same holds for it: dead, it is fenced as fast; alive,
// it keeps its standing while its control plane is away. Only a peer
// that cannot be probed at all (no gateway announced, probes disabled,
// or a gateway that does not answer probes of itself) is fenced on its
// control plane alone, when that is gone. Verdicts are taken again at
// every change of an input, so a peer comes back as soon as its
// gateway answers or its control plane returns.
//
// # Staleness bound
//
// While the control plane is gone and the gateway serves, the peer's
// endpoints in the view are those its catalog last confirmed; the
// gateway picks its own healthy local endpoints, so the imported list
// only weighs the peer among the others. Config.StaleAfter (default 1h)
// bounds how long that list is trusted: after it the peer is fenced
// (rule stale) until its catalog answers again.
//
// # Bounds with the defaults
//
// With a 1 s probe interval, a 1 s probe timeout and ProbeFailures 3, a
// dead peer whose gateway refuses connections is fenced about 3 s after
// it dies (about 6 s when its packets are dropped and every probe times
// out), or sooner when serf reports it failed first and one probe has
// failed; the catalog rule (CatalogPeriod, 15 s by default) remains the
// bound when the peer cannot be probed at all.
//
// # Example
//
//	v := fence.Decide(fence.Config{CatalogPeriod: 15 * time.Second}, fence.Input{
//		Now:     now,
//		Serf:    fence.SerfFailed,
//		Catalog: fence.Catalog{Since: now.Add(-20 * time.Second), LastState: now.Add(-20 * time.Second)},
//		Probe:   fence.Probe{Probing: true, Since: start, Last: now.Add(-300 * time.Millisecond), LastOK: now.Add(-300 * time.Millisecond)},
//	})
//	// v.Fenced == false, v.Rule == fence.RuleGatewayServes
package fence
