// Package proxy is the sidecar's data path: outbound HTTP and TCP to
// services through per-service balancers and connection pools over mutual
// TLS, and the inbound mutual TLS listener in front of the app.
//
// A Proxy holds the current config.Snapshot (swapped atomically by Update)
// and, per service port, an upstream: its balancer.Balancer, one
// http.Transport per endpoint and protocol (ServerName = the endpoint's
// SNI, the server's SPIFFE ID checked against the identities the control
// plane announced), and circuit breaker counters. HTTP/1.x requests that
// are not gRPC go to sidecars of the same cluster as HTTP/1.1 (ALPN
// http/1.1, one request at a time per pooled connection, TCP keepalives
// and TCP_USER_TIMEOUT watching the connection); gRPC, requests that came
// in over HTTP/2 and every request to another cluster's gateway ride
// multiplexed HTTP/2 (ALPN h2, with pings).
//
// Outbound HTTP (OutboundHandler, ServeOutboundHTTP, ServePort):
//
//	client -> route by Host / absolute URI -> circuit breaker -> buffer a
//	small body -> ReverseProxy -> RoundTrip: Pick (avoiding endpoints
//	already tried) -> attempt -> retry on connect failure, reset or a
//	retriable 5xx within num_retries and the retry budget
//
// Errors the proxy produces carry X-Fedmesh-Error with the reason (no_route,
// no_healthy, connect, timeout, overflow, upstream_reset) and are counted
// in fedmesh_sidecar_request_errors_total. The per-service series (the
// proxy's and the balancer's) are deleted when the service, or the inbound
// port, leaves the configuration; a request still in flight then does not
// bring them back.
//
// Outbound TCP: a service-port listener of an opaque TCP service, or a
// CONNECT request, opens one TLS connection with ALPN fedmesh-tcp to an
// endpoint (trying others when the connect fails) and splices bytes.
//
// Inbound (ServeInbound): TLS 1.3 with the SDS certificate; the client
// must present a valid SVID of the trust domain (identity.ServerConfig);
// the server name selects the service port. ALPN h2 or http/1.1 goes to the
// app through a reverse proxy that sets X-Fedmesh-Client-Id to the
// caller's SPIFFE ID (removing any copy the caller sent), over h2c for a
// gRPC port or a gRPC request and HTTP/1.1 otherwise; ALPN fedmesh-tcp is
// spliced to the app.
//
// Transparent capture (capture.go, with Config.OriginalDst): ServeOutbound
// reads a redirected connection's original destination and meshes it (a
// service's address, or an HTTP request whose Host names one) or relays it
// untouched (passthrough, counted in fedmesh_sidecar_passthrough_*);
// ServeInbound tells TLS from plaintext by the first byte and relays
// plaintext to its original destination where Config.InboundPlaintext
// allows it, never to the sidecar's own ports.
//
// Authorization (authz.go): a port whose filter chain carries RBAC
// filters (config.InboundPort.Authz) is checked per connection after the
// handshake (network RBAC; a denial closes the connection) and per request
// before forwarding (HTTP RBAC; a denial answers 403 "RBAC: access
// denied", or for gRPC a trailers-only grpc-status 7 with that message).
// Policies see the verified SPIFFE ID, the client's cluster from the
// verified chain (the organizational unit of the CA that signed the leaf;
// never a header), the SNI, and the request's method, headers and path
// (decoded, dot segments resolved, slashes merged). On such a port an
// opaque (fedmesh-tcp) connection is parsed as HTTP too, so a CONNECT
// tunnel cannot pass requests by the policy. Decisions are counted in
// fedmesh_authz_decisions_total{decision,service}; denials and AUDIT
// matches go to Config.Audit without blocking.
//
// Rate limits (ratelimit.go): after authorization, a port's request
// limits (config.InboundPort.RateLimit) are checked per request by the
// proxy's ratelimit.Limiter, which outlives configurations; a refusal
// answers 429 "local_rate_limited" with Retry-After, RateLimit-Policy and
// RateLimit (gRPC: a trailers-only RESOURCE_EXHAUSTED) and sets the
// response flag RL. A TCP port's connection limits close a new
// connection over the rate. Counters: fedmesh_ratelimit_requests_total
// {limit,decision}, read from the limiter at scrape time; QuotaDemand
// reports the quota shares' demand.
//
// Tracing (tracing.go, with a Config.Tracer): the outbound handler opens
// one CLIENT span per request (all its attempts; retry and failover
// events from RoundTrip) and the inbound handler a SERVER span, each
// writing its trace context into the request's headers for the next hop
// (sidecar/tracing). Requests the sidecar answers itself before choosing
// an upstream (no route, a route's direct response, redirect or fault
// abort) and denied requests have no span.
//
// The HTTP/1.1 fast path (fast1.go, h1parse.go; off with
// Config.NetHTTPOnly): a plain keep-alive HTTP/1.1 request, outbound to a
// service without a route in force whose endpoints are all in this
// cluster, or inbound to a port without request authorization or rate
// limits, is read with a pooled bufio.Reader, parsed strictly (request
// smuggling and oversize heads refused with 400 or 431, counted in
// fedmesh_sidecar_http1_refused_total), and forwarded on pooled HTTP/1.1
// connections with one buffered write per request and per response,
// without net/http's server, ReverseProxy or transport, keeping the same
// routing, retries, outlier results, timeouts, circuit breakers, identity
// header, tracing, metrics and access log. Any other request (HTTP/1.0,
// h2c, CONNECT, Upgrade, Expect, TE or Trailer headers, a header named in
// Connection, gRPC, routes, remote endpoints, policies) is handed to
// net/http with its connection and the bytes read so far, and the
// connection stays there (fedmesh_sidecar_http1_fallback_total).
//
// Both reverse proxies flush after every write only responses that stream
// (no Content-Length, text/event-stream, gRPC); a response of known length
// leaves in as few writes as the buffers allow, and copy buffers are
// pooled.
//
// The Proxy is itself the identity.CertSource and identity.BundleSource of
// its TLS configs, reading the certificate and bundle of the current
// snapshot at every handshake, so an SDS renewal applies to new
// connections only.
package proxy
