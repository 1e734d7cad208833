// Package xds is the control plane's xDS server: it turns the federation's
// merged catalog (catalog.View) into Envoy v3 resources for every connected
// proxy and serves them over ADS (state of the world and delta) and the
// per-type discovery services, with go-control-plane's stream servers.
//
// docs/xds.md is the wire contract: names, node metadata, what each role
// receives. In short, per node:
//
//   - sidecar: one EDS cluster and one outbound listener per service port
//     (outbound|PORT||HOST), HTTP routes per port, endpoints grouped by
//     locality with priorities relative to the node (topology.Policy),
//     remote clusters reached through their gateway with an SNI naming the
//     service port, an inbound mTLS listener for the node's own workload,
//     and its SVID and trust bundle over SDS;
//   - gateway: per service port its cluster exports, a cluster named by
//     the SNI with the local endpoints, and one listener matching SNIs;
//   - proxyless (grpc-go): API listeners named HOST:PORT and HOST, plain
//     clusters and every endpoint's own address.
//
// Two pure steps make a node's resources. controlplane/plan decides what
// the node receives (which endpoints, at which priority, through which
// gateway, and why), as plain data; render.go turns the plan into Envoy
// messages with internal/xdsresource, the one package that constructs
// them. Generator drives both: Build(node, secrets) returns a validated,
// versioned snapshot and the plan's per-endpoint explanation, which
// /debug/endpoints serves. Results shared by
// many nodes (outbound clusters, endpoints per locality) are built and
// marshalled once per view, so a push to a thousand sidecars in a few
// localities costs a few builds and a thousand cheap assemblies; the
// generator of a new view reuses the previous one's assignments of
// services that did not change.
//
// The streams are served from a cache of its own (cache.go) rather than
// go-control-plane's snapshot cache: responses point at the resources'
// marshalled bytes, shared by every node that receives them, instead of
// marshalling every resource again for every node.
//
// Server drives it: it authenticates each stream's node (Authenticator)
// on the stream's first request, before anything is sent, bounds what the
// network can hold open (Limits: connections, streams per connection, time
// to authenticate), issues and renews each connected sidecar identity's
// certificate (Issuer), rebuilds snapshots after a short debounce when the view, a certificate
// or the set of nodes changes, refuses snapshots that fail validation
// (keeping the node's last good one), and serves /debug/xds,
// /debug/endpoints and /debug/authz through Handler. UpdatePolicies sets
// the cluster's AuthorizationPolicies; with Config.WaitForPolicies sidecars
// get nothing before the first set.
//
//	srv, err := xds.NewServer(xds.Config{
//		Cluster:       "east-1",
//		Settings:      xds.DefaultSettings("fedmesh.local"),
//		Authenticator: xds.TokenAuthenticator(verifyBootstrapToken),
//		Issuer:        issuer, // SignWorkload + TrustBundle
//		Logger:        log, Registerer: reg,
//	})
//	grpcServer := grpc.NewServer(append(srv.ServerOptions(), grpc.Creds(tlsCreds))...)
//	srv.Register(grpcServer)             // ADS + CDS/EDS/LDS/RDS/SDS
//	go grpcServer.Serve(srv.Listener(ln)) // connection cap, auth deadline
//	go srv.Run(ctx)                      // rebuilds, pushes, renewals
//	err = srv.UpdateView(view)           // on every federation view
//	err = srv.UpdatePolicies(policies)   // on every change of the cluster's policies
//	admin.Handle("/debug/", srv.Handler()) // /debug/xds, /debug/endpoints
package xds
