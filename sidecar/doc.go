// Package sidecar is fedmesh's data plane next to one workload: it takes
// its configuration from the cluster's control plane over xDS, carries the
// workload's outbound calls to services anywhere in the federation over
// mutual TLS, and terminates mutual TLS in front of the workload.
//
//	sc, err := sidecar.New(sidecar.Config{
//		ControlPlane: "127.0.0.11:15010", ControlPlaneID: cpID, RootBundle: bundle,
//		TrustDomain: td, Token: token, Cluster: "east-1",
//		Namespace: "demo", ServiceAccount: "client", Workload: "client",
//		OutboundAddr: "127.0.1.100:15001", AdminAddr: "127.0.1.100:15000",
//		DNSAddr: "127.0.1.100:15053", ServiceIP: "127.0.1.100",
//	})
//	err = sc.Run(ctx) // until ctx ends
//
// # Parts
//
//   - internal/xdsclient holds the ADS stream (ACK/NACK, last good
//     configuration, reconnect with backoff).
//   - sidecar/config turns the accepted resources into one immutable
//     Snapshot; an update that does not translate is NACKed.
//   - sidecar/balancer picks endpoints per service: priorities with
//     spill-over, least request of two random choices, outlier detection,
//     the retry budget.
//   - sidecar/proxy forwards HTTP and TCP, retries, breaks circuits and
//     terminates inbound mTLS.
//   - sidecar/dns answers *.svc.clusterset.local; sidecar/admin serves
//     the admin pages.
//
// # Outbound in local mode
//
// Applications reach a service port as NAME.NS.svc.clusterset.local:PORT or
// NAME.NS:PORT, in one of three ways, all served at once:
//
//  1. HTTP proxy. The outbound listener (ADDRESS:15001) is an HTTP proxy:
//     set HTTP_PROXY=http://ADDRESS:15001 (Go, curl and most clients honour
//     it) and call http://echo.demo.svc.clusterset.local:8080 as usual. It
//     also routes origin-form requests by their Host header, accepts h2c
//     with prior knowledge, and tunnels CONNECT NAME.NS:PORT to any
//     service, opaque TCP included (HTTPS_PROXY for gRPC clients).
//  2. DNS. The DNS listener (ADDRESS:15053, UDP and TCP) answers A
//     queries for NAME.NS.svc.clusterset.local and NAME.NS with the
//     service IP (Config.ServiceIP, by default the workload's address);
//     other names under clusterset.local get NXDOMAIN and names outside it
//     are refused, so a system resolver forwards only that domain here.
//  3. Service-port listeners. On the service IP the sidecar binds one
//     listener per imported service port (127.0.1.100:8080 ...): HTTP
//     (and h2c, so gRPC) routed by Host, the port's only HTTP service for
//     any other host, or the port's opaque TCP service. A port that is
//     already taken (often by the app itself) is tried again every second,
//     logged as a warning once per run of failures (debug after that) and
//     counted in fedmesh_sidecar_listener_bind_errors_total{reason}; give
//     the sidecar its own service IP (another loopback address) to avoid
//     that. When a service port leaves the configuration its listener
//     stops and closes its connections.
//  4. Transparent capture (Config.Capture, capture.go; Kubernetes pods,
//     docs/capture.md). The pod's capture rules redirect its TCP
//     connections to the outbound listener (and [::1] for IPv6) and its
//     DNS to the DNS listener. The sidecar reads each connection's
//     original destination: a service's ClusterSetIP, or a request whose
//     Host names a service, is meshed; anything else passes through
//     untouched to where it was going. DNS forwards names it does not own
//     to the pod's nameservers. Inbound, it tells mTLS from plaintext by
//     the first byte and takes plaintext only where the workload allows
//     (PERMISSIVE), never on its own ports; the app's HTTP probes, rewritten
//     by the injector, are made from the ready listener.
//
// # Between sidecars
//
// Every endpoint is dialled with TLS 1.3, the workload's SDS certificate,
// ServerName = PORT.NAME.NS.svc.clusterset.local (for a remote cluster the
// endpoint is its east-west gateway, which routes on that name without
// terminating TLS), and the server must present one of the SPIFFE IDs the
// control plane announced for the service. HTTP/1.x requests that are not
// gRPC ride pooled HTTP/1.1 connections (ALPN http/1.1) to endpoints of the
// local cluster; gRPC, HTTP/2 and every request to a remote cluster ride
// pooled, multiplexed HTTP/2 (ALPN h2); a handshake is not paid per
// request (package proxy has the reasons); opaque TCP uses one TLS connection per
// client connection with ALPN fedmesh-tcp. A renewed certificate (a new SDS
// version) is used for new connections; established ones are not touched.
//
// # Inbound
//
// The inbound listener (the address of the control plane's inbound
// listener, ADDRESS:15006 in local mode) requires a client certificate with
// exactly one URI SAN, a workload SPIFFE ID of the federation's trust
// domain, chained to the SDS bundle and valid now (internal/identity);
// refusals are counted by reason. The server name picks the service port
// and so the app's address. HTTP requests reach the app over HTTP/1.1 (h2c
// for gRPC) with the caller's ID in X-Fedmesh-Client-Id; a copy of that
// header sent by the caller is removed and counted.
//
// # Resilience
//
// A failed attempt (connect failure, reset, or a retriable 5xx) is retried
// on another endpoint, up to the route's num_retries and within the retry
// budget (20% of active requests, at least the cluster's max_retries).
// Requests with a body of known length up to 64 KiB are buffered so they
// can be replayed; larger or streaming bodies are retried only when the
// connect failed. A response that has started is never retried. Outlier
// detection ejects failing endpoints locally, so a dead local endpoint
// loses its traffic to the next priority without a control plane round
// trip; the control plane's health (fenced clusters) arrives by EDS.
// Circuit breakers: max_requests (in flight), max_pending (waiting for
// response headers), max_connections (TCP connections, and HTTP/2
// connections per endpoint). Route timeouts bound whole requests.
//
// # Static stability
//
// The last accepted configuration stays in force while the control plane
// is unreachable or sends something invalid (NACKed with the reason).
//
// # Admin (ADDRESS:15000)
//
// /stats/prometheus, /config_dump, /endpoints (per service: every
// endpoint's priority, health, ejection state and why), /ready.
package sidecar
