// Package config turns the xDS resources a sidecar receives into one
// immutable runtime Snapshot: the services it can reach (by host and port),
// each with its endpoints, TLS expectations, timeouts, retry policy, circuit
// breaker limits and outlier detection settings; the inbound ports of its
// own workload; and its certificate and trust bundle.
//
// A Builder keeps the last accepted resources of every type, translated
// as they arrive into compact forms (state.go: clusters into Services,
// assignments into Endpoints, outbound listeners into their filters; the
// few inbound listeners and clusters, route configurations and secrets
// as received), so the decoded protos of a large mesh are not kept. Apply
// takes one xdsclient.Update, a whole set or a delta (Update.Incremental),
// checks it in the context of the other types and builds a new Snapshot;
// an error means the update is rejected (the xDS client NACKs it) and the
// previous Snapshot stays. Resources follow docs/xds.md:
//
//   - CDS outbound|PORT||HOST: protocol (from the ALPN of the upstream TLS
//     context and the listener), SNI, expected SPIFFE IDs (URI SAN
//     matchers), connect timeout, circuit breakers, outlier detection;
//   - EDS: endpoints with locality, priority, weight, health and the
//     fedmesh metadata (cluster, sni, identity);
//   - LDS outbound|PORT||HOST: tcp_proxy (opaque TCP) or an HTTP connection
//     manager (HTTP) pointing at RDS "PORT"; inbound|ADDR:PORT: the inbound
//     listener, one filter chain per SNI leading to inbound|PORT||HOST, a
//     STATIC cluster holding the app's address. A chain is [tcp_proxy]
//     (the old shape), [envoy.filters.network.rbac..., tcp_proxy] for an
//     opaque TCP port, or an HTTP connection manager with an inline route
//     to the inbound cluster and [envoy.filters.http.rbac..., router] for
//     an HTTP port (docs/xds.md, "Inbound authorization"). The RBAC
//     filters are compiled by sidecar/authz into the port's Authz; an
//     RBAC field the sidecar does not implement refuses the update with an
//     error naming it (wrapping ErrAuthz and authz.ErrUnsupported). An
//     HTTP chain may carry one envoy.filters.http.local_ratelimit after
//     its RBAC filters, a TCP chain envoy.filters.network.local_ratelimit
//     filters before tcp_proxy (docs/ratelimit.md): compiled into the
//     port's RateLimit and ConnectionLimit, anything else refused with
//     ErrRateLimit;
//   - RDS "PORT": virtual hosts whose domains name a service, with the
//     route's cluster, timeout and retry policy;
//   - SDS "default" (certificate and key) and "ROOTCA" (trust bundle).
//
// A cluster whose endpoints have not arrived yet has none; a listener whose
// route has not arrived uses the defaults. Apply never fails for missing
// references, only for resources that are wrong in themselves (an
// unparsable name, an SNI or identity that is not valid, a certificate
// that does not parse).
//
// Lookups on a Snapshot are plain map reads and safe for concurrent use:
//
//	snap := b.Current()
//	svc, ok := snap.Lookup("echo.demo.svc.clusterset.local", 8080)
package config
