// Package gateway is fedmesh's east-west gateway: the one door through
// which sidecars of other clusters reach the services this cluster
// exports.
//
// It accepts TCP, reads the TLS ClientHello without terminating it, takes
// the server name (naming: PORT.NAME.NAMESPACE.svc.clusterset.local), maps
// it to an exported service port, picks a healthy local endpoint by
// least-request with two random choices, dials it, replays the hello bytes
// and splices both directions with half-close. The TLS session stays end to
// end between the two sidecars: the gateway holds no key for workload
// traffic and never sees plaintext.
//
// Only exported services are reachable: a server name that names anything
// else, a first byte that is not TLS, a hello with no server name, or an
// oversized or malformed hello is refused (the connection is closed,
// nothing is forwarded) and counted in
// fedmesh_gateway_refused_total{reason}. When no endpoint of a service is
// healthy the gateway refuses at once, so the client sidecar fails over to
// its next priority without waiting for a timeout.
//
// The gateway's own SVID and the federation's trust bundle come over SDS
// as a sidecar's do (SetIdentity). Neither touches traffic: the bundle
// verifies the control plane at every reconnect, so the gateway follows a
// root rotation; the SVID answers peer control planes' probes of the
// gateway itself (server name naming.GatewayProbeSNI), mutual TLS in
// which the prober must present a control plane SVID chained to the
// current bundle; counted in fedmesh_gateway_self_probes_total{result}.
// That probe shows a peer cluster the gateway is up even when the cluster
// exports nothing to probe it through.
//
// Routes come from the control plane over xDS (role gateway; see
// docs/xds.md section 6) through XDSHandler, or directly through
// SetRoutes; the gateway keeps its last routes while the control plane is
// away. Several replicas can run side by side: a gateway keeps no state
// that another replica would need.
//
// As a process (the fedmesh gateway command), New builds the xDS client
// and binds the passthrough and admin listeners, and Run owns them all
// until its context ends; then it drains: it stops accepting, lets the
// spliced connections finish for up to Config.DrainTimeout, and only then
// stops the xDS client and the admin server (/ready answers 503 while
// draining):
//
//	gw, err := gateway.New(gateway.Config{
//		Cluster: "east-1", ControlPlane: "127.0.0.11:15010",
//		ControlPlaneID: cpID, RootCAs: roots, Token: token,
//		ListenAddr: "127.0.0.11:15443", AdminAddr: "127.0.0.11:15021",
//		Logger: log,
//	}, reg)
//	err = gw.Run(ctx) // nil once ctx ends and the drain is over
//
// Embedded (tests, benchmarks), a gateway without addresses is fed and
// served directly:
//
//	gw, _ := gateway.New(gateway.Config{Cluster: "east-1"}, reg)
//	gw.SetRoutes([]gateway.Route{{Service: sp, Endpoints: eps}})
//	go gw.Serve(ln)
//	...
//	gw.Shutdown(ctx) // stop accepting, let spliced connections finish
//
// A temporary Accept error (out of file descriptors) is retried with
// exponential backoff, which Shutdown cuts short.
package gateway
