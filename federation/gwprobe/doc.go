// Package gwprobe probes peer clusters' east-west gateways through the
// real mTLS path, for the fencing decision (package fence): evidence
// that a peer's data plane serves, whatever its control plane does.
//
// # What a probe is
//
// A probe opens TCP to the peer's gateway and starts TLS with the server
// name of one of the peer's exported service ports that has a ready
// endpoint (naming.ServicePort.SNI), exactly as a sidecar of this
// cluster would. The gateway reads only the server name and splices the
// connection to a healthy local endpoint: a sidecar of the peer, which
// answers the handshake with its workload SVID. The probe checks that
// SVID (chained to the federation's bundle, a workload identity, one of
// the service's endpoint identities), the server's signature over the
// handshake and its Finished message; then, asked for its own
// certificate, it ends the handshake without presenting one. So a
// successful probe proves the gateway is up, routes, and reaches a live
// sidecar that holds its key; and the sidecar, which never sees a client
// certificate, refuses and counts nothing (its handshake ends with the
// client's alert, logged at debug level). No application byte is sent.
//
// # A peer that exports nothing
//
// A peer with no exported service port with a ready endpoint has no
// service path to probe. Its gateway is then probed itself: TLS 1.3 with
// the server name naming.GatewayProbeSNI, which the gateway answers with
// its own SVID (from SDS). The probe accepts only a workload SVID issued
// by the peer's own cluster CA (identity.VerifyWorkloadOf) and presents
// Config.Certificate, this control plane's SVID, which the gateway checks
// against its current trust bundle; the gateway's close_notify after the
// handshake says it accepted, an alert that it refused (result refused:
// the gateway answered). Result.Self says which path was probed. So a
// dead peer without exports is fenced as fast as one with, and a live
// one keeps its standing while its control plane is away.
//
// The service path stays first whenever there is one: an answer from
// the gateway alone does not show that it reaches the workloads, and the
// service path is what clients use.
//
// One probe tries up to Config.ServicesPerProbe of the peer's services
// in turn (starting from the next one each round), all within
// Config.Timeout, and succeeds when one answers; so one broken service
// does not make its gateway look down.
//
// # Loop
//
// Run is the owner goroutine: every Config.Interval, jittered by ±20%,
// it probes every target, at most Config.Concurrency at once, and waits
// for the round (each probe bounded by Config.Timeout) before the next
// wait, so probes never pile up. SetTargets replaces the peers to probe
// (the federation computes them from its peers' exports and gateway
// addresses); Result reports, per peer, the consecutive failures, the
// last probe and the last success. Every probe is counted in
// fedmesh_federation_gateway_probe_total{peer,result} (ok, unreachable,
// refused, timeout, bad_identity).
//
// # Example
//
//	p, err := gwprobe.New(gwprobe.Config{Bundle: bundleSource, OnRound: wake}, registry)
//	go p.Run(ctx)
//	p.SetTargets(map[string]gwprobe.Target{"east-2": {
//		Gateway:  "127.0.0.12:15443",
//		Services: []gwprobe.Service{{SNI: "8080.echo.demo.svc.clusterset.local"}},
//	}})
//	r, ok := p.Result("east-2") // r.Failures, r.LastOK
package gwprobe
