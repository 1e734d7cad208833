// Package xdsclient is a small, reusable ADS client: it holds one
// aggregated discovery stream (envoy.service.discovery.v3) to a control
// plane, subscribes to a fixed list of resource types, and hands the
// consumer typed, validated resources. The sidecar and the east-west
// gateway both use it.
//
// It speaks delta (incremental) ADS by default and state of the world
// when Config.SotW says so or the control plane does not serve delta
// (delta.go). With delta a change to one resource sends that resource;
// the client hands its Handler either the whole set, merged (the
// default), or the change itself (Config.Incremental: Update.Incremental,
// Update.Removed), in which case it keeps no decoded resources.
//
// Data flow, for every response (state of the world shown; delta is the
// same per changed resource):
//
//  1. each google.protobuf.Any is decoded into its Go type (a
//     discovery.v3.Resource wrapper is unwrapped); a resource of another
//     type than the response's, a resource without a name, or two resources
//     with one name reject the response;
//  2. each resource passes its own protoc-gen-validate rules (what the
//     generated ValidateAll checks, read from the descriptors by
//     internal/pgv, so that the proxy does not link the generated code);
//  3. Handler.OnUpdate receives the whole set for that type as an Update. It
//     returns an error to reject the update (validation beyond the protos:
//     a bad SNI, an unknown secret).
//
// An accepted update is ACKed (version_info = the new version, the response
// nonce). A rejected one is NACKed: version_info stays at the last accepted
// version and error_detail carries the reason, so the control plane's logs
// say what was wrong; the consumer keeps its last good configuration, and
// so does the client (Client.Resources). Every response is counted in
// fedmesh_xds_responses_total{type,result,reason}.
//
// When the stream breaks or the control plane is unreachable, the client
// keeps the last accepted resources and reconnects (backoff.go): the new
// stream waits for the gRPC channel to be Ready (grpc.WaitForReady), so the
// channel's connection backoff, jittered and capped at MaxBackoff (1s by
// default), is the only delay while the control plane is away; the
// client's own backoff, the same policy, only spaces streams that the
// control plane refused before answering. A control plane that comes back
// is reconnected to within about a second. The new stream announces the
// last accepted version of each type, so an unchanged control plane need
// not resend anything.
//
// With Config.DataDir, every accepted set is also written to disk (0600,
// atomically; persist.go). A client started while no control plane
// answers within RestoreAfter hands its Handler the persisted sets
// (Update.Persisted, after Config.CheckRestored approves them) and reports
// Status.Source "persisted" and fedmesh_xds_config_source{source=
// "persisted"} 1 until the control plane's sets replace them. Bad files are
// logged, counted (fedmesh_xds_persisted_rejected_total{reason}) and
// ignored.
//
// Subscriptions are wildcard (empty resource_names, or no names
// subscribed in delta) for every type: the control plane sends everything
// a node may use, as go-control-plane's snapshot cache does for ADS.
//
// Example:
//
//	c, err := xdsclient.New(xdsclient.Config{
//		Target:      "127.0.0.11:15010",
//		Credentials: credentials.NewTLS(xdsclient.ServerTLSConfig(roots, cpID)),
//		Node:        node, // with metadata fedmesh.token etc.
//		Handler:     myHandler,
//	}, reg)
//	go c.Run(ctx) // returns when ctx ends
//
// Authentication: the client verifies the control plane (TLS, with a
// tls.Config such as ServerTLSConfig builds, checking its SPIFFE ID against
// the root bundle); the node proves itself with a bootstrap token in its
// metadata (naming.MetaToken), set by the caller in Config.Node.
package xdsclient
